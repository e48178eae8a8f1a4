"""TemporalWorkerPool v1alpha1: the single source of truth for the API.

`make crds` generates `crds/workerpools.io_temporalworkerpools.yaml` from these models
(see `crdgen.py`); field descriptions become `kubectl explain` text and the
`x-kubernetes-validations`
attached here become CEL admission rules. Pure module: no Kubernetes client, no kopf.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from worker_runtime import __version__
from worker_runtime.contract import ENV_PREFIX, SHM_MOUNT_PATH, TLS_MOUNT_PATH
from workerpool_operator.api.versioning import VersioningSpec, VersionList
from workerpool_operator.reasons import DOCS as _REASON_DOCS

GROUP = "workerpools.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TemporalWorkerPool"
PLURAL = "temporalworkerpools"
SINGULAR = "temporalworkerpool"
SHORT_NAMES = ["workerpools", "workerpool", "twp"]
CATEGORIES = ["temporal"]

DEFAULT_IMAGE_REPOSITORY = "workerpools/worker-runtime"
DEFAULT_IMAGE_TAG = __version__  # the runtime image of this release
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
# Safety cap on spec.replicas and autoscaling.maxReplicas unless spec.replicaLimit raises it.
DEFAULT_REPLICA_LIMIT = 100
MAX_REPLICA_LIMIT = 10000

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
# Volumes and mount paths the renderer adds to every pod (scratch /tmp, GPU /dev/shm, TLS Secret).
RESERVED_VOLUMES = ("tmp", "dshm", "temporal-tls")
RESERVED_MOUNT_PATHS = ("/tmp", SHM_MOUNT_PATH, TLS_MOUNT_PATH)

# Schema markers understood by crdgen (kept as json_schema_extra so pydantic stays the source).
PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}
INT_OR_STRING = {"x-kubernetes-int-or-string": True}


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Attach CEL rules (rule, message) to a model's schema."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def k8s_field(
    name: str,
    *rules: tuple[str, str],
    max_items: int | None = None,
    max_properties: int | None = None,
    overlay: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark a field as typed by the upstream Kubernetes schema `name` (see k8s_schemas.json).

    crdgen replaces the field's schema with the one extracted from the Kubernetes OpenAPI of the
    version the test bed runs (hack/k8s_schemas.py), keeping this field's description, `rules`
    (CEL for what OpenAPI cannot say) and the size bounds that keep CEL cost estimates finite.
    `overlay` is merged into the upstream schema (nested dicts merge): only for bounds that the
    Kubernetes API enforces in Go but not in its OpenAPI, such as a label value's grammar.
    """
    extra: dict[str, Any] = {"x-k8s-field": name}
    if overlay:
        extra["x-k8s-overlay"] = overlay
    if rules:
        extra.update(cel(*rules))
    if max_items is not None:
        extra["maxItems"] = max_items
    if max_properties is not None:
        extra["maxProperties"] = max_properties
    return extra


