"""TemporalWorkerPool v1alpha1: the single source of truth for the API.

`make crds` generates `crds/workerpools.io_temporalworkerpools.yaml` from these models
(see `crdgen.py`); field descriptions become `kubectl explain` text and the
`x-kubernetes-validations`
attached here become CEL admission rules. Pure module: no Kubernetes client, no kopf.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "workerpools.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TemporalWorkerPool"
PLURAL = "temporalworkerpools"
SINGULAR = "temporalworkerpool"
SHORT_NAMES = ["workerpools", "workerpool", "twp"]
CATEGORIES = ["temporal"]

DEFAULT_IMAGE_REPOSITORY = "workerpools/worker-runtime"
DEFAULT_IMAGE_TAG = "0.1.0"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

# Schema markers understood by crdgen (kept as json_schema_extra so pydantic stays the source).
PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}
INT_OR_STRING = {"x-kubernetes-int-or-string": True}


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Attach CEL rules (rule, message) to a model's schema."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


IntOrString = Annotated[int | str, Field(json_schema_extra=INT_OR_STRING)]
QUANTITY_PATTERN = r"^[0-9.]+([eE][-+]?[0-9]+|[KMGTPE]i?|m|k)?$"
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={**INT_OR_STRING, "pattern": QUANTITY_PATTERN}),
]
# Nested objects defaulted to {} at admission so their own field defaults show in the API.
EMPTY_DEFAULT: JsonDict = {"default": {}}
# Kubernetes objects we pass through verbatim (the API server validates them on the child).
KubeObject = Annotated[dict[str, Any], Field(json_schema_extra={"type": "object", **PRESERVE})]
KubeObjectList = Annotated[
    list[dict[str, Any]], Field(json_schema_extra={"items": {"type": "object", **PRESERVE}})
]


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields ignored on read."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def dump(self) -> dict[str, Any]:
        """Serialize as the API server stores it (camelCase, unset optionals omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- connection -----------------------------------------------------------------------------


class SecretKeyRef(Model):
    """A key inside a Secret in the pool's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret in the pool's namespace.")
    key: str = Field(default="api-key", min_length=1, description="Key inside the Secret.")


class TLSSpec(Model):
    """TLS towards the Temporal frontend. An empty `tls: {}` means TLS with the system CA roots."""

    secret_name: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Secret (type kubernetes.io/tls or Opaque) mounted read-only into the workers. Keys: "
            "`tls.crt` and `tls.key` (client certificate for mTLS) and optional `ca.crt` (private "
            "CA of the server). Omit to use the system CA roots without a client certificate."
        ),
    )
    server_name: str | None = Field(
        default=None, description="Override the TLS server name (SNI) checked on the certificate."
    )


class ConnectionSpec(Model):
    """How workers reach Temporal. Credentials are referenced from Secrets, never inlined."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                r"self.address.matches('^(\\[[0-9a-fA-F:.]+\\]|[^:/\\s\\[\\]]+):[0-9]{1,5}$')",
                "connection.address must be host:port without a scheme, e.g. "
                "temporal-frontend.temporal.svc:7233 or my-ns.a1b2c.tmprl.cloud:7233",
            ),
            (
                "!has(self.apiKeySecretRef) || has(self.tls)",
                "connection.apiKeySecretRef requires connection.tls: an API key must not travel "
                "in clear text; add `tls: {}` (system CA roots) or a tls.secretName",
            ),
        )
    )

    address: str = Field(description="Temporal frontend gRPC endpoint as host:port.")
    namespace: str = Field(default="default", min_length=1, description="Temporal namespace.")
    tls: TLSSpec | None = Field(default=None, description="Enable TLS; see TLSSpec.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Temporal Cloud API key, read from this Secret key into the worker env.",
    )


# --- image, autoscaling ---------------------------------------------------------------------


class ImageSpec(Model):
    """Container image of the workers; defaults to the shared worker runtime image."""

    repository: str = Field(default=DEFAULT_IMAGE_REPOSITORY, min_length=1)
    tag: str = Field(default=DEFAULT_IMAGE_TAG, min_length=1)
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


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
    min_replicas: int = Field(default=1, ge=0, description="Lower bound; 0 allows scale to zero.")
    max_replicas: int = Field(default=10, ge=1, description="Upper bound.")
    target_backlog_per_replica: int = Field(
        default=5, ge=1, description="Desired replicas = ceil(backlog / targetBacklogPerReplica)."
    )
    activation_backlog: int = Field(
        default=0, ge=0, description="Scale up from zero only when backlog exceeds this."
    )
    poll_interval_seconds: int = Field(
        default=5, ge=1, le=300, description="Builtin engine: seconds between backlog polls."
    )
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600, description="Use the lowest recommendation over this window."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Use the highest recommendation over this window."
    )
    cpu_utilization: int | None = Field(
        default=None, ge=1, le=100, description="HPA engine: target average CPU utilization %."
    )
    memory_utilization: int | None = Field(
        default=None, ge=1, le=100, description="HPA engine: target average memory utilization %."
    )


