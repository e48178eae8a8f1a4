"""TemporalWorkerPool: the spec users write, the status the operator reports, and the whole
object as the planner and renderers read it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from worker_runtime.contract import ENV_PREFIX, otel_env_var
from workerpool_operator.api.autoscaling import AutoscalingSpec
from workerpool_operator.api.common import (
    API_VERSION,
    DEFAULT_REPLICA_LIMIT,
    EMPTY_DEFAULT,
    ENV_NAME,
    ENV_PREFIX_CHARS,
    MAX_REPLICA_LIMIT,
    KubeList,
    Model,
    cel,
    cel_strings,
    k8s_field,
)
from workerpool_operator.api.conditions import Conditions
from workerpool_operator.api.connection import ConnectionRef, ConnectionSpec
from workerpool_operator.api.legacy import INLINE_CONNECTION, refuse_inline_secrets
from workerpool_operator.api.template import (
    DisruptionBudgetSpec,
    PodTemplateSpec,
    PoolNetworkPolicySpec,
    RolloutSpec,
)
from workerpool_operator.api.versioning import (
    ReleaseGroupStatus,
    VersioningSpec,
    VersionList,
    VersionReplicasList,
)
from workerpool_operator.api.workload import (
    DEFAULT_IMAGE_REPOSITORY,
    GPUSpec,
    ImageSpec,
    MetricsSpec,
    ResourceRequirements,
    TracingSpec,
    WorkerTuning,
)

KIND = "TemporalWorkerPool"
PLURAL = "temporalworkerpools"
SINGULAR = "temporalworkerpool"
SHORT_NAMES = ["workerpools", "workerpool", "twp"]

# RuntimeSettings fields the operator writes into every pod from the pool spec (the env contract,
# worker_runtime/contract.py). `spec.env` must not set them: a stale copy would make the worker
# poll another queue or serve probes on another port. The runtime's other TWP_* settings (log
# level, OpenAI and LLM pack options, ...) are the user's to set through spec.env.
RESERVED_ENV_FIELDS = (
    "temporal_address",
    "temporal_namespace",
    "task_queue",
    "workflows",
    "activities",
    "metrics_port",
    "graceful_shutdown_seconds",
    "pool_name",
    "pod_name",
    "pod_namespace",
    "tls_enabled",
    "tls_server_name",
    "tls_ca_path",
    "tls_cert_path",
    "tls_key_path",
    "api_key",
    "max_concurrent_activities",
    "max_concurrent_workflow_tasks",
    "max_activities_per_second",
    "max_task_queue_activities_per_second",
    "max_cached_workflows",
    # Written per build of a versioned pool (spec.versioning).
    "worker_deployment_name",
    "worker_build_id",
    "default_versioning_behavior",
)
RESERVED_ENV_NAMES = tuple(f"{ENV_PREFIX}{f.upper()}" for f in RESERVED_ENV_FIELDS)
# The OTEL_* variables the operator writes from spec.tracing, and the per-signal ones that would
# override them in the SDK: spec.env must not set them while spec.tracing is set (without it,
# spec.env may configure tracing with any OTEL_* variable).
TRACING_ENV_NAMES = tuple(
    otel_env_var(f)
    for f in (
        "endpoint",
        "traces_endpoint",
        "protocol",
        "traces_protocol",
        "headers",
        "service_name",
        "sampler",
        "sampler_arg",
    )
)
TRACING_ENV_MESSAGE = (
    "spec.env must not set the OTEL_* variables that spec.tracing writes "
    f"({', '.join(TRACING_ENV_NAMES)}): set them with spec.tracing (endpoint, protocol, "
    "serviceName, samplingRatio, headersSecretRef), or remove spec.tracing"
)


IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
_ZERO = "['0', '0%']"
_EFFECTIVE_SURGE = (
    "(has(self.rollout.maxSurge) ? string(self.rollout.maxSurge) : (has(self.gpu) ? '0' : '25%'))"
)
_EFFECTIVE_UNAVAILABLE = (
    "(has(self.rollout.maxUnavailable) ? string(self.rollout.maxUnavailable) : "
    "(has(self.gpu) ? '1' : '0'))"
)
_REPLICA_LIMIT = f"(has(self.replicaLimit) ? self.replicaLimit : {DEFAULT_REPLICA_LIMIT})"


class TemporalWorkerPoolSpec(Model):
    """Desired state of a pool of Temporal workers."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.connection) != has(self.connectionRef)",
                "set exactly one of spec.connection (a plain or system-TLS address) or "
                "spec.connectionRef (a TemporalConnection or ClusterTemporalConnection)",
            ),
            (
                "self.taskQueue.matches(r'\\S')",
                "spec.taskQueue must not be empty: set it to the task queue your workflows and "
                "activities are started on",
            ),
            (
                '!self.taskQueue.matches(r"[\'\\\\\\x00-\\x1f\\x7f]")',
                "spec.taskQueue must not contain a quote ('), a backslash or control characters: "
                "the operator counts the queue's running workflows with a Temporal visibility "
                "query, which cannot carry them; rename the queue",
            ),
            (
                "!self.taskQueue.startsWith('/_sys/')",
                "spec.taskQueue must not start with /_sys/: Temporal reserves those names",
            ),
            (
                "(has(self.workflows) ? size(self.workflows) : 0) + "
                "(has(self.activities) ? size(self.activities) : 0) > 0",
                "a pool must host something: list at least one import path in spec.workflows or "
                "spec.activities (module:attribute)",
            ),
            (
                "!has(self.autoscaling) || !has(self.replicas)",
                "spec.replicas must not be set together with spec.autoscaling: the autoscaler owns "
                "the replica count; remove one of them (kubectl scale needs no autoscaling)",
            ),
            (
                f"!has(self.replicas) || self.replicas <= {_REPLICA_LIMIT}",
                f"spec.replicas is above the pool's replica limit (spec.replicaLimit, default "
                f"{DEFAULT_REPLICA_LIMIT}): lower it, or raise spec.replicaLimit (at most "
                f"{MAX_REPLICA_LIMIT}) if you mean it",
            ),
            (
                f"!has(self.autoscaling) || self.autoscaling.maxReplicas <= {_REPLICA_LIMIT}",
                f"spec.autoscaling.maxReplicas is above the pool's replica limit "
                f"(spec.replicaLimit, default {DEFAULT_REPLICA_LIMIT}): lower it, or raise "
                f"spec.replicaLimit (at most {MAX_REPLICA_LIMIT}) if you mean it",
            ),
            (
                f"!has(self.rollout) || !({_EFFECTIVE_SURGE} in {_ZERO} && "
                f"{_EFFECTIVE_UNAVAILABLE} in {_ZERO})",
                "spec.rollout: maxSurge and maxUnavailable must not both be 0 (a rollout could "
                "never start); on GPU pools maxSurge defaults to 0 and maxUnavailable to 1",
            ),
            (
                "!has(self.gpu) || !has(self.resources) || !has(self.resources.limits) || "
                "!(self.gpu.resourceName in self.resources.limits)",
                "set GPUs with spec.gpu.count, not spec.resources.limits",
            ),
            (
                "!has(self.tracing) || !has(self.env) || self.env.all(e, !(e.name.upperAscii() "
                f"in {cel_strings(TRACING_ENV_NAMES)}))",
                TRACING_ENV_MESSAGE,
            ),
        )
    )

    connection: ConnectionSpec | None = Field(
        default=None,
        description=(
            "Inline connection for the simple case: a plain or system-TLS address. Exactly one "
            "of connection or connectionRef."
        ),
        json_schema_extra=INLINE_CONNECTION,
    )
    connection_ref: ConnectionRef | None = Field(
        default=None,
        description=(
            "The TemporalConnection or ClusterTemporalConnection to use (address, namespace, "
            "TLS, API key). Exactly one of connection or connectionRef."
        ),
    )
    task_queue: str = Field(max_length=1000, description="Task queue the workers poll.")
    workflows: list[Annotated[str, Field(max_length=1000, pattern=IMPORT_PATH)]] = Field(
        default_factory=list,
        max_length=200,
        description="Workflow classes to register, as module:attribute import paths.",
    )
    activities: list[Annotated[str, Field(max_length=1000, pattern=IMPORT_PATH)]] = Field(
        default_factory=list,
        max_length=200,
        description=(
            "Activities to register, as module:attribute import paths (a callable, or a function "
            "returning a list of them)."
        ),
    )
    image: ImageSpec = Field(
        default_factory=ImageSpec,
        json_schema_extra={
            "default": {
                # No tag: an unset tag is the operator's version at render time (ImageSpec).
                "repository": DEFAULT_IMAGE_REPOSITORY,
                "pullPolicy": "IfNotPresent",
            }
        },
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REPLICA_LIMIT,
        description=(
            "Fixed replica count (default 1), at most spec.replicaLimit (default "
            f"{DEFAULT_REPLICA_LIMIT}). Leave unset when autoscaling is set."
        ),
    )
    replica_limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICA_LIMIT,
        description=(
            f"Safety cap on spec.replicas and autoscaling.maxReplicas (default "
            f"{DEFAULT_REPLICA_LIMIT}), so a typo cannot start thousands of pods. Raise it "
            f"deliberately for big pools (at most {MAX_REPLICA_LIMIT})."
        ),
    )
    autoscaling: AutoscalingSpec | None = None
    resources: ResourceRequirements | None = None
    gpu: GPUSpec | None = None
    worker: WorkerTuning = Field(default_factory=WorkerTuning, json_schema_extra=EMPTY_DEFAULT)
    env: KubeList | None = Field(
        default=None,
        description=(
            "Extra container env (core/v1 EnvVar). The TWP_* variables the operator writes from "
            "the spec (address, queue, import paths, TLS, tuning, ...) are refused; the "
            "runtime's other TWP_* settings (e.g. TWP_LOG_LEVEL, TWP_OPENAI_MODEL) are allowed."
        ),
        json_schema_extra=k8s_field(
            "Container.env",
            (
                f"self.all(e, !(e.name.upperAscii() in {cel_strings(RESERVED_ENV_NAMES)}))",
                "spec.env must not set the TWP_* variables the operator writes from the spec, in "
                f"any case ({', '.join(RESERVED_ENV_NAMES)}): set the matching spec field "
                "instead (connection, taskQueue, workflows, activities, metrics.port, worker.*)",
            ),
            (
                "self.all(e, !has(e.valueFrom) || !has(e.value) || e.value == '')",
                "spec.env[]: set either value or valueFrom, not both",
            ),
            (
                "self.all(e, !has(e.valueFrom) || [has(e.valueFrom.fieldRef), "
                "has(e.valueFrom.resourceFieldRef), has(e.valueFrom.configMapKeyRef), "
                "has(e.valueFrom.secretKeyRef)]"
                ".filter(x, x).size() == 1)",
                "spec.env[].valueFrom needs exactly one of fieldRef, resourceFieldRef, "
                "configMapKeyRef or secretKeyRef",
            ),
            (
                "self.all(e, !has(e.valueFrom) || ((!has(e.valueFrom.secretKeyRef) || "
                "(has(e.valueFrom.secretKeyRef.name) && e.valueFrom.secretKeyRef.name != '')) && "
                "(!has(e.valueFrom.configMapKeyRef) || (has(e.valueFrom.configMapKeyRef.name) && "
                "e.valueFrom.configMapKeyRef.name != ''))))",
                "spec.env[].valueFrom.secretKeyRef.name and configMapKeyRef.name are required",
            ),
            (
                f"self.all(e, e.name.matches(r'{ENV_NAME}'))",
                "spec.env[].name must be printable ASCII characters other than '=' "
                "(e.g. MY_SETTING)",
            ),
            max_items=128,
            overlay={"items": {"properties": {"name": {"maxLength": 256}}}},
        ),
    )
    env_from: KubeList | None = Field(
        default=None,
        description="Extra container env from ConfigMaps/Secrets (core/v1 EnvFromSource).",
        json_schema_extra=k8s_field(
            "Container.envFrom",
            (
                "self.all(s, !has(s.prefix) || !s.prefix.upperAscii().startsWith('TWP_'))",
                "spec.envFrom[].prefix must not start with TWP_ in any case: those variables are "
                "the worker runtime's contract (worker_runtime/contract.py)",
            ),
            (
                f"self.all(s, !has(s.prefix) || s.prefix.matches(r'{ENV_PREFIX_CHARS}'))",
                "spec.envFrom[].prefix must be printable ASCII characters other than '='",
            ),
            (
                "self.all(s, has(s.configMapRef) != has(s.secretRef))",
                "spec.envFrom[] needs exactly one of configMapRef or secretRef",
            ),
            (
                "self.all(s, (has(s.configMapRef) && has(s.configMapRef.name) && "
                "s.configMapRef.name != '') || (has(s.secretRef) && has(s.secretRef.name) && "
                "s.secretRef.name != ''))",
                "spec.envFrom[].configMapRef.name or secretRef.name is required",
            ),
            max_items=16,
            overlay={
                "items": {
                    "properties": {
                        "prefix": {"maxLength": 128},
                        "configMapRef": {"properties": {"name": {"maxLength": 253}}},
                        "secretRef": {"properties": {"name": {"maxLength": 253}}},
                    }
                }
            },
        ),
    )
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, json_schema_extra=EMPTY_DEFAULT)
    tracing: TracingSpec | None = Field(
        default=None,
        description=(
            "OpenTelemetry tracing of the workers (workflow and activity spans over OTLP); see "
            "docs/observability.md. Unset: no tracing (spec.env may still set OTEL_* variables)."
        ),
    )
    template: PodTemplateSpec | None = None
    disruption_budget: DisruptionBudgetSpec | None = None
    rollout: RolloutSpec | None = None
    network_policy: PoolNetworkPolicySpec | None = Field(
        default=None,
        description=(
            "Create a NetworkPolicy for the pool's pods (enforced only where the cluster's "
            "network plugin enforces NetworkPolicies); see PoolNetworkPolicySpec."
        ),
    )
    versioning: VersioningSpec | None = Field(
        default=None,
        description=(
            "Run each build as its own Temporal Worker Deployment Version, with running "
            "workflows kept on the build that started them; see docs/versioning.md. Unset: "
            "one Deployment, rolled in place."
        ),
    )

    _no_secrets_inline = field_validator("connection")(refuse_inline_secrets)

    @model_validator(mode="after")
    def _tracing_env(self) -> TemporalWorkerPoolSpec:
        if self.tracing is not None and any(
            str(e.get("name", "")).upper() in TRACING_ENV_NAMES for e in self.env or []
        ):
            raise ValueError(TRACING_ENV_MESSAGE)
        return self

    @model_validator(mode="after")
    def _exactly_one_connection(self) -> TemporalWorkerPoolSpec:
        if (self.connection is None) == (self.connection_ref is None):
            raise ValueError(
                "set exactly one of spec.connection (a plain or system-TLS address) or "
                "spec.connectionRef (a TemporalConnection or ClusterTemporalConnection)"
            )
        return self

    @property
    def effective_connection(self) -> ConnectionSpec:
        """The inline connection, or the one the planner resolved from connectionRef
        (`plan.resolve_connection`); renderers and the scaler read only this."""
        if self.connection is None:
            raise ValueError(f"spec.connectionRef {self.connection_ref} is not resolved")
        return self.connection


