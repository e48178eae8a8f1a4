"""The pool's autoscaling section: engine (Builtin, KEDA, HPA), bounds and the signals the
Builtin engine reads."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from workerpool_operator.api.common import (
    DEFAULT_REPLICA_LIMIT,
    MAX_REPLICA_LIMIT,
    Model,
    cel,
)

Engine = Literal["Builtin", "KEDA", "HPA"]


class AutoscalingSpec(Model):
    """Replica count from Temporal task-queue backlog (Builtin, KEDA) or CPU/memory (HPA)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            ),
            (
                "self.engine != 'HPA' || has(self.cpuUtilization) || has(self.memoryUtilization)",
                "autoscaling.engine HPA needs autoscaling.cpuUtilization and/or "
                "autoscaling.memoryUtilization (target percent, e.g. 70)",
            ),
            (
                "self.engine != 'HPA' || self.minReplicas >= 1",
                "autoscaling.engine HPA cannot scale to zero: set autoscaling.minReplicas >= 1 "
                "or use engine Builtin",
            ),
            (
                "self.engine == 'Builtin' || (!has(self.targetBacklogAgeSeconds) && "
                "(!has(self.scaleOnRates) || !self.scaleOnRates) && "
                "(!has(self.scaleDownOnlyWhenIdle) || !self.scaleDownOnlyWhenIdle) && "
                "(!has(self.scaleToZeroAfterIdleSeconds) || "
                "self.scaleToZeroAfterIdleSeconds == 0))",
                "autoscaling.targetBacklogAgeSeconds, scaleOnRates, scaleDownOnlyWhenIdle and "
                "scaleToZeroAfterIdleSeconds are read by engine Builtin only",
            ),
        )
    )

    engine: Engine = Field(
        default="Builtin",
        description=(
            "Builtin: the operator polls DescribeTaskQueue and sets replicas (fast, never scales "
            "running work to zero). KEDA: renders a ScaledObject with KEDA's temporal scaler. "
            "HPA: a resource HorizontalPodAutoscaler on cpu/memory utilization."
        ),
    )
    min_replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICA_LIMIT, description="Lower bound; 0 allows scale to zero."
    )
    max_replicas: int = Field(
        default=10,
        ge=1,
        le=MAX_REPLICA_LIMIT,
        description=(f"Upper bound; at most spec.replicaLimit (default {DEFAULT_REPLICA_LIMIT})."),
    )
    target_backlog_per_replica: int = Field(
        default=5,
        ge=1,
        le=1_000_000,
        description="Desired replicas = ceil(backlog / targetBacklogPerReplica).",
    )
    activation_backlog: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Scale up from zero only when backlog exceeds this.",
    )
    poll_interval_seconds: int = Field(
        default=5,
        ge=1,
        le=300,
        description=(
            "Builtin engine: seconds between backlog polls, at least 5.25 (the server's task "
            "queue stats cache); half the period while the pool is at 0 replicas. See "
            "docs/autoscaling.md."
        ),
    )
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600, description="Use the lowest recommendation over this window."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Use the highest recommendation over this window."
    )
    target_backlog_age_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86400,
        description=(
            "Builtin engine: while the oldest queued task has waited longer than this, ask for "
            "at least ceil(replicas * age / target) replicas (at least 1). Unset: age is not "
            "a signal."
        ),
    )
    scale_on_rates: bool = Field(
        default=False,
        description=(
            "Builtin engine: also size on Temporal's task add rate against the dispatch rate "
            "per replica, and on the backlog projected one poll interval ahead while it grows."
        ),
    )
    scale_down_only_when_idle: bool = Field(
        default=False,
        description=(
            "Builtin engine: scale down only when the backlog is 0 and the workers are idle "
            "(no tasks added or dispatched, no running workflows or in-flight tasks)."
        ),
    )
    scale_to_zero_after_idle_seconds: int = Field(
        default=0,
        ge=0,
        le=86400,
        description=(
            "Builtin engine, minReplicas 0: remove the last replica only after the queue has "
            "been idle this long (e.g. GPU pools with a slow cold start). Running work is never "
            "scaled to zero regardless."
        ),
    )
    cpu_utilization: int | None = Field(
        default=None, ge=1, le=100, description="HPA engine: target average CPU utilization %."
    )
    memory_utilization: int | None = Field(
        default=None, ge=1, le=100, description="HPA engine: target average memory utilization %."
    )