IntOrString = Annotated[int | str, Field(json_schema_extra=INT_OR_STRING)]
# The resource.Quantity grammar (the same pattern the extracted Kubernetes schema carries).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
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
        # A field's docstring is its description (kubectl explain), like Field(description=).
        use_attribute_docstrings=True,
    )

    def dump(self) -> dict[str, Any]:
        """Serialize as the API server stores it (camelCase, unset optionals omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- grammar shared by several fields ---------------------------------------------------------


def cel_strings(values: tuple[str, ...]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# distribution/reference: [host[:port]/]path, path components lowercase; no tag, no digest.
_DOMAIN_PART = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*"
IMAGE_REPOSITORY = rf"^({_DOMAIN_PART}(\.{_DOMAIN_PART})*(:[0-9]+)?/)?{_PATH_PART}(/{_PATH_PART})*$"
IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_DIGEST = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
ADDRESS = rf"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?):{PORT}$"
# Environment variable names (and envFrom prefixes): printable ASCII other than '=' (core/v1).
ENV_NAME = r"^[ -<>-~]+$"
ENV_PREFIX_CHARS = r"^[ -<>-~]*$"
PERCENT_UP_TO_100 = r"^(100|[1-9]?[0-9])%$"


def name_field(what: str, **kwargs: Any) -> Any:
    """A Kubernetes object name (DNS-1123 subdomain) with a message naming `what`."""
    return Field(
        min_length=1,
        max_length=253,
        json_schema_extra=cel(
            (
                f"self.matches(r'{DNS_SUBDOMAIN}')",
                f"{what} must be a Kubernetes object name: lowercase letters, digits, '-' and "
                "'.', starting and ending with a letter or digit",
            )
        ),
        **kwargs,
    )


# A label value as the API server checks it, as a schema of the map's values (no CEL cost: CEL
# over map keys of unbounded length exceeds the API server's cost budget, so keys are not checked).
LABEL_VALUES: dict[str, Any] = {
    "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
}
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


def int_or_percent(what: str, *, up_to_100: bool) -> tuple[str, str]:
    """CEL: a non-negative count or a percentage (bounded to 100% where Kubernetes bounds it)."""
    if up_to_100:
        return (
            f"type(self) == int ? self >= 0 : self.matches(r'{PERCENT_UP_TO_100}')",
            f"{what} must be a pod count (>= 0) or a percentage from 0% to 100%, e.g. 1 or 25%",
        )
    return (
        "type(self) == int ? self >= 0 : self.matches(r'^[0-9]{1,9}%$')",
        f"{what} must be a pod count (>= 0) or a percentage, e.g. 1 or 25%",
    )


def toleration_rules(what: str) -> tuple[tuple[str, str], ...]:
    """What core/v1 validation checks on tolerations but OpenAPI cannot express."""
    return (
        (
            "self.all(t, !has(t.operator) || t.operator in ['Exists', 'Equal'])",
            f"{what}[].operator must be Exists or Equal",
        ),
        (
            "self.all(t, !has(t.effect) || "
            "t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'])",
            f"{what}[].effect must be NoSchedule, PreferNoSchedule, NoExecute or empty (all)",
        ),
        (
            "self.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || "
            "t.value == '')",
            f"{what}[]: operator Exists matches any value; remove value or use operator Equal",
        ),
        (
            "self.all(t, (has(t.key) && t.key != '') || (has(t.operator) && "
            "t.operator == 'Exists'))",
            f"{what}[]: an empty key matches every taint only with operator Exists",
        ),
    )


class LabelSelectorRequirement(Model):
    """One matchExpressions entry of a metav1.LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "allowedNamespaces.matchExpressions[]: In and NotIn need values; Exists and "
                "DoesNotExist take none",
            ),
        )
    )

    key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY)
    """The namespace label the requirement tests."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value is tested."""
    values: list[LabelValue] = Field(default_factory=list, max_length=64)
    """The values for In and NotIn (none for Exists and DoesNotExist)."""


class NamespaceSelector(Model):
    """A metav1.LabelSelector on Namespaces. `{}` selects every namespace."""

    match_labels: dict[str, str] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra={**LABEL_VALUES, "maxProperties": 32},
    )
    """Namespaces whose labels have all these values."""
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=16)
    """Requirements on namespace labels, all of which must hold."""


# --- connection -----------------------------------------------------------------------------


class SecretKeyRef(Model):
    """A key inside a Secret in the pool's namespace."""

    name: str = name_field(
        "connection.apiKeySecretRef.name", description="Name of the Secret in the pool's namespace."
    )
    key: str = Field(
        default="api-key",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description="Key inside the Secret (letters, digits, '-', '_', '.').",
    )


class TLSSpec(Model):
    """TLS towards the Temporal frontend. An empty `tls: {}` means TLS with the system CA roots."""

    secret_name: str | None = name_field(
        "connection.tls.secretName",
        default=None,
        description=(
            "Refused since 0.3 (admission): a pool may not name a Secret; put the certificate "
            "into a TemporalConnection and use spec.connectionRef."
        ),
    )
    server_name: str | None = Field(
        default=None,
        max_length=253,
        description="Override the TLS server name (SNI) checked on the certificate.",
    )


MOVE_CREDENTIALS = (
    "move the credentials into a TemporalConnection (spec.tls.secretName, "
    "spec.apiKeySecretRef; its Secrets labelled workerpools.io/temporal-credentials=true) and "
    "reference it with spec.connectionRef: {kind: TemporalConnection, name: ...} instead of "
    "spec.connection"
)


