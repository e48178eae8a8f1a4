"""Status conditions shared by every kind: the metav1.Condition shape, the condition types
and the documented reasons (one enum, workerpool_operator.reasons)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from workerpool_operator.api.common import Model
from workerpool_operator.reasons import DOCS as _REASON_DOCS

CONDITION_READY = "Ready"
CONDITION_PROGRESSING = "Progressing"
CONDITION_DEGRADED = "Degraded"
# Degraded in the words of kstatus (Flux, Config Sync, `kstatus`): Stalled=True reads as
# Failed there, so a pool that cannot progress without a person fails a GitOps sync at once
# instead of at its timeout. Always equal to Degraded (status, reason and message).
CONDITION_STALLED = "Stalled"
CONDITION_SERVICE_MONITOR = "ServiceMonitorReady"
CONDITION_AUTOSCALING = "AutoscalingReady"
CONDITION_BACKLOG = "BacklogAvailable"
CONDITION_GPU_CAPACITY = "GPUCapacityAvailable"

# Reasons are one enum (workerpool_operator.reasons); this view keeps the documented API here.
REASONS: dict[str, str] = {str(r): doc for r, doc in _REASON_DOCS.items()}


class Condition(Model):
    """Shaped like metav1.Condition, so kstatus, Argo CD and Flux read it."""

    type: str
    """Ready, Progressing, Degraded, Stalled, or one of the feature conditions (docs/api.md)."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why, as one word from the documented list: automation may match on it."""
    message: str = ""
    """Why, in a sentence a person reads: names the field, object or value concerned."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The pool generation this condition describes."""


# A map list keyed by type, as metav1.Condition lists are: server-side apply merges by type.
Conditions = Annotated[
    list[Condition],
    Field(
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    ),
]
