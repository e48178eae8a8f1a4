"""What each worker container is: image, resources, GPUs, SDK tuning and the metrics
endpoint (the parts of a pool's spec that shape the worker itself)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from worker_runtime import __version__
from worker_runtime.contract import DEFAULT_OTLP_PROTOCOL, OtlpProtocol
from workerpool_operator.api.common import (
    EMPTY_DEFAULT,
    IMAGE_DIGEST,
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    LABEL_VALUES,
    SECRET_KEY,
    KubeList,
    LabelValue,
    Model,
    Quantity,
    cel,
    k8s_field,
    name_field,
    toleration_rules,
)

DEFAULT_IMAGE_REPOSITORY = "workerpools/worker-runtime"
DEFAULT_IMAGE_TAG = __version__  # the runtime image of this release
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


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
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description=(
            "Image tag; ignored when `digest` is set. Unset, the runtime follows the operator: "
            "the operator's own version, resolved when the pool is rendered (not stored), so an "
            "operator upgrade rolls unpinned pools to the matching runtime. Set it (or `digest`) "
            "to pin. `status.runtimeImage` says what the workers run."
        ),
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
    def resolved_tag(self) -> str:
        """The tag, or the operator's version when none is set (the runtime follows it)."""
        return self.tag or DEFAULT_IMAGE_TAG

    @property
    def reference(self) -> str:
        """The container image reference the Deployment gets."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.resolved_tag}"


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


class TracingHeadersSecretRef(Model):
    """A key of a Secret in the pool's namespace whose value is the OTLP export headers."""

    name: str = name_field("spec.tracing.headersSecretRef.name", description="Name of the Secret.")
    key: str = Field(
        default="headers",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description=(
            "Key inside the Secret. Its value is OTEL_EXPORTER_OTLP_HEADERS as the OpenTelemetry "
            "spec writes it: comma-separated key=value pairs, values URL-encoded, e.g. "
            "`authorization=Bearer%20abc,x-tenant=team-a`."
        ),
    )


class TracingSpec(Model):
    """OpenTelemetry tracing of the workers: workflow and activity spans over OTLP.

    Rendered as the standard OTEL_* variables (docs/observability.md); the runtime turns them
    into temporalio's tracing interceptor with an OTLP exporter.
    """

    endpoint: str = Field(
        max_length=2048,
        # Printable ASCII but a comma (the OTEL_* list separator): no space or control
        # character reaches the workers' env (a URL in any other script is written
        # percent-encoded or as punycode).
        pattern=r"^https?://[\x21-\x2b\x2d-\x7e]+$",
        description=(
            "OTLP endpoint URL with scheme, e.g. http://otel-collector.observability:4318 "
            "(http/protobuf; /v1/traces is appended) or http://otel-collector.observability:4317 "
            "(grpc). Rendered as OTEL_EXPORTER_OTLP_ENDPOINT."
        ),
    )
    protocol: OtlpProtocol = Field(
        default=DEFAULT_OTLP_PROTOCOL,
        description="OTLP transport: http/protobuf (the OTLP default) or grpc.",
    )
    service_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="service.name of the spans (default: the pool name).",
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "Share of new traces recorded, 0 to 1 (parentbased_traceidratio: a span whose parent "
            "was sampled is always recorded)."
        ),
    )
    headers_secret_ref: TracingHeadersSecretRef | None = Field(
        default=None,
        description=(
            "Secret key holding the export headers (e.g. an API key of a tracing backend); "
            "headers are never written inline in the pool."
        ),
    )