class ConnectionSpec(Model):
    """How workers reach Temporal, inline: a plain or system-TLS address, never a Secret.

    Connections with credentials (mTLS certificate, API key) are TemporalConnection or
    ClusterTemporalConnection objects, referenced with spec.connectionRef."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                f"self.address.matches(r'{ADDRESS}')",
                "connection.address must be host:port with a port from 1 to 65535 and no scheme, "
                "e.g. temporal-frontend.temporal.svc:7233 or my-ns.a1b2c.tmprl.cloud:7233",
            ),
            (
                "!has(self.tls) || !has(self.tls.secretName)",
                "spec.connection.tls.secretName is no longer accepted in a pool: "
                + MOVE_CREDENTIALS,
            ),
            (
                "!has(self.apiKeySecretRef)",
                "spec.connection.apiKeySecretRef is no longer accepted in a pool: "
                + MOVE_CREDENTIALS,
            ),
        )
    )

    address: str = Field(
        max_length=512, description="Temporal frontend gRPC endpoint as host:port."
    )
    namespace: str = Field(
        default="default", min_length=1, max_length=1000, description="Temporal namespace."
    )
    tls: TLSSpec | None = Field(
        default=None, description="Enable TLS with the system CA roots (`tls: {}`); see TLSSpec."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Refused since 0.3 (admission): put the API key into a TemporalConnection and use "
            "spec.connectionRef."
        ),
    )


class ConnectionRef(Model):
    """A TemporalConnection in the pool's namespace, or a ClusterTemporalConnection."""

    kind: Literal["TemporalConnection", "ClusterTemporalConnection"] = Field(
        default="TemporalConnection",
        description=(
            "TemporalConnection (in the pool's namespace) or ClusterTemporalConnection (whose "
            "allowedNamespaces must select the pool's namespace)."
        ),
    )
    name: str = name_field("spec.connectionRef.name", description="Name of the connection.")


# --- image, autoscaling ---------------------------------------------------------------------


class ImageSpec(Model):
    """Container image of the workers; defaults to the shared worker runtime image.

    Rendered as `repository:tag`, or `repository@digest` when `digest` is set (the tag is then
    not used: a digest names exactly one image).
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!self.repository.contains('@')",
                "image.repository must not contain a digest: put it in image.digest "
                "(sha256:<64 hex digits>) and keep only the name in image.repository",
            ),
            (
                "!self.repository.matches(':[^/]*$')",
                "image.repository must not contain a tag: put it in image.tag, e.g. "
                "repository: registry.example.com/team/worker and tag: v2",
            ),
            (
                "self.repository.contains('@') || self.repository.matches(':[^/]*$') || "
                f"self.repository.matches(r'{IMAGE_REPOSITORY}')",
                "image.repository must be an image name: lowercase path components separated by "
                "'/', optionally after a registry host[:port], e.g. "
                "registry.example.com:5000/team/worker",
            ),
        )
    )

    repository: str = Field(default=DEFAULT_IMAGE_REPOSITORY, min_length=1, max_length=255)
    """Image repository, without tag or digest (they have their own fields)."""
    tag: str = Field(
        default=DEFAULT_IMAGE_TAG,
        min_length=1,
        max_length=128,
        description="Image tag; ignored when `digest` is set.",
        json_schema_extra=cel(
            (
                f"self.matches(r'{IMAGE_TAG}')",
                "image.tag must be a tag: up to 128 letters, digits, '_', '.' or '-', not "
                "starting with '.' or '-', e.g. 0.3.0",
            )
        ),
    )
    digest: str | None = Field(
        default=None,
        max_length=135,
        description=(
            "Pin the image by content digest, e.g. sha256:<64 hex digits>; the image is then "
            "`repository@digest` and `tag` is not used."
        ),
        json_schema_extra=cel(
            (
                f"self.matches(r'{IMAGE_DIGEST}')",
                "image.digest must be sha256:<64 lowercase hex digits> (or sha512:<128>), as "
                "printed by `docker buildx imagetools inspect`",
            )
        ),
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """The container's imagePullPolicy."""

    @property
    def reference(self) -> str:
        """The container image reference the Deployment gets."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"


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
        default=5, ge=1, le=300, description="Builtin engine: seconds between backlog polls."
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


# --- pod shape ------------------------------------------------------------------------------


QUANTITY_VALUES: dict[str, Any] = {"additionalProperties": {"maxLength": 64}}


class ResourceRequirements(Model):
    """Container resources, as in a Pod (quantities like `500m`, `2Gi`)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.requests) || !has(self.limits) || "
                "['cpu', 'memory', 'ephemeral-storage'].all(r, "
                "!(r in self.requests) || !(r in self.limits) || "
                "!isQuantity(string(self.requests[r])) || !isQuantity(string(self.limits[r])) || "
                "quantity(string(self.requests[r])).compareTo("
                "quantity(string(self.limits[r]))) <= 0)",
                "resources.requests must not exceed resources.limits (cpu, memory, "
                "ephemeral-storage): raise the limit or lower the request",
            ),
        )
    )

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources per worker, e.g. {cpu: 500m, memory: 1Gi}.",
        json_schema_extra=k8s_field(
            "ResourceRequirements.requests",
            (
                "self.all(k, !string(self[k]).startsWith('-'))",
                "resources.requests must not be negative",
            ),
            (
                # The OpenAPI pattern admits what the Deployment decoder refuses (an exponent
                # with a fraction, '1E.5'): the API server then answers 500 on every write.
                "self.all(k, isQuantity(string(self[k])))",
                "resources.requests values must be Kubernetes quantities such as 500m, 2, 1.5Gi "
                "or 1e3 (an exponent is a whole number)",
            ),
            max_properties=16,
            overlay=QUANTITY_VALUES,
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources per worker, e.g. {memory: 2Gi}; GPUs go in spec.gpu.",
        json_schema_extra=k8s_field(
            "ResourceRequirements.limits",
            (
                "self.all(k, !string(self[k]).startsWith('-'))",
                "resources.limits must not be negative",
            ),
            (
                # The OpenAPI pattern admits what the Deployment decoder refuses (an exponent
                # with a fraction, '1E.5'): the API server then answers 500 on every write.
                "self.all(k, isQuantity(string(self[k])))",
                "resources.limits values must be Kubernetes quantities such as 500m, 2, 1.5Gi "
                "or 1e3 (an exponent is a whole number)",
            ),
            max_properties=16,
            overlay=QUANTITY_VALUES,
        ),
    )


