"""The env contract between the operator (which writes pod env) and the runtime (which reads it).

This module is the single source of truth: the operator's renderer imports `RuntimeSettings`
and `env_var()` to name variables, so renaming a field here breaks a test, not a cluster. It must
stay import-light (pydantic only, no temporalio) because the operator imports it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "TWP_"

# Mount paths the operator writes and the runtime reads.
TLS_MOUNT_PATH = "/etc/temporal/tls"
TLS_CA_FILE = "ca.crt"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
SHM_MOUNT_PATH = "/dev/shm"

# HTTP paths served on the metrics port.
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
METRICS_PATH = "/metrics"
DEFAULT_METRICS_PORT = 9090
DEFAULT_GRACEFUL_SHUTDOWN_SECONDS = 30


def _split_paths(value: object) -> object:
    """Accept a comma- or newline-separated env string as a list of import paths."""
    if isinstance(value, str):
        return [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]
    return value


ImportPaths = Annotated[list[str], NoDecode]


class _ExactEnv(EnvSettingsSource):
    """Only the exact upper-case `TWP_*` names the operator writes.

    A pool author may add env vars (`spec.env`, `envFrom`) but not the reserved `TWP_*` names;
    reading `twp_temporal_address` or an alias such as `TEMPORAL_API_KEY` would let them set
    the address or the key the worker sends anyway.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k.lower(): v
            for k, v in os.environ.items()
            if k.startswith(ENV_PREFIX) and k == k.upper()
        }


class _ExactSettings(BaseSettings):
    """Settings read from keyword arguments (tests) and one exact-name env source only: no
    dotenv file, no secrets dir, no case-insensitive or aliased names."""

    env_source: ClassVar[type[EnvSettingsSource]]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, cls.env_source(settings_cls)


