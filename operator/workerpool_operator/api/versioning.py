"""spec.versioning and the version status of a TemporalWorkerPool (Temporal Worker Versioning).

Opt-in: a pool without `spec.versioning` is rendered and run exactly as before. With it, every
build of the pool is its own Temporal Worker Deployment Version served by its own Deployment, and
the operator moves new work between versions by the rollout strategy below, while workflows
pinned to an older build finish there (docs/versioning.md).

Pure module: the pool spec (api/pool.py) has one field of this type.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from workerpool_operator.api.common import Model, cel

# A Kubernetes label value that is not empty: build IDs label the Deployment and its pods.
BUILD_ID_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
BUILD_ID_MAX = 63
# Temporal refuses a deployment name with '.' ("worker deployment name cannot contain '.'", seen
# on the dev server), and names a version "<deployment>:<build>" in visibility queries (the exact
# count of open pinned workflows), so neither ':' nor what breaks a quoted query may appear.
DEPLOYMENT_NAME_FORBIDDEN = r"[.:\x22\x27\x5c\x00-\x1f\x7f]"  # . : " ' \\ and control chars
DEPLOYMENT_NAME_MAX = 255
MAX_STEPS = 20
MAX_PAUSE_SECONDS = 7 * 24 * 3600
DEFAULT_ROLLBACK_WINDOW_SECONDS = 3600
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 3600
DEFAULT_DELETE_DELAY_SECONDS = 24 * 3600
DEFAULT_RETENTION = 5
DEFAULT_GATE_TIMEOUT_SECONDS = 600

Strategy = Literal["AllAtOnce", "Progressive", "Manual"]
Behavior = Literal["Pinned", "AutoUpgrade"]


class GateSpec(Model):
    """A workflow run once per new build, pinned to it, before any traffic moves to it. The rollout
    waits while it runs and stops (condition GateFailed) if it fails or times out."""

    workflow_type: str = Field(min_length=1, max_length=1000)
    """Workflow type name the new build registers (e.g. `SmokeTest`)."""
    task_queue: str | None = Field(default=None, min_length=1, max_length=1000)
    """Task queue to start it on; default the pool's spec.taskQueue."""
    input: Annotated[
        Any, Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    ] = None
    """Argument passed to the workflow (any JSON value); no argument when unset."""
    timeout_seconds: int = Field(default=DEFAULT_GATE_TIMEOUT_SECONDS, ge=1, le=24 * 3600)
    """The gate fails if it has not completed within this many seconds (default 600)."""


class RampStep(Model):
    """One step of a Progressive rollout: send this share of new work to the new build, then wait
    `pauseSeconds` before the next step (after the last step the new build becomes current)."""

    ramp_percentage: int = Field(ge=1, le=99)
    """Percentage (1-99) of new workflow executions routed to the new build during this step."""
    pause_seconds: int = Field(default=300, ge=0, le=MAX_PAUSE_SECONDS)
    """How long this step holds before the next one (seconds, default 300)."""
    gate: GateSpec | None = None
    """Workflow that must succeed on the new build before this step's share moves to it; if it
    fails the ramp is cleared and the build is not ramped again until the spec changes."""