KubeList = list[dict[str, Any]]


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

    count: int = Field(
        default=1, le=64, description="GPUs per worker pod (limits and requests), at most 64."
    )
    resource_name: str = Field(
        default=DEFAULT_GPU_RESOURCE,
        max_length=253,
        pattern=(
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
            r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        ),
        description="Extended resource name; MIG slices allowed, e.g. nvidia.com/mig-1g.10gb.",
    )
    shm_size: Quantity | None = Field(
        default="1Gi",
        description="Size of the in-memory /dev/shm (PyTorch dataloaders need it).",
        json_schema_extra=k8s_field(
            "EmptyDirVolumeSource.sizeLimit",
            ("!string(self).startsWith('-')", "gpu.shmSize must not be negative"),
        ),
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Extra node labels for GPU pods (e.g. a GPU product).",
        json_schema_extra=k8s_field(
            "PodSpec.nodeSelector", max_properties=64, overlay=LABEL_VALUES
        ),
    )
    tolerations: KubeList | None = Field(
        default=None,
        description="Tolerations for GPU nodes; default tolerates nvidia.com/gpu (any effect).",
        json_schema_extra=k8s_field(
            "PodSpec.tolerations", *toleration_rules("gpu.tolerations"), max_items=32
        ),
    )
    runtime_class_name: str | None = name_field("gpu.runtimeClassName", default=None)
    """RuntimeClass for the pods (e.g. nvidia), when the cluster needs one for GPUs."""


class WorkerTuning(Model):
    """Runtime tuning passed to the Temporal SDK Worker via the env contract."""

    max_concurrent_activities: int | None = Field(default=None, ge=1, le=100_000)
    """Activity slots per worker (the SDK default is 100)."""
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2, le=100_000)
    """Workflow-task slots per worker (the SDK default is 100)."""
    max_activities_per_second: float | None = Field(
        default=None, gt=0, description="Per-worker activity rate limit."
    )
    max_task_queue_activities_per_second: float | None = Field(
        default=None, gt=0, description="Server-enforced rate limit across the whole task queue."
    )
    max_cached_workflows: int | None = Field(default=None, ge=0, le=1_000_000)
    """Workflows kept in the sticky cache per worker (0 turns caching off)."""
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
            "ServiceMonitorReady False/CRDNotInstalled otherwise. true: required; without the "
            "CRD, ServiceMonitorReady is False/CRDNotInstalled (the workload itself stays Ready). "
            "false: never. (A bool-or-string field cannot be type-checked by CEL, hence unset "
            "means Auto: remove the field to go back to Auto.)"
        ),
    )
    interval: str = Field(default="30s", max_length=32, pattern=r"^([0-9]+(ms|s|m|h))+$")
    """Scrape interval of the ServiceMonitor endpoint, e.g. 30s."""
    labels: dict[str, LabelValue] | None = Field(
        default=None,
        max_length=64,
        description="Labels your Prometheus' serviceMonitorSelector matches.",
    )

    def mode(self) -> Literal["Auto", "Enabled", "Disabled"]:
        """Normalize the bool-or-string field."""
        if self.enabled is None:
            return "Auto"
        return "Enabled" if self.enabled else "Disabled"