# --- pod shape ------------------------------------------------------------------------------


class ResourceRequirements(Model):
    """Container resources, as in a Pod (quantities like `500m`, `2Gi`)."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class GPUSpec(Model):
    """Schedules each worker onto GPU nodes with `count` devices of `resourceName`."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.count >= 1",
                "gpu.count must be at least 1; remove spec.gpu for a CPU-only pool",
            ),
        )
    )

    count: int = Field(default=1, description="GPUs per worker pod (limits and requests).")
    resource_name: str = Field(
        default=DEFAULT_GPU_RESOURCE,
        pattern=r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$",
        description="Extended resource name; MIG slices allowed, e.g. nvidia.com/mig-1g.10gb.",
    )
    shm_size: Quantity | None = Field(
        default="1Gi", description="Size of the in-memory /dev/shm (PyTorch dataloaders need it)."
    )
    node_selector: dict[str, str] | None = Field(
        default=None, description="Extra node labels for GPU pods (e.g. a GPU product)."
    )
    tolerations: KubeObjectList | None = Field(
        default=None,
        description="Tolerations for GPU nodes; default tolerates nvidia.com/gpu (any effect).",
    )
    runtime_class_name: str | None = Field(default=None, description="e.g. `nvidia`.")


class WorkerTuning(Model):
    """Runtime tuning passed to the Temporal SDK Worker via the env contract."""

    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)
    max_activities_per_second: float | None = Field(
        default=None, gt=0, description="Per-worker activity rate limit."
    )
    max_task_queue_activities_per_second: float | None = Field(
        default=None, gt=0, description="Server-enforced rate limit across the whole task queue."
    )
    max_cached_workflows: int | None = Field(default=None, ge=0)
    graceful_shutdown_seconds: int = Field(
        default=30,
        ge=0,
        le=86400,
        description="Drain time on SIGTERM; the pod's grace period is set longer than this.",
    )


class ServiceMonitorSpec(Model):
    """prometheus-operator ServiceMonitor for the workers' /metrics."""

    enabled: bool | None = Field(
        default=None,
        description=(
            "Unset (default): Auto, create it when the ServiceMonitor CRD is installed and report "
            "CRDNotInstalled otherwise. true: required, Degraded without the CRD. false: never. "
            "(A bool-or-string field cannot be type-checked by CEL, hence unset means Auto.)"
        ),
    )
    interval: str = Field(default="30s", pattern=r"^([0-9]+(ms|s|m|h))+$")
    labels: dict[str, str] | None = Field(
        default=None, description="Labels your Prometheus' serviceMonitorSelector matches."
    )

    def mode(self) -> Literal["Auto", "Enabled", "Disabled"]:
        """Normalize the bool-or-string field."""
        if self.enabled is None:
            return "Auto"
        return "Enabled" if self.enabled else "Disabled"


class MetricsSpec(Model):
    """Where workers serve /metrics, /healthz and /readyz."""

    port: int = Field(default=9090, ge=1024, le=65535)
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=ServiceMonitorSpec, json_schema_extra=EMPTY_DEFAULT
    )


class PodMetadata(Model):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodTemplateSpec(Model):
    """Pod-level overrides merged into the rendered Deployment."""

    metadata: PodMetadata | None = None
    node_selector: dict[str, str] | None = None
    tolerations: KubeObjectList | None = None
    affinity: KubeObject | None = None
    topology_spread_constraints: KubeObjectList | None = None
    service_account_name: str | None = None
    priority_class_name: str | None = None
    image_pull_secrets: KubeObjectList | None = None
    volumes: KubeObjectList | None = Field(
        default=None,
        description=(
            "Extra pod volumes (core/v1 Volume), e.g. a PersistentVolumeClaim holding model "
            "weights for worker_runtime.llm.gpu. Names tmp, dshm and temporal-tls are taken."
        ),
    )
    volume_mounts: KubeObjectList | None = Field(
        default=None,
        description=(
            "Mounts of `volumes` into the worker container (core/v1 VolumeMount), e.g. "
            "{name: models, mountPath: /models, readOnly: true}."
        ),
    )