class SunsetSpec(Model):
    """What happens to a version once it is drained (no open pinned workflows, not current, not
    ramping). Both delays count from the moment it was seen drained."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                # has(): the API server checks the rule against the `{}` default as well.
                f"(has(self.deleteDelaySeconds) ? self.deleteDelaySeconds : "
                f"{DEFAULT_DELETE_DELAY_SECONDS}) >= (has(self.scaleDownDelaySeconds) ? "
                f"self.scaleDownDelaySeconds : {DEFAULT_SCALE_DOWN_DELAY_SECONDS})",
                "spec.versioning.sunset.deleteDelaySeconds must be >= scaleDownDelaySeconds: a "
                "version's Deployment is scaled to 0 first, then deleted; raise deleteDelaySeconds",
            )
        )
    )

    scale_down_delay_seconds: int = Field(
        default=DEFAULT_SCALE_DOWN_DELAY_SECONDS, ge=0, le=30 * 24 * 3600
    )
    """Seconds after draining before the version's Deployment is scaled to 0 (default 3600)."""
    delete_delay_seconds: int = Field(
        default=DEFAULT_DELETE_DELAY_SECONDS,
        ge=0,
        le=90 * 24 * 3600,
        description=(
            "Seconds after draining before the Deployment and the Temporal version are deleted "
            "(default 86400)."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> SunsetSpec:
        if self.delete_delay_seconds < self.scale_down_delay_seconds:
            raise ValueError(
                "sunset.deleteDelaySeconds must be >= scaleDownDelaySeconds: raise "
                "deleteDelaySeconds"
            )
        return self


class AnalysisSpec(Model):
    """Judge a ramping build by its own work while it ramps: when too many of the workflows that
    closed on it failed or timed out, or (rules off unless set) too many of its workers'
    workflow tasks or activity tasks failed, the ramp is cleared at once (the current build keeps
    all new work) and the build is not ramped again until the spec changes."""

    max_failed_percent: int = Field(default=5, ge=0, le=100)
    """Highest share (percent) of the new build's closed workflows that may have failed or timed
    out (Temporal visibility by TemporalWorkerDeploymentVersion); above it the build rolls back."""
    min_closed_workflows: int = Field(default=5, ge=1, le=100_000)
    """No verdict before this many workflows have closed on the new build."""
    max_workflow_task_failure_percent: int | None = Field(default=None, ge=0, le=100)
    """Highest share (percent) of the workflow tasks the new build's workers processed that may
    have failed (a non-determinism error, a bug in workflow code: such workflows stay Running,
    so the closed-workflow rule never sees them); counted from the workers' heartbeats
    (ListWorkers). Unset: not judged."""
    max_activity_failure_percent: int | None = Field(default=None, ge=0, le=100)
    """Highest share (percent) of the activity task attempts the new build's workers processed
    that may have failed (retried failures included: they do not close the workflow); from the
    workers' heartbeats. Unset: not judged."""
    min_tasks: int = Field(default=20, ge=1, le=1_000_000)
    """No workflow-task or activity verdict before the new build's workers have processed this
    many tasks of that kind."""


_STEPS_SORTED = "self.steps.map(s, s.rampPercentage).isSorted()"


class VersioningSpec(Model):
    """Run the pool with Temporal Worker Versioning: one Worker Deployment Version per build."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.strategy != 'Progressive' || (has(self.steps) && size(self.steps) > 0)",
                "spec.versioning.strategy Progressive needs spec.versioning.steps: list at least "
                "one {rampPercentage, pauseSeconds}, or use strategy AllAtOnce",
            ),
            (
                "self.strategy == 'Progressive' || !has(self.steps) || size(self.steps) == 0",
                "spec.versioning.steps is read only by strategy Progressive: remove the steps or "
                "set strategy: Progressive",
            ),
            (
                f"!has(self.steps) || {_STEPS_SORTED}",
                "spec.versioning.steps: rampPercentage must increase from one step to the next; "
                "sort the steps",
            ),
            (
                "self.strategy == 'Progressive' || !has(self.analysis)",
                "spec.versioning.analysis judges a build while it ramps, so it needs strategy "
                "Progressive: set strategy: Progressive with steps, or remove the analysis",
            ),
            (
                "self.strategy != 'Manual' || !has(self.gate)",
                "spec.versioning.gate never runs with strategy Manual (the operator does not "
                "change routing): remove the gate or use AllAtOnce or Progressive",
            ),
            (
                "!has(self.deploymentName) || "
                f"!self.deploymentName.matches(r'{DEPLOYMENT_NAME_FORBIDDEN}')",
                "spec.versioning.deploymentName must not contain '.', ':', quotes, a backslash or "
                "control characters (Temporal refuses '.' and writes a version as "
                "<deployment>:<buildId>); rename it",
            ),
        )
    )

    deployment_name: str | None = Field(default=None, min_length=1, max_length=DEPLOYMENT_NAME_MAX)
    """Temporal Worker Deployment name; default `<namespace>/<pool name>`."""
    default_behavior: Behavior = Field(
        default="Pinned",
        description=(
            "Versioning behavior of workflows that declare none: Pinned (a workflow finishes on "
            "the build that started it) or AutoUpgrade (it moves to the current build at its next "
            "task)."
        ),
    )
    build_id: str | None = Field(
        default=None,
        max_length=BUILD_ID_MAX,
        pattern=BUILD_ID_PATTERN,
        description=(
            "Fixed build ID. Unset: derived from the image and a hash of the pod template, so "
            "every change is a new version. Set: changes roll the build's Deployment in place and "
            "only a new value starts a new version."
        ),
    )
    strategy: Strategy = Field(
        default="AllAtOnce",
        description=(
            "AllAtOnce: a new build becomes current once it has registered (and passed the gate). "
            "Progressive: ramp through `steps`, then current. Manual: the operator runs the "
            "Deployments but never changes routing (use `temporal worker deployment "
            "set-current-version`)."
        ),
    )
    steps: Annotated[
        list[RampStep],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["rampPercentage"],
            }
        ),
    ] = Field(default_factory=list, max_length=MAX_STEPS)
    """Progressive steps, increasing rampPercentage (at most 20)."""
    gate: GateSpec | None = None
    """Workflow that must succeed on a new build before traffic moves to it."""
    promote: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description=(
            "Build ID to make current now, skipping its remaining gate, steps, pauses and "
            "analysis (it must have registered). Names a build so it never acts on a later "
            "one; the annotation workerpools.io/promote=<buildId> does the same without a spec "
            "edit."
        ),
    )
    abort: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description=(
            "Build ID that gets no new work while it is not current: its ramp is cleared and no "
            "step or promotion happens (AbortedByUser). The annotation workerpools.io/abort="
            "<buildId> does the same without a spec edit."
        ),
    )
    analysis: AnalysisSpec | None = None
    """Roll a ramping build back at once when its own workflows fail (strategy Progressive)."""
    paused: bool = False
    """Hold routing where it is (no step, promotion or rollback) and delete no build."""
    rollback_window_seconds: int = Field(
        default=DEFAULT_ROLLBACK_WINDOW_SECONDS,
        ge=0,
        le=30 * 24 * 3600,
        description=(
            "A target build that was current within this many seconds becomes current again at "
            "once, skipping gate and steps (so reverting the spec is a rollback); 0 turns this "
            "off."
        ),
    )
    sunset: SunsetSpec = Field(default_factory=SunsetSpec, json_schema_extra={"default": {}})
    """When drained versions are scaled down and deleted."""
    retention: int = Field(
        default=DEFAULT_RETENTION,
        ge=0,
        le=50,
        description=(
            "Inactive or drained versions kept (newest first) besides the current and target "
            "ones; older ones are retired once nothing runs on them."
        ),
    )

    @field_validator("deployment_name")
    @classmethod
    def _deployment_name(cls, value: str | None) -> str | None:
        if value is not None and re.search(DEPLOYMENT_NAME_FORBIDDEN, value):
            raise ValueError(
                "deploymentName must not contain '.', ':', quotes, a backslash or control "
                "characters"
            )
        return value

    @model_validator(mode="after")
    def _strategy_fields(self) -> VersioningSpec:
        if self.strategy == "Progressive" and not self.steps:
            raise ValueError("strategy Progressive needs at least one step")
        if self.strategy != "Progressive" and self.steps:
            raise ValueError("steps are read only by strategy Progressive")
        ramps = [s.ramp_percentage for s in self.steps]
        if ramps != sorted(set(ramps)):
            raise ValueError("steps: rampPercentage must increase from one step to the next")
        if self.strategy == "Manual" and self.gate is not None:
            raise ValueError("gate never runs with strategy Manual")
        if self.strategy != "Progressive" and self.analysis is not None:
            raise ValueError("analysis judges a ramping build: it needs strategy Progressive")
        return self

    def effective_deployment_name(self, namespace: str, pool: str) -> str:
        """The Temporal Worker Deployment name the workers register under."""
        return self.deployment_name or f"{namespace}/{pool}"


# --- status -----------------------------------------------------------------------------------

VersionState = Literal["NotRegistered", "Inactive", "Ramping", "Current", "Draining", "Drained"]


class VersionStatus(Model):
    """One build of a versioned pool, as the operator last saw it in Kubernetes and Temporal."""

    build_id: str
    """The build ID (also the Deployment's `workerpools.io/build-id` label)."""
    state: VersionState
    """NotRegistered (no worker has polled yet), Inactive (registered, gets no new work), Ramping,
    Current, Draining (not current, pinned workflows still open) or Drained."""
    deployment: str | None = None
    """Name of the Deployment running this build."""
    replicas: int | None = None
    """Pods of this build's Deployment."""
    ready_replicas: int | None = None
    """Ready pods of this build's Deployment."""
    ramp_percentage: float | None = None
    """Share of new work routed to this build while it is Ramping."""
    open_pinned_workflows: int | None = None
    """Exact count of running workflows pinned to this build (Temporal visibility)."""
    drained_since: str | None = None
    """When the build was first seen drained (RFC 3339); sunset delays count from here."""
    rejected: str | None = None
    """Why spec.versioning.analysis rolled this build back while it ramped."""
    rejected_generation: int | None = None
    """The pool generation the build was rolled back at: it is not ramped again until the spec
    changes (a higher generation)."""


ReleaseGroupState = Literal["Invalid", "Held", "Rolling", "Current"]


class ReleaseGroupStatus(Model):
    """The release group the pool is a member of: the pools of its namespace that name the same
    spec.versioning.deploymentName, released as one build."""

    deployment_name: str
    """The Temporal Worker Deployment the group's pools share."""
    members: list[str]
    """The member pools, sorted by name; the first one makes the group's routing changes."""
    driver: str
    """The member that makes the group's routing changes (the first by name)."""
    build_id: str
    """The group's build: derived from every member's image and pod template."""
    state: ReleaseGroupState
    """Invalid (members disagree: see the VersionRollout condition), Held (a member is not
    running the build yet: heldBy), Rolling, or Current."""
    held_by: str | None = None
    """The member that holds the group, and why."""


# status.versions: one entry per build, merged by build ID under server-side apply.
VersionList = Annotated[
    list[VersionStatus],
    Field(
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["buildId"],
        }
    ),
]


class VersionReplicas(Model):
    """The Builtin autoscaler's decision for one build of a versioned pool (its own field, so
    its entries come and go with the scaler's decisions, not with status.versions)."""

    build_id: str
    """The build ID."""
    desired_replicas: int
    """Replicas the autoscaler asks for this build's Deployment (the routing floors still apply:
    a Ramping or target build keeps 1, a Draining build keeps 1 while pinned work is open)."""
    backlog: int | None = None
    """The backlog the decision used: the build's share of new work (Current, Ramping) or its own
    backlog (Draining)."""


# status.versionReplicas: one entry per build with a decision, owned by the autoscaler.
VersionReplicasList = Annotated[
    list[VersionReplicas],
    Field(
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["buildId"],
        }
    ),
]
