"""spec.tracing -> the OTEL_* env the operator renders -> what the runtime reads and builds.

The renderer and the runtime share the variable names through worker_runtime.contract; these
tests read the rendered env back through the runtime's own parser, so a name or value that one
side writes and the other does not understand fails here, not in a cluster.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from pydantic import ValidationError

from worker_runtime import tracing as rt_tracing
from worker_runtime.config import ConfigError, load_tracing
from worker_runtime.contract import OTEL_ENV, RuntimeSettings, TracingSettings
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.render.deployment import runtime_env


def pool(**spec: Any) -> api.TemporalWorkerPool:
    return api.TemporalWorkerPool.from_body(
        {
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {
                "connection": {"address": "t:7233"},
                "taskQueue": "q",
                "workflows": ["a:W"],
                **spec,
            },
        }
    )


def env_of(p: api.TemporalWorkerPool) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in runtime_env(p)}


def read_back(monkeypatch: pytest.MonkeyPatch, env: dict[str, dict[str, Any]]) -> TracingSettings:
    """What the runtime parses from the rendered env (Secret values filled in as the kubelet
    would)."""
    for name in OTEL_ENV.values():
        monkeypatch.delenv(name, raising=False)
    for name, e in env.items():
        if name.startswith("OTEL_"):
            monkeypatch.setenv(name, e.get("value", "authorization=Bearer%20x"))
    return load_tracing()


def test_no_tracing_renders_no_otel_variables_and_the_runtime_stays_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_of(pool())
    assert not [n for n in env if n.startswith("OTEL_")]
    assert not read_back(monkeypatch, env).enabled


def test_tracing_renders_the_standard_variables_the_runtime_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_of(
        pool(
            tracing={
                "endpoint": "http://otel-collector.observability:4317",
                "protocol": "grpc",
                "samplingRatio": 0.25,
                "headersSecretRef": {"name": "otlp-auth", "key": "h"},
            }
        )
    )
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert env["OTEL_SERVICE_NAME"]["value"] == "orders"  # the pool name by default
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
    # Headers only ever come from the Secret, never as a value in the pod spec.
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {
        "name": "OTEL_EXPORTER_OTLP_HEADERS",
        "valueFrom": {"secretKeyRef": {"name": "otlp-auth", "key": "h"}},
    }

    settings = read_back(monkeypatch, env)
    assert settings.enabled
    assert settings.effective_protocol == "grpc"
    assert settings.service_name == "orders"
    sampler = rt_tracing.sampler(settings)
    assert isinstance(sampler, ParentBased)
    assert "TraceIdRatioBased{0.25}" in sampler.get_description()  # type: ignore[no-untyped-call]
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    assert isinstance(rt_tracing.exporter(settings), OTLPSpanExporter)


def test_defaults_are_http_protobuf_and_every_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(pool(tracing={"endpoint": "http://c:4318", "serviceName": "checkout"}))
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "1.0"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env
    settings = read_back(monkeypatch, env)
    assert settings.service_name == "checkout"
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = rt_tracing.exporter(settings)
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://c:4318/v1/traces"  # the SDK appends the signal path


def test_user_otel_env_is_kept_without_tracing_and_dropped_with_it() -> None:
    user = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://mine:4318"}]
    assert env_of(pool(env=user))["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://mine:4318"
    # Admission refuses the pair; a pool stored before that rule gets spec.tracing's value.
    traced = pool(tracing={"endpoint": "http://c:4318"})
    old = traced.model_copy(update={"spec": traced.spec.model_copy(update={"env": user})})
    assert env_of(old)["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://c:4318"


@pytest.mark.parametrize(
    ("tracing", "env", "field"),
    [
        ({"endpoint": "otel-collector:4317"}, None, "endpoint"),
        ({"endpoint": "https://\U00010b54\x93R"}, None, "endpoint"),
        ({"endpoint": "http://c:4318/a b"}, None, "endpoint"),
        ({"endpoint": "http://c:4318", "protocol": "http/json"}, None, "protocol"),
        ({"endpoint": "http://c:4318", "samplingRatio": 2}, None, "samplingRatio"),
        ({"endpoint": "http://c:4318", "headersSecretRef": {}}, None, "headersSecretRef"),
        (
            {"endpoint": "http://c:4318"},
            [{"name": "otel_service_name", "value": "x"}],
            "spec.env must not set the OTEL_* variables that spec.tracing writes",
        ),
    ],
)
def test_bad_tracing_input_is_refused_naming_the_field(
    tracing: dict[str, Any], env: list[dict[str, Any]] | None, field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        pool(tracing=tracing, **({"env": env} if env else {}))
    assert field in str(err.value)


ENDPOINT, PROTOCOL = "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_"


@pytest.mark.parametrize(
    ("env", "enabled", "protocol"),
    [
        ({}, False, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, "http/protobuf"),
        ({ENDPOINT: "http://c:4317", PROTOCOL: "grpc"}, True, "grpc"),
        (
            {ENDPOINT: "http://c:4317", PROTOCOL: "grpc", f"{TRACES}PROTOCOL": "http/protobuf"},
            True,
            "http/protobuf",
        ),
        ({ENDPOINT: "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False, "http/protobuf"),
        ({ENDPOINT: "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False, "http/protobuf"),
        # Only the exact upper-case names count, as for TWP_*.
        ({ENDPOINT.lower(): "http://c:4318"}, False, "http/protobuf"),
    ],
)
def test_the_runtime_turns_tracing_on_only_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool, protocol: str
) -> None:
    for name in OTEL_ENV.values():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_tracing()
    assert settings.enabled is enabled
    assert settings.effective_protocol == protocol


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ],
)
def test_bad_otel_values_are_config_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    for n in OTEL_ENV.values():
        monkeypatch.delenv(n, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_tracing()
    assert str(err.value).startswith(f"{name}: ")


def test_the_resource_names_pool_namespace_queue_and_build() -> None:
    settings = RuntimeSettings.model_validate(
        {
            "temporal_address": "t:7233",
            "temporal_namespace": "prod",
            "task_queue": "orders-q",
            "pool_name": "orders",
            "pod_name": "orders-abc",
            "pod_namespace": "team-a",
            "worker_deployment_name": "team-a/orders",
            "worker_build_id": "1.2-abc",
        }
    )
    attrs = rt_tracing.resource_attributes(settings, TracingSettings.model_validate({}))
    assert attrs["service.name"] == "orders"
    assert attrs["service.instance.id"] == "orders-abc"
    assert attrs["k8s.namespace.name"] == "team-a"
    assert attrs["temporal.worker_pool"] == "orders"
    assert attrs["temporal.namespace"] == "prod"
    assert attrs["temporal.task_queue"] == "orders-q"
    assert attrs["temporal.worker.deployment_name"] == "team-a/orders"
    assert attrs["temporal.worker.build_id"] == "1.2-abc"
    unversioned = settings.model_copy(update={"worker_deployment_name": None,
                                                "worker_build_id": None})  # fmt: skip
    attrs = rt_tracing.resource_attributes(
        unversioned, TracingSettings.model_validate({"service_name": "svc"})
    )
    assert attrs["service.name"] == "svc"
    assert "temporal.worker.build_id" not in attrs


def test_the_sampler_ratio_is_the_one_configured() -> None:
    s = rt_tracing.sampler(
        TracingSettings.model_validate({"sampler": "traceidratio", "sampler_arg": 0.5})
    )
    assert isinstance(s, TraceIdRatioBased)
    assert s.rate == 0.5


def test_a_runtime_without_tracing_imports_no_opentelemetry() -> None:
    """Off costs nothing: the runtime's modules load without the OpenTelemetry SDK."""
    code = (
        "import sys, worker_runtime.__main__, worker_runtime.app, worker_runtime.config; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
