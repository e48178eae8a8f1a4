"""The reconcile's data, pure: what the caches and Temporal hold for one pool (`Observed`),
what one reconcile will do (`Plan`) and what the executor met (`Outcome`). `plan.py` makes a
Plan, `versioned.py` adds a versioned pool's builds to it, `execute.py` carries it out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import Kind
from workerpool_operator.names import (
    ADOPT_ANNOTATION,
    CREDENTIALS_HASH_ANNOTATION,
    DEFAULT_NAMESPACE,
    GPU_POD_LABEL,
)
from workerpool_operator.reconcile.status import ConditionSpec
from workerpool_operator.temporal.connections import Connection
from workerpool_operator.versioning.group import Group
from workerpool_operator.versioning.model import DEFAULT_VERSION_CAP, Observation
from workerpool_operator.versioning.pool import VersionedPass


@dataclass(frozen=True)
class VersioningObserved:
    """What the reconciler read from Temporal for a versioned pool this pass: the observation,
    or why there is none (Temporal unreachable, rate limited, credentials missing), and where
    it was read, so the pass's routing calls go to the same place without resolving again."""

    now: datetime
    identity: str  # this operator's manager identity on Worker Deployments
    observation: Observation | None = None
    error: str = ""
    deployment: str = ""  # the Temporal Worker Deployment name
    connection: Connection | None = None  # None: the pool's connection did not resolve
    version_cap: int = DEFAULT_VERSION_CAP  # the server's matching.maxVersionsInDeployment
    group: Group | None = None  # the release group the pool is a member of (None: alone)


@dataclass(frozen=True)
class Observed:
    """What the caches hold for one pool: its children (by kind), the opted-in Secrets of its
    namespace, the connection its spec.connectionRef names (None: not in the cache), its
    namespace's labels (for a ClusterTemporalConnection's allowedNamespaces) and the namespace
    where the Secrets of ClusterTemporalConnections live (the operator's own)."""

    children: Mapping[Kind, dict[str, Any] | None] = field(default_factory=dict)
    secrets: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    connection: Mapping[str, Any] | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    credentials_namespace: str = DEFAULT_NAMESPACE
    # Versioned pools: the per-build Deployments (labelled with the pool and a build ID) and
    # what Temporal said this pass.
    builds: tuple[Mapping[str, Any], ...] = ()
    versioning: VersioningObserved | None = None
    # Versioned KEDA/HPA pools: the per-build ScaledObjects and HPAs (pool and build-ID labels).
    build_scalers: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ChildWrite:
    """A child to server-side apply. `known` False: absent from the cache, so the executor
    first makes sure no foreign object holds the name (a create never takes one over)."""

    kind: Kind
    manifest: dict[str, Any]
    known: bool


@dataclass(frozen=True)
class Handover:
    """Keep spec.replicas when the reconciler stops applying it (fixed -> autoscaled).

    Server-side apply removes a field its last owner stops applying, which would drop the
    Deployment to 1 replica. So, before that apply, the new owner applies the field at its
    current value: our scaler with its own manager, or, for KEDA/HPA, a handover manager whose
    ownership the HPA controller's first /scale write that changes the value takes over. (An
    Update that sets a field to the value it already has would own nothing: apply it is.)
    A versioned pool switching from Builtin to KEDA or HPA hands over its target build's
    Deployment (`deployment`), the one the routing pass applies without replicas from then on.
    """

    replicas: int
    manager: str
    deployment: str = ""  # "": the pool's own Deployment


@dataclass(frozen=True)
class Revocation:
    """A child to delete by kind, name and UID (a re-created namesake survives): because the
    pool's connection stopped admitting it (reconcile/revoke), or a build's child unwanted."""

    kind: Kind
    name: str
    uid: str


@dataclass
class Plan:
    pool: api.TemporalWorkerPool | None
    writes: list[ChildWrite] = field(default_factory=list)
    prune: list[tuple[Kind, str]] = field(default_factory=list)  # (kind, live uid)
    conflicts: dict[Kind, str] = field(default_factory=dict)
    handover: Handover | None = None
    conditions: dict[str, ConditionSpec] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    invalid: str | None = None
    # The pre-0.2 finalizer to drop (its index in metadata.finalizers), or None.
    drop_finalizer: int | None = None
    act: bool = True  # False: leave the pool alone entirely (deleted, namespace terminating)
    # Versioned pools: routing calls, other builds' replicas and retired Deployments (None
    # while Temporal could not be read: then builds are neither scaled nor deleted).
    versioned: VersionedPass | None = None
    retire: list[tuple[str, str]] = field(default_factory=list)  # (Deployment name, uid)
    # Versioned pools: look again this many seconds from now (a pause, a sunset, a poll).
    requeue_after: float | None = None
    # Children that carry the credentials of a connection that no longer admits the pool.
    revoke: list[Revocation] = field(default_factory=list)
    # Per-build children no longer wanted (the autoscaler of a drained or retired build).
    drop: list[Revocation] = field(default_factory=list)


def controlled_by(obj: Mapping[str, Any] | None, uid: str) -> bool:
    refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


def adoptable(obj: Mapping[str, Any] | None) -> bool:
    """A foreign object its owner explicitly handed to the pool (documented in docs/api.md)."""
    annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
    return str(annotations.get(ADOPT_ANNOTATION, "")).lower() == "true"


@dataclass
class Outcome:
    """What the executor met: objects held by others, and writes the API server refused."""

    conflicts: dict[Kind, str] = field(default_factory=dict)
    failures: dict[Kind, str] = field(default_factory=dict)
    created: int = 0  # children that did not exist before
    routing_refused: str = ""  # versioned pools: why Temporal did not take a routing change
    revoked: list[str] = field(default_factory=list)  # "Kind name" of each revoked child deleted


def pod_template_extras(
    deployment: dict[str, Any], pool: api.TemporalWorkerPool, digest: str
) -> dict[str, Any]:
    """The credentials hash (rotation rolls the pods) and, for GPU pools, the label the
    operator's Pod watch selects on (so it caches GPU pods only)."""
    meta = deployment["spec"]["template"].setdefault("metadata", {})
    if digest:
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            CREDENTIALS_HASH_ANNOTATION: digest,
        }
    if pool.spec.gpu is not None:
        meta["labels"] = {**(meta.get("labels") or {}), GPU_POD_LABEL: "true"}
    return deployment