class MetricsSpec(Model):
    """Where workers serve /metrics, /healthz and /readyz."""

    port: int = Field(default=9090, ge=1024, le=65535)
    """Port of /metrics, /healthz and /readyz in the worker container (named `metrics`)."""
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=ServiceMonitorSpec, json_schema_extra=EMPTY_DEFAULT
    )


class PodMetadata(Model):
    labels: dict[str, LabelValue] | None = Field(default=None, max_length=64)
    """Extra labels on the pods (the operator's own labels win on a clash)."""
    annotations: dict[str, str] | None = Field(default=None, max_length=64)
    """Extra annotations on the pods."""


_RESERVED_PATHS = "|".join(p.strip("/").replace("/", "/+") for p in RESERVED_MOUNT_PATHS)


class PodTemplateSpec(Model):
    """Pod-level overrides merged into the rendered Deployment."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
                "self.volumes.exists(v, v.name == m.name))",
                "template.volumeMounts[].name must name one of template.volumes[].name",
            ),
        )
    )

    metadata: PodMetadata | None = None
    """Labels and annotations added to the pods (not to the Deployment)."""
    node_selector: dict[str, str] | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.nodeSelector", max_properties=64, overlay=LABEL_VALUES
        ),
    )
    tolerations: KubeList | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.tolerations", *toleration_rules("template.tolerations"), max_items=32
        ),
    )
    affinity: dict[str, Any] | None = Field(
        default=None, json_schema_extra=k8s_field("PodSpec.affinity")
    )
    topology_spread_constraints: KubeList | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodSpec.topologySpreadConstraints",
            (
                "self.all(c, c.whenUnsatisfiable in ['DoNotSchedule', 'ScheduleAnyway'])",
                "template.topologySpreadConstraints[].whenUnsatisfiable must be DoNotSchedule or "
                "ScheduleAnyway",
            ),
            (
                "self.all(c, c.maxSkew > 0)",
                "template.topologySpreadConstraints[].maxSkew must be greater than 0",
            ),
            (
                "self.all(c, !has(c.minDomains) || (c.minDomains > 0 && "
                "c.whenUnsatisfiable == 'DoNotSchedule'))",
                "template.topologySpreadConstraints[].minDomains must be greater than 0 and "
                "needs whenUnsatisfiable: DoNotSchedule",
            ),
            max_items=16,
        ),
    )
    service_account_name: str | None = name_field("template.serviceAccountName", default=None)
    """ServiceAccount the pods run as."""
    priority_class_name: str | None = name_field("template.priorityClassName", default=None)
    """PriorityClass of the pods."""
    image_pull_secrets: KubeList | None = Field(
        default=None, json_schema_extra=k8s_field("PodSpec.imagePullSecrets", max_items=16)
    )
    volumes: KubeList | None = Field(
        default=None,
        description=(
            "Extra pod volumes (core/v1 Volume), e.g. a PersistentVolumeClaim holding model "
            "weights for worker_runtime.llm.gpu. Names tmp, dshm and temporal-tls are taken."
        ),
        json_schema_extra=k8s_field(
            "PodSpec.volumes",
            (
                f"self.all(v, !(v.name in {cel_strings(RESERVED_VOLUMES)}))",
                "template.volumes: the names tmp, dshm and temporal-tls belong to the operator "
                "(scratch /tmp, GPU /dev/shm, TLS Secret); give your volume another name",
            ),
            max_items=32,
            overlay={"items": {"properties": {"name": {"maxLength": 63}}}},
        ),
    )
    volume_mounts: KubeList | None = Field(
        default=None,
        description=(
            "Mounts of `volumes` into the worker container (core/v1 VolumeMount), e.g. "
            "{name: models, mountPath: /models, readOnly: true}. The paths /tmp, /dev/shm and "
            "/etc/temporal/tls (and below it) are taken."
        ),
        json_schema_extra=k8s_field(
            "Container.volumeMounts",
            (
                f"self.all(m, !(m.name in {cel_strings(RESERVED_VOLUMES)}))",
                "template.volumeMounts: the volumes tmp, dshm and temporal-tls belong to the "
                "operator; mount one of your own template.volumes",
            ),
            (
                f"self.all(m, !m.mountPath.matches(r'^/+({_RESERVED_PATHS})/*$') && "
                f"!m.mountPath.matches(r'^/+{TLS_MOUNT_PATH.strip('/').replace('/', '/+')}/'))",
                "template.volumeMounts: the mount paths /tmp, /dev/shm and /etc/temporal/tls (and "
                "below it) belong to the operator; mount elsewhere, e.g. /models",
            ),
            max_items=32,
            overlay={
                "items": {
                    "properties": {"name": {"maxLength": 63}, "mountPath": {"maxLength": 1024}}
                }
            },
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

    max_unavailable: IntOrString | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodDisruptionBudgetSpec.maxUnavailable",
            int_or_percent("disruptionBudget.maxUnavailable", up_to_100=True),
        ),
    )
    min_available: IntOrString | None = Field(
        default=None,
        json_schema_extra=k8s_field(
            "PodDisruptionBudgetSpec.minAvailable",
            int_or_percent("disruptionBudget.minAvailable", up_to_100=True),
        ),
    )


class RolloutSpec(Model):
    """RollingUpdate strategy of the Deployment."""

    max_surge: IntOrString | None = Field(
        default=None,
        description="Default 25% (GPU pools: 0, so no extra GPU is needed to roll).",
        json_schema_extra=k8s_field(
            "RollingUpdateDeployment.maxSurge",
            int_or_percent("rollout.maxSurge", up_to_100=False),
        ),
    )
    max_unavailable: IntOrString | None = Field(
        default=None,
        description="Default 0 (GPU pools: 1). Not 0 together with maxSurge 0.",
        json_schema_extra=k8s_field(
            "RollingUpdateDeployment.maxUnavailable",
            int_or_percent("rollout.maxUnavailable", up_to_100=True),
        ),
    )


class PoolNetworkPolicySpec(Model):
    """A NetworkPolicy for the pool's pods: ingress only to the metrics port from the selected
    namespaces, egress only to the Temporal frontend and DNS, plus `extraEgress`."""

    metrics_from_namespaces: NamespaceSelector = Field(
        default_factory=NamespaceSelector,
        description=(
            "Namespaces (label selector) whose pods may scrape the metrics port; `{}` (the "
            "default) selects every namespace. Nothing else may connect to the workers."
        ),
        json_schema_extra=EMPTY_DEFAULT,
    )
    extra_egress: KubeObjectList | None = Field(
        default=None,
        max_length=16,
        description=(
            "More egress rules (networking.k8s.io/v1 NetworkPolicyEgressRule), e.g. to a model "
            "store or an LLM API. Temporal (the connection's address: an IP is matched exactly, "
            "a <svc>.<namespace>.svc name by namespace, any other host name by port only) and "
            "DNS (port 53) are always allowed."
        ),
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
        )
    )

    connection: ConnectionSpec | None = Field(
        default=None,
        description=(
            "Inline connection for the simple case: a plain or system-TLS address. Exactly one "
            "of connection or connectionRef."
        ),
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
                "repository": DEFAULT_IMAGE_REPOSITORY,
                "tag": DEFAULT_IMAGE_TAG,
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
                f"self.all(e, !(e.name in {cel_strings(RESERVED_ENV_NAMES)}))",
                "spec.env must not set the TWP_* variables the operator writes from the spec "
                f"({', '.join(RESERVED_ENV_NAMES)}): set the matching spec field instead "
                "(connection, taskQueue, workflows, activities, metrics.port, worker.*)",
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
                "self.all(s, !has(s.prefix) || !s.prefix.startsWith('TWP_'))",
                "spec.envFrom[].prefix must not start with TWP_: those variables are the worker "
                "runtime's contract (worker_runtime/contract.py)",
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

    @field_validator("connection")
    @classmethod
    def _no_secrets_inline(cls, conn: ConnectionSpec | None) -> ConnectionSpec | None:
        """The admission rule, for pools stored before it existed (they are not rolled back:
        the operator leaves their children as they are and reports InvalidSpec)."""
        if conn is not None and conn.tls is not None and conn.tls.secret_name:
            raise ValueError(f"tls.secretName is no longer accepted in a pool: {MOVE_CREDENTIALS}")
        if conn is not None and conn.api_key_secret_ref is not None:
            raise ValueError(f"apiKeySecretRef is no longer accepted in a pool: {MOVE_CREDENTIALS}")
        return conn

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


# --- status ---------------------------------------------------------------------------------


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


class BacklogStatus(Model):
    count: int = Field(description="Approximate backlog (workflow + activity tasks).")
    age_seconds: float | None = Field(default=None, description="Age of the oldest task.")
    observed_at: str = Field(description="When Temporal reported it (RFC 3339).")


class TemporalWorkerPoolStatus(Model):
    """Observed state; written only by the operator (status subresource)."""

    observed_generation: int | None = None
    """The generation the operator last acted on; current means the status describes the spec."""
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = Field(default_factory=list)
    """Ready, Progressing and Degraded, plus the conditions of the features in use."""
    replicas: int | None = Field(default=None, description="Pods of the pool (scale subresource).")
    ready_replicas: int | None = None
    """Pods of the pool that are ready."""
    desired_replicas: int | None = Field(default=None, description="What the pool asks for now.")
    selector: str | None = Field(default=None, description="Label selector (scale subresource).")
    connection: str | None = None
    """The Temporal address the workers use: spec.connection's, or the referenced connection's."""
    backlog: BacklogStatus | None = None
    """The task-queue backlog the Builtin autoscaler last read from Temporal."""
    last_scale_time: str | None = None
    """When the Builtin autoscaler last changed the replicas (RFC 3339)."""
    versions: VersionList | None = None
    """Versioned pools: every build the operator runs or still tracks (spec.versioning)."""
    current_build_id: str | None = None
    """Versioned pools: the build Temporal routes new work to."""
    target_build_id: str | None = None
    """Versioned pools: the build the spec asks for."""
    ramp_percentage: float | None = None
    """Versioned pools: share of new work sent to the target build while it ramps."""


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


# --- TemporalConnection / ClusterTemporalConnection -----------------------------------------

CONNECTION_KIND = "TemporalConnection"
CONNECTION_PLURAL = "temporalconnections"
CONNECTION_SHORT_NAMES = ["tconn"]
CLUSTER_CONNECTION_KIND = "ClusterTemporalConnection"
CLUSTER_CONNECTION_PLURAL = "clustertemporalconnections"
CLUSTER_CONNECTION_SHORT_NAMES = ["ctconn"]
CONNECTION_KINDS = (CONNECTION_KIND, CLUSTER_CONNECTION_KIND)
# A namespaced connection's Secrets must carry this label; the operator's Secret watch is
# selected on it, so no other Secret is ever sent to the operator (docs/security.md).
CREDENTIALS_LABEL = "workerpools.io/temporal-credentials"


class ConnectionSecretKeyRef(Model):
    """A key inside a Secret (see the connection kind for which namespace)."""

    name: str = name_field("apiKeySecretRef.name", description="Name of the Secret.")
    key: str = Field(
        default="api-key",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description="Key inside the Secret (letters, digits, '-', '_', '.').",
    )


class ConnectionTLSSpec(Model):
    """TLS towards the Temporal frontend. An empty `tls: {}` means TLS with the system CA roots."""

    secret_name: str | None = name_field(
        "tls.secretName",
        default=None,
        description=(
            "Secret (type kubernetes.io/tls or Opaque) with the client certificate for mTLS "
            "(`tls.crt`, `tls.key`) and/or the private CA of the server (`ca.crt`). Mounted "
            "read-only into the workers and read by the operator's scaler and health check. It "
            f"must carry the label {CREDENTIALS_LABEL}=true. Omit to use the system CA roots "
            "without a client certificate."
        ),
    )
    server_name: str | None = Field(
        default=None,
        max_length=253,
        description="Override the TLS server name (SNI) checked on the certificate.",
    )


_CONNECTION_RULES = (
    (
        f"self.address.matches(r'{ADDRESS}')",
        "spec.address must be host:port with a port from 1 to 65535 and no scheme, "
        "e.g. temporal-frontend.temporal.svc:7233 or my-ns.a1b2c.tmprl.cloud:7233",
    ),
    (
        "!has(self.apiKeySecretRef) || has(self.tls)",
        "spec.apiKeySecretRef requires spec.tls: an API key must not travel in clear text; add "
        "`tls: {}` (system CA roots) or a tls.secretName",
    ),
)


class TemporalConnectionSpec(Model):
    """Where and how to reach one Temporal namespace; owned by whoever owns its credentials.

    Pools reference it with spec.connectionRef. Its Secrets live in the connection's own
    namespace and must carry the label workerpools.io/temporal-credentials=true (the operator
    reads no other Secret)."""

    model_config = ConfigDict(json_schema_extra=cel(*_CONNECTION_RULES))

    address: str = Field(
        max_length=512, description="Temporal frontend gRPC endpoint as host:port."
    )
    namespace: str = Field(
        default="default", min_length=1, max_length=1000, description="Temporal namespace."
    )
    tls: ConnectionTLSSpec | None = Field(
        default=None, description="Enable TLS (mTLS with a client certificate Secret)."
    )
    api_key_secret_ref: ConnectionSecretKeyRef | None = Field(
        default=None,
        description=(
            "Temporal Cloud API key: this Secret key goes into the worker env and is sent by "
            "the operator as a bearer token to spec.address only."
        ),
    )


class ClusterTemporalConnectionSpec(TemporalConnectionSpec):
    """A connection shared by pools of several namespaces, owned by the cluster admin.

    The operator reads its Secrets from the operator's own namespace (workerpools-system by
    default: the credentials namespace, where only the admin writes). Worker pods cannot mount
    Secrets of another namespace: a pool's pods mount the Secrets of the same names from the
    pool's namespace (distributed by the admin, e.g. with external-secrets); the operator never
    copies Secrets."""

    model_config = ConfigDict(json_schema_extra=cel(*_CONNECTION_RULES))

    allowed_namespaces: NamespaceSelector = Field(
        description=(
            "Label selector on Namespaces whose pools may reference this connection. Required: "
            "`{}` allows every namespace, e.g. matchLabels: {temporal-tenant: payments} allows "
            "only those. A pool of another namespace gets Ready False (ConnectionNotAllowed)."
        ),
    )


class ConnectionCapabilities(Model):
    """What the Temporal server offers, found by the operator's health check."""

    task_queue_stats: bool | None = Field(
        default=None,
        description="DescribeTaskQueue reports backlog stats (server >= 1.25): Builtin scaling.",
    )
    worker_deployments: bool | None = Field(
        default=None, description="Worker Deployments (versioning) API is served."
    )


