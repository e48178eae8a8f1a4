"""The vocabulary of a versioned pool's routing (pure data): what was observed in Temporal and
Kubernetes (`RoutingInput`), the calls to make (`SetManager`, `SetCurrent`, `SetRamping`,
`DeleteVersion`, `StartGate`) and the plan `routing.plan` returns (`RoutingPlan`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from workerpool_operator.api.versioning import VersioningSpec, VersionState, VersionStatus
from workerpool_operator.reasons import Reason
from workerpool_operator.versioning.group import Group

# Temporal's version statuses (enum WorkerDeploymentVersionStatus), without the prefix.
TemporalStatus = Literal["Inactive", "Created", "Current", "Ramping", "Draining", "Drained"]
GateState = Literal["NotStarted", "Running", "Succeeded", "Failed"]
# Report the version cap once this share of `matching.maxVersionsInDeployment` is used.
VERSION_CAP_WARN_RATIO = 0.8
DEFAULT_VERSION_CAP = 100
_RAMP_EPSILON = 0.01


ROLLOUT_CONDITION = "VersionRollout"
LIMIT_CONDITION = "VersionLimit"


# --- observations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSummary:
    """One entry of DescribeWorkerDeployment's version_summaries."""

    build_id: str
    status: TemporalStatus
    created_at: datetime | None = None
    last_current_at: datetime | None = None
    drained_at: datetime | None = None  # drainage_info.last_changed_time when status Drained


@dataclass(frozen=True)
class DeploymentState:
    """DescribeWorkerDeployment, or `exists=False` while no worker of it has polled."""

    exists: bool = False
    conflict_token: bytes = b""
    manager_identity: str = ""
    current_build: str | None = None  # None: unversioned workers get new work
    ramping_build: str | None = None
    ramp_percentage: float = 0.0
    ramp_changed_at: datetime | None = None
    routing_updating: bool = False
    routing_changed_at: datetime | None = None  # the last change of current or ramping
    versions: tuple[VersionSummary, ...] = ()

    def summary(self, build: str) -> VersionSummary | None:
        return next((v for v in self.versions if v.build_id == build), None)


@dataclass(frozen=True)
class BuildDeployment:
    """A build's Deployment as Kubernetes reports it."""

    name: str
    replicas: int
    ready_replicas: int = 0


@dataclass(frozen=True)
class GateObservation:
    """The gate workflow of the target build (DescribeWorkflowExecution of its fixed ID)."""

    state: GateState
    message: str = ""


@dataclass(frozen=True)
class TaskCounts:
    """What one build's workers report in their heartbeats (ListWorkers), summed over them:
    task counts since each worker started, failed ones included in the processed ones."""

    workers: int = 0
    workflow_processed: int = 0
    workflow_failed: int = 0
    activity_processed: int = 0
    activity_failed: int = 0


@dataclass(frozen=True)
class AnalysisObservation:
    """The ramping target build's work: its closed workflows (visibility counts by version; None
    when visibility did not answer) and its workers' task counts (None: not asked, or ListWorkers
    did not answer)."""

    closed: int | None = None
    failed: int | None = None  # Failed or TimedOut
    tasks: TaskCounts | None = None


@dataclass(frozen=True)
class Observation:
    """Everything Temporal says about one versioned pool in one pass (`execute.observe_pool`)."""

    temporal: DeploymentState
    pinned_open: dict[str, int | None]
    gate: GateObservation | None
    unversioned_pollers: bool
    analysis: AnalysisObservation | None = None  # while the target ramps under an analysis
    step_gate: tuple[int, GateObservation] | None = None  # (step index, its gate) next due
    # Release groups: the task queues a worker of the target build has polled (read while the
    # target is not current; None: not read).
    polled: frozenset[str] | None = None