class RuntimeSettings(_ExactSettings):
    """Everything the runtime reads from its environment (all names prefixed with TWP_)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)
    env_source = _ExactEnv

    temporal_address: str = Field(description="Temporal frontend host:port.")
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    task_queue: str = Field(min_length=1, description="Task queue the worker polls.")
    workflows: ImportPaths = Field(
        default_factory=list, description="module:attribute import paths of workflow classes."
    )
    activities: ImportPaths = Field(
        default_factory=list, description="module:attribute import paths of activities."
    )

    tls_enabled: bool = Field(default=False, description="Connect with TLS.")
    tls_ca_path: str | None = Field(default=None, description="Server CA bundle (PEM) path.")
    tls_cert_path: str | None = Field(default=None, description="Client certificate path (mTLS).")
    tls_key_path: str | None = Field(default=None, description="Client private key path (mTLS).")
    tls_server_name: str | None = Field(default=None, description="TLS server name override.")
    api_key: str | None = Field(
        default=None, description="Temporal Cloud API key (sent as a bearer token; requires TLS)."
    )

    # Worker Versioning (a pool with spec.versioning): all three set together, or none.
    worker_deployment_name: str | None = Field(
        default=None, min_length=1, description="Temporal Worker Deployment name."
    )
    worker_build_id: str | None = Field(
        default=None, min_length=1, description="Build ID of this worker's deployment version."
    )
    default_versioning_behavior: Literal["Pinned", "AutoUpgrade"] | None = Field(
        default=None, description="Versioning behavior of workflows that declare none."
    )

    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)
    max_activities_per_second: float | None = Field(default=None, gt=0)
    max_task_queue_activities_per_second: float | None = Field(default=None, gt=0)
    max_cached_workflows: int | None = Field(default=None, ge=0)
    graceful_shutdown_seconds: float = Field(default=DEFAULT_GRACEFUL_SHUTDOWN_SECONDS, ge=0)
    resource_tuner_target_memory: float | None = Field(
        default=None, gt=0, le=1, description="Enable the SDK resource-based tuner (0-1 of memory)."
    )
    resource_tuner_target_cpu: float | None = Field(default=None, gt=0, le=1)

    metrics_port: int = Field(default=DEFAULT_METRICS_PORT, ge=1, le=65535)
    identity: str | None = Field(
        default=None, description="Worker identity (defaults to pod name)."
    )
    pod_name: str | None = None
    pod_namespace: str | None = None
    pool_name: str | None = Field(default=None, description="Owning TemporalWorkerPool name.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    readiness_probe_seconds: float = Field(
        default=2.0, gt=0, description="How often /readyz re-checks the Temporal server."
    )
    connect_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Cap of the exponential backoff while unreachable."
    )

    # Built-in activity packs (read only when the pack is imported).
    llm_model_path: str | None = Field(
        default=None, description="Local model folder for worker_runtime.llm.gpu (no download)."
    )
    llm_max_new_tokens: int = Field(default=128, ge=1, description="Default generation length.")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", description="OpenAI-compatible API base URL."
    )
    openai_model: str | None = Field(default=None, description="Default chat model name.")
    openai_requests_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side request limit per worker process."
    )
    openai_tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side token limit per worker process."
    )
    openai_max_retries: int = Field(default=5, ge=0, description="Retries on 429/5xx per call.")
    openai_timeout_seconds: float = Field(default=120.0, gt=0, description="Per-request timeout.")

    _split_workflows = field_validator("workflows", "activities", mode="before")(_split_paths)

    @model_validator(mode="after")
    def _check_tuner(self) -> RuntimeSettings:
        """The SDK rejects a tuner combined with fixed slot counts; say so before it does."""
        mem, cpu = self.resource_tuner_target_memory, self.resource_tuner_target_cpu
        if (mem is None) != (cpu is None):
            raise ValueError(
                f"set both {env_var('resource_tuner_target_memory')} and "
                f"{env_var('resource_tuner_target_cpu')} to enable the resource-based tuner"
            )
        if mem is not None and (
            self.max_concurrent_activities is not None
            or self.max_concurrent_workflow_tasks is not None
        ):
            raise ValueError(
                "the resource-based tuner replaces fixed slot counts: unset "
                f"{env_var('max_concurrent_activities')} and "
                f"{env_var('max_concurrent_workflow_tasks')}"
            )
        if self.api_key and not self.tls_enabled:
            raise ValueError(
                f"{env_var('api_key')} is set but {env_var('tls_enabled')} is false: the key "
                f"would travel in clear text; set {env_var('tls_enabled')}=true (spec.connection"
                ".tls / the connection's spec.tls) or remove the key"
            )
        return self

    @model_validator(mode="after")
    def _check_versioning(self) -> RuntimeSettings:
        """A half-set version would register the worker unversioned or under a wrong name."""
        if (self.worker_deployment_name is None) != (self.worker_build_id is None):
            raise ValueError(
                f"set both {env_var('worker_deployment_name')} and {env_var('worker_build_id')} "
                "to run a versioned worker, or neither"
            )
        if self.default_versioning_behavior is not None and self.worker_build_id is None:
            raise ValueError(
                f"{env_var('default_versioning_behavior')} needs "
                f"{env_var('worker_deployment_name')} and {env_var('worker_build_id')}"
            )
        return self

    @property
    def versioned(self) -> bool:
        """Whether this worker runs as a Worker Deployment Version."""
        return self.worker_build_id is not None


# Settings that say where and how a worker connects (address, namespace, TLS, credentials). A
# versioned pool keeps its build ID when only these change: its Deployments roll in place.
CONNECTION_FIELDS: tuple[str, ...] = (
    "temporal_address",
    "temporal_namespace",
    "tls_enabled",
    "tls_ca_path",
    "tls_cert_path",
    "tls_key_path",
    "tls_server_name",
    "api_key",
)
# Settings the operator writes per version of a versioned pool (never part of the build hash).
VERSIONING_FIELDS: tuple[str, ...] = (
    "worker_deployment_name",
    "worker_build_id",
    "default_versioning_behavior",
)

# Worker options a pool may tune: each name is at once the field of spec.worker, the settings
# field above (env TWP_<NAME>) and the temporalio Worker keyword. Renderer and runtime loop here.
WORKER_TUNING_FIELDS: tuple[str, ...] = (
    "max_concurrent_activities",
    "max_concurrent_workflow_tasks",
    "max_activities_per_second",
    "max_task_queue_activities_per_second",
    "max_cached_workflows",
)


def env_var(field: str) -> str:
    """Return the environment variable name for a `RuntimeSettings` field (raises if unknown)."""
    if field not in RuntimeSettings.model_fields:
        raise KeyError(f"RuntimeSettings has no field {field!r}")
    return f"{ENV_PREFIX}{field.upper()}"


# --- OpenTelemetry tracing -------------------------------------------------------------------
# Tracing uses the standard OpenTelemetry names (the OTLP exporter spec), not TWP_*: the same
# variables configure the worker with or without the operator, and the OpenTelemetry SDK reads
# the exporter's own (endpoint, headers, timeout, certificate) directly. The operator writes the
# ones below from spec.tracing; the runtime reads them through `TracingSettings`.
OTEL_ENV: dict[str, str] = {
    "sdk_disabled": "OTEL_SDK_DISABLED",
    "traces_exporter": "OTEL_TRACES_EXPORTER",
    "endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "traces_endpoint": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "protocol": "OTEL_EXPORTER_OTLP_PROTOCOL",
    "traces_protocol": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "headers": "OTEL_EXPORTER_OTLP_HEADERS",
    "service_name": "OTEL_SERVICE_NAME",
    "sampler": "OTEL_TRACES_SAMPLER",
    "sampler_arg": "OTEL_TRACES_SAMPLER_ARG",
}
OtlpProtocol = Literal["grpc", "http/protobuf"]
# The OTLP exporter spec's default protocol.
DEFAULT_OTLP_PROTOCOL: OtlpProtocol = "http/protobuf"
TraceSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


def otel_env_var(field: str) -> str:
    """Return the OTEL_* variable name of a `TracingSettings` field (raises if unknown)."""
    return OTEL_ENV[field]


class _ExactOtelEnv(EnvSettingsSource):
    """Only the exact upper-case OTEL_* names of `OTEL_ENV`, keyed by field name."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {f: os.environ[n] for f, n in OTEL_ENV.items() if n in os.environ}