class ConnectionLastError(Model):
    """The last failure of the health check."""

    message: str
    """What failed, as the server or the client said it."""
    time: str = Field(description="When it happened (RFC 3339).")


class TemporalConnectionStatus(Model):
    """Observed by the operator's leader-only health check; written only by the operator."""

    observed_generation: int | None = None
    """The generation the health check last acted on."""
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = Field(default_factory=list)
    """Ready once the operator has reached the server (docs/api.md lists the reasons)."""
    server_version: str | None = Field(
        default=None, description="Temporal server version (GetSystemInfo)."
    )
    namespace_exists: bool | None = Field(
        default=None, description="Whether spec.namespace exists on the server (DescribeNamespace)."
    )
    capabilities: ConnectionCapabilities | None = None
    last_error: ConnectionLastError | None = None
    last_check_time: str | None = Field(default=None, description="When the server was reached.")


class _ConnectionObject(Model):
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")


class TemporalConnection(_ConnectionObject):
    api_version: str = API_VERSION
    kind: str = CONNECTION_KIND
    spec: TemporalConnectionSpec

    @classmethod
    def from_body(cls, body: Any) -> TemporalConnection:
        data = dict(body)
        return cls.model_validate(
            {"metadata": dict(data.get("metadata", {})), "spec": dict(data.get("spec", {}))}
        )


class ClusterTemporalConnection(_ConnectionObject):
    api_version: str = API_VERSION
    kind: str = CLUSTER_CONNECTION_KIND
    spec: ClusterTemporalConnectionSpec

    @classmethod
    def from_body(cls, body: Any) -> ClusterTemporalConnection:
        data = dict(body)
        return cls.model_validate(
            {"metadata": dict(data.get("metadata", {})), "spec": dict(data.get("spec", {}))}
        )


def selector_matches(selector: NamespaceSelector, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector matches everything)."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


# --- condition types and reasons: documented API ---------------------------------------------

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