@dataclass(frozen=True)
class RoutingInput:
    spec: VersioningSpec
    pool: str
    deployment: str  # Temporal Worker Deployment name
    target_build: str  # "": the pool left versioning, its unversioned workers are the target
    task_queue: str  # the pool's queue: the gate's default
    identity: str  # this operator's manager identity (per-cluster suffix included)
    temporal: DeploymentState
    now: datetime
    desired_replicas: int  # what the pool (spec.replicas or the scaler) asks for new work
    # The Builtin scaler's decision per build (status.versionReplicas); a build without one
    # gets `desired_replicas` (Current, Ramping, target) or keeps what it runs (Draining).
    version_replicas: Mapping[str, int] = field(default_factory=dict)
    pinned_open: Mapping[str, int | None] = field(default_factory=dict)  # None: count failed
    build_deployments: Mapping[str, BuildDeployment] = field(default_factory=dict)
    previous: Sequence[VersionStatus] = ()
    gate: GateObservation | None = None
    unversioned_pollers: bool = False
    version_cap: int = DEFAULT_VERSION_CAP
    analysis: AnalysisObservation | None = None
    step_gate: tuple[int, GateObservation] | None = None
    generation: int = 0  # the pool's metadata.generation (a rejected build waits for a newer)
    promote: str = ""  # how the target was told to become current now ("" : it was not)
    abort: str = ""  # how the target was told to get no new work ("" : it was not)
    group: Group | None = None  # the release group the pool is a member of (versioning/group.py)
    polled: frozenset[str] | None = None  # queues a worker of the target has polled (groups)


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetManager:
    """SetWorkerDeploymentManager(self): claim routing before the first change."""


@dataclass(frozen=True)
class SetCurrent:
    build_id: str | None  # None: unversioned


@dataclass(frozen=True)
class SetRamping:
    build_id: str | None  # None with 0%: clear the ramp
    percentage: float


@dataclass(frozen=True)
class DeleteVersion:
    build_id: str


Call = SetManager | SetCurrent | SetRamping | DeleteVersion


@dataclass(frozen=True)
class StartGate:
    workflow_id: str
    workflow_type: str
    task_queue: str
    build_id: str
    input: Any
    timeout_seconds: int


@dataclass(frozen=True)
class VersionPlan:
    """One build's Deployment: keep it at `replicas`, or delete it."""

    build_id: str
    deployment: str
    state: VersionState
    replicas: int
    delete: bool = False
    drained_since: datetime | None = None
    open_pinned: int | None = None
    rejected: str | None = None  # why analysis rolled it back
    rejected_generation: int | None = None
    read_state: VersionState | None = None  # under Temporal's routing as read (None: `state`)


@dataclass(frozen=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: Reason
    message: str


@dataclass(frozen=True)
class Event:
    reason: Reason
    message: str
    warning: bool = False


@dataclass(frozen=True)
class RoutingPlan:
    calls: tuple[Call, ...]
    versions: tuple[VersionPlan, ...]
    conditions: tuple[Condition, ...]
    events: tuple[Event, ...] = ()
    start_gate: StartGate | None = None
    step: int | None = None  # Progressive: index of the step in force (after the calls)
    requeue_after: float | None = None  # seconds until something is due (a pause, a sunset)
    current_build: str | None = None  # routing as the calls leave it
    ramp_percentage: float | None = None
    read_current_build: str | None = None  # routing as Temporal said it was, before the calls
    read_ramp_percentage: float | None = None

    @property
    def routing_changed(self) -> bool:
        return any(isinstance(c, SetCurrent | SetRamping) for c in self.calls)

    def as_read(self) -> RoutingPlan:
        """The routing as Temporal said it was before this pass's calls: what the status shows
        when Temporal refuses a call, instead of a build it never made current."""
        return replace(
            self,
            current_build=self.read_current_build,
            ramp_percentage=self.read_ramp_percentage,
            versions=tuple(replace(v, state=v.read_state or v.state) for v in self.versions),
        )


def gate_workflow_id(deployment: str, build: str, step: int | None = None) -> str:
    """Fixed per build (and Progressive step, counted from 1), so a restarted operator finds the
    gate it started instead of a new one."""
    base = f"{deployment}/gate/{build}"
    return base if step is None else f"{base}/step-{step + 1}"


def next_step(ramps: Sequence[int], ramping_target: float | None) -> int:
    """The index of the Progressive step not reached yet: the first whose percentage is above
    what the target holds (0 while it does not ramp)."""
    if ramping_target is None:
        return 0
    return sum(1 for pct in ramps if pct <= ramping_target + _RAMP_EPSILON)