class TracingSettings(_ExactSettings):
    """OpenTelemetry tracing of the worker (standard OTEL_* names, see `OTEL_ENV`).

    Tracing is on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
    OTEL_EXPORTER_OTLP_ENDPOINT), unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
    Off, the runtime imports nothing of OpenTelemetry.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    env_source = _ExactOtelEnv

    sdk_disabled: bool = False
    traces_exporter: Literal["otlp", "none"] = Field(
        default="otlp", description="otlp (the only exporter the runtime ships) or none."
    )
    endpoint: str | None = Field(
        default=None, description="OTLP base URL; http/protobuf appends /v1/traces."
    )
    traces_endpoint: str | None = Field(default=None, description="OTLP URL for traces only.")
    protocol: OtlpProtocol | None = None
    traces_protocol: OtlpProtocol | None = None
    headers: str | None = Field(
        default=None, description="key=value,... sent with every export (read by the SDK)."
    )
    service_name: str | None = Field(
        default=None, description="service.name (default: the pool name)."
    )
    sampler: TraceSampler = "parentbased_always_on"
    sampler_arg: float | None = Field(
        default=None, ge=0, le=1, description="Ratio of the *traceidratio samplers (0-1)."
    )

    @field_validator("endpoint", "traces_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        """The exporters need a scheme; host:port alone would fail at the first export."""
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be a URL with http:// or https://, e.g. http://collector:4318")
        return value

    @property
    def enabled(self) -> bool:
        """Whether the worker exports spans."""
        configured = self.endpoint is not None or self.traces_endpoint is not None
        return configured and not self.sdk_disabled and self.traces_exporter != "none"

    @property
    def effective_protocol(self) -> OtlpProtocol:
        """The traces protocol, else the general one, else the spec default (http/protobuf)."""
        return self.traces_protocol or self.protocol or DEFAULT_OTLP_PROTOCOL
