"""Autoscaling children (KEDA ScaledObject + TriggerAuthentication, or HPA) and their conditions.

Pure. The Builtin engine renders no child: the operator's scaler writes Deployment replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.common import Manifest
from workerpool_operator.status import ConditionSpec

# Kinds this module may render; the reconciler prunes those no longer desired.
OPTIONAL_KINDS: list[tuple[str, str]] = [
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
]


@dataclass(frozen=True)
class AutoscalingPlan:
    children: list[Manifest] = field(default_factory=list)
    conditions: list[ConditionSpec] = field(default_factory=list)


def plan_autoscaling(pool: TemporalWorkerPool, *, keda_installed: bool) -> AutoscalingPlan:
    """Children and conditions for the pool's autoscaling engine (filled in by the scaling work)."""
    return AutoscalingPlan()