class BacklogStatus(Model):
    count: int = Field(description="Approximate backlog (workflow + activity tasks).")
    age_seconds: float | None = Field(default=None, description="Age of the oldest task.")
    observed_at: str = Field(description="When Temporal reported it (RFC 3339).")


class TemporalWorkerPoolStatus(Model):
    """Observed state; written only by the operator (status subresource)."""

    observed_generation: int | None = None
    """The generation the operator last acted on; current means the status describes the spec."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Progressing and Degraded, plus the conditions of the features in use."""
    replicas: int | None = Field(default=None, description="Pods of the pool (scale subresource).")
    ready_replicas: int | None = None
    """Pods of the pool that are ready."""
    desired_replicas: int | None = Field(default=None, description="What the pool asks for now.")
    selector: str | None = Field(default=None, description="Label selector (scale subresource).")
    connection: str | None = None
    """The Temporal address the workers use: spec.connection's, or the referenced connection's."""
    runtime_image: str | None = Field(
        default=None,
        description=(
            "The worker image the pool's Deployment runs: spec.image resolved, an unset tag "
            "being the operator's version."
        ),
    )
    backlog: BacklogStatus | None = None
    """The task-queue backlog the Builtin autoscaler last read from Temporal."""
    last_scale_time: str | None = None
    """When the Builtin autoscaler last changed the replicas (RFC 3339)."""
    versions: VersionList | None = None
    """Versioned pools: every build the operator runs or still tracks (spec.versioning)."""
    worker_deployment_name: str | None = None
    """Versioned pools: the Temporal Worker Deployment the builds register in (kept after
    spec.versioning is removed, until the pool's last build is retired)."""
    current_build_id: str | None = None
    """Versioned pools: the build Temporal routes new work to."""
    target_build_id: str | None = None
    """Versioned pools: the build the spec asks for."""
    ramp_percentage: float | None = None
    """Versioned pools: share of new work sent to the target build while it ramps."""
    version_replicas: VersionReplicasList | None = None
    """Versioned pools with the Builtin autoscaler: its decision per build (desiredReplicas is
    then the sum for the builds that get new work)."""
    release_group: ReleaseGroupStatus | None = None
    """Versioned pools that share their Worker Deployment with others: the group's state."""


class TemporalWorkerPool(Model):
    """The whole object, as handed to the renderers."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any]
    spec: TemporalWorkerPoolSpec
    status: TemporalWorkerPoolStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("labels") or {}).items()}

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 0))

    @classmethod
    def from_body(cls, body: Any) -> TemporalWorkerPool:
        """Build from a kopf body / API dict (status ignored when malformed)."""
        data = dict(body)
        return cls.model_validate(
            {
                "metadata": dict(data.get("metadata", {})),
                "spec": dict(data.get("spec", {})),
            }
        )