class DisruptionBudgetSpec(Model):
    """PodDisruptionBudget for the pool's pods; exactly one of the two fields."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.maxUnavailable) != has(self.minAvailable)",
                "disruptionBudget needs exactly one of maxUnavailable or minAvailable",
            ),
        )
    )

    max_unavailable: IntOrString | None = None
    min_available: IntOrString | None = None


class RolloutSpec(Model):
    """RollingUpdate strategy of the Deployment."""

    max_surge: IntOrString | None = Field(default=None, description="Default 25%.")
    max_unavailable: IntOrString | None = Field(default=None, description="Default 0.")


IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"


class TemporalWorkerPoolSpec(Model):
    """Desired state of a pool of Temporal workers."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.taskQueue.matches('\\\\S')",
                "spec.taskQueue must not be empty: set it to the task queue your workflows and "
                "activities are started on",
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
                "!has(self.gpu) || !has(self.resources) || !has(self.resources.limits) || "
                "!(self.gpu.resourceName in self.resources.limits)",
                "set GPUs with spec.gpu.count, not spec.resources.limits",
            ),
        )
    )

    connection: ConnectionSpec
    task_queue: str = Field(max_length=1000, description="Task queue the workers poll.")
    workflows: list[Annotated[str, Field(pattern=IMPORT_PATH)]] = Field(
        default_factory=list,
        description="Workflow classes to register, as module:attribute import paths.",
    )
    activities: list[Annotated[str, Field(pattern=IMPORT_PATH)]] = Field(
        default_factory=list,
        description=(
            "Activities to register, as module:attribute import paths (a callable, or a function "
            "returning a list of them)."
        ),
    )
    image: ImageSpec = Field(default_factory=ImageSpec, json_schema_extra=EMPTY_DEFAULT)
    replicas: int | None = Field(
        default=None,
        ge=0,
        description="Fixed replica count (default 1). Leave unset when autoscaling is set.",
    )
    autoscaling: AutoscalingSpec | None = None
    resources: ResourceRequirements | None = None
    gpu: GPUSpec | None = None
    worker: WorkerTuning = Field(default_factory=WorkerTuning, json_schema_extra=EMPTY_DEFAULT)
    env: KubeObjectList | None = Field(default=None, description="Extra container env (EnvVar).")
    env_from: KubeObjectList | None = Field(default=None, description="EnvFromSource list.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, json_schema_extra=EMPTY_DEFAULT)
    template: PodTemplateSpec | None = None
    disruption_budget: DisruptionBudgetSpec | None = None
    rollout: RolloutSpec | None = None


# --- status ---------------------------------------------------------------------------------


class Condition(Model):
    """Shaped like metav1.Condition, so kstatus, Argo CD and Flux read it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class BacklogStatus(Model):
    count: int = Field(description="Approximate backlog (workflow + activity tasks).")
    age_seconds: float | None = Field(default=None, description="Age of the oldest task.")
    observed_at: str = Field(description="When Temporal reported it (RFC 3339).")


class TemporalWorkerPoolStatus(Model):
    """Observed state; written only by the operator (status subresource)."""

    observed_generation: int | None = None
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = Field(default_factory=list)
    replicas: int | None = Field(default=None, description="Pods of the pool (scale subresource).")
    ready_replicas: int | None = None
    desired_replicas: int | None = Field(default=None, description="What the pool asks for now.")
    selector: str | None = Field(default=None, description="Label selector (scale subresource).")
    backlog: BacklogStatus | None = None
    last_scale_time: str | None = None


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


# --- condition types and reasons: documented API ---------------------------------------------

CONDITION_READY = "Ready"
CONDITION_PROGRESSING = "Progressing"
CONDITION_DEGRADED = "Degraded"
CONDITION_SERVICE_MONITOR = "ServiceMonitorReady"
CONDITION_AUTOSCALING = "AutoscalingReady"
CONDITION_BACKLOG = "BacklogAvailable"
CONDITION_GPU_CAPACITY = "GPUCapacityAvailable"

REASONS: dict[str, str] = {
    # Ready
    "Available": "All desired replicas are updated and ready.",
    "ScaledToZero": "The pool has no replicas because the autoscaler scaled it to zero.",
    "ReplicasNotReady": "Fewer replicas are ready than desired.",
    "InvalidSpec": "The spec passed admission but cannot be rendered; see the message.",
    "ApplyFailed": "Writing a child object failed; see the message and operator logs.",
    # Progressing
    "RolloutInProgress": "The Deployment is rolling out a new template or scaling.",
    "RolloutComplete": "The latest template is fully rolled out.",
    "RolloutStalled": "The Deployment exceeded its progress deadline.",
    # ServiceMonitorReady
    "Created": "The child object exists and matches the spec.",
    "CRDNotInstalled": "The prometheus-operator/KEDA CRD is not installed in the cluster.",
    "Disabled": "The feature is turned off in the spec.",
    # Autoscaling / backlog
    "BacklogPolled": "Temporal reported the task-queue backlog.",
    "TemporalUnavailable": "DescribeTaskQueue failed; replicas are held.",
    "InsufficientGPU": "Pods are Pending for lack of schedulable GPUs.",
    "GPUsScheduled": "Every GPU pod found a node.",
    "CredentialsUnavailable": (
        "A Secret named in spec.connection (TLS or API key) is missing or lacks a key; the "
        "Builtin autoscaler cannot reach Temporal and holds replicas."
    ),
    "ResourceRequestsMissing": (
        "HPA engine: a utilization target has no matching spec.resources.requests entry, so "
        "the HPA cannot compute a percentage and does not scale."
    ),
    # Events on the pool (Builtin autoscaler); the message says why, e.g. "backlog 37 over 4 x 5"
    "ScaledUp": "Event: the Builtin autoscaler raised the Deployment's replicas.",
    "ScaledDown": "Event: the Builtin autoscaler lowered the Deployment's replicas.",
    # Degraded
    "AsExpected": "Nothing is wrong.",
}
