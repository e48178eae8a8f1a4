"""OpenTelemetry tracing end to end: a runtime worker process with tracing on (the OTEL_*
variables the operator renders from spec.tracing), the real Temporal dev server, and a real
OpenTelemetry Collector on loopback (built from its Go modules by hack/build-otelcol.sh) whose
file exporter the test reads.

What a user notices: the client's, the workflow's and the activity's spans arrive as one trace,
with the worker's resource (pool, namespace, task queue, build ID when versioned), and the last
spans are not lost when the pod is stopped (the batch delay is set far beyond the test, so only
the flush on drain can deliver them).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from testbed import otelcol
from testbed.temporal import TemporalDevServer
from tests.runtime.conftest import SpawnRuntime
from tests.runtime.helpers import base_env, describe, registered, unique_queue


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[otelcol.Collector]:
    if otelcol.missing():
        reason = (
            f"the OpenTelemetry Collector is not built in {otelcol.bin_dir()}: run `make tools` "
            "(hack/build-otelcol.sh)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with otelcol.running_collector(tmp_path) as running:
        yield running


async def wait_spans(
    collector: otelcol.Collector, trace_id: str, names: set[str], wait_s: float = 60
) -> list[otelcol.Span]:
    """The spans of one trace once all `names` are among them (fails with what arrived)."""
    deadline = time.monotonic() + wait_s
    while True:
        spans = [s for s in collector.spans() if s.trace_id == trace_id]
        if names <= {s.name for s in spans}:
            return spans
        if time.monotonic() > deadline:
            seen = sorted({(s.trace_id[:8], s.name) for s in collector.spans()})
            raise AssertionError(f"missing {names - {s.name for s in spans}}; seen {seen}")
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_workflow_and_activity_spans_reach_the_collector_as_one_trace(
    protocol: str,
    temporal: TemporalDevServer,
    collector: otelcol.Collector,
    spawn_runtime: SpawnRuntime,
) -> None:
    queue = unique_queue("traced")
    versioned = protocol == "grpc"  # one run of each: versioned over gRPC, plain over HTTP
    deployment, build = f"team-{uuid.uuid4().hex[:6]}/traced", "1.0-abc"
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    extra = {
        "TWP_POOL_NAME": "traced-pool",
        "TWP_POD_NAME": "traced-pool-0",
        "TWP_POD_NAMESPACE": "team-a",
        # What render/deployment.py writes from spec.tracing.
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "traced-pool",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        # Ten minutes between batches: spans reach the collector only by the flush on drain.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    if versioned:
        extra |= {
            "TWP_WORKER_DEPLOYMENT_NAME": deployment,
            "TWP_WORKER_BUILD_ID": build,
            "TWP_DEFAULT_VERSIONING_BEHAVIOR": "Pinned",
        }
    rt = spawn_runtime(base_env(temporal, queue, **extra))
    await rt.wait_status("/readyz", 200)
    assert "Tracing on: OTLP" in rt.output

    # The caller's side, as an application would trace it: its own provider and the SDK's
    # interceptor on its client, exporting to the same collector.
    provider = TracerProvider(resource=Resource.create({"service.name": "test-client"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("test")
    client = await Client.connect(
        temporal.address, namespace=temporal.namespace, interceptors=[TracingInterceptor(tracer)]
    )
    if versioned:
        assert await registered(client, deployment, build), rt.output
        found = await describe(client, deployment)
        assert found is not None
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace, deployment_name=deployment, build_id=build,
                conflict_token=found.conflict_token, identity="test",
            )
        )  # fmt: skip
    with tracer.start_as_current_span("checkout") as root:
        trace_id = f"{root.get_span_context().trace_id:032x}"
        result = await asyncio.wait_for(
            client.execute_workflow(
                "GreetWorkflow", "otel", id=f"traced-{uuid.uuid4()}", task_queue=queue
            ),
            120,
        )
    assert result == "HELLO, OTEL!"
    provider.shutdown()

    # Stopped like a pod: the worker drains, flushes its spans and exits 0.
    assert await rt.terminate() == 0, rt.output
    worker_names = {
        "RunWorkflow:GreetWorkflow",
        "StartActivity:greet",
        "StartActivity:shout",
        "RunActivity:greet",
        "RunActivity:shout",
    }
    spans = await wait_spans(
        collector, trace_id, {"checkout", "StartWorkflow:GreetWorkflow", *worker_names}
    )
    by_name = {s.name: s for s in spans}
    assert by_name["StartWorkflow:GreetWorkflow"].resource["service.name"] == "test-client"
    # The workflow's span is a child of the client's: one trace, not two that look alike.
    start_ids = {s.span_id for s in spans if s.name == "StartWorkflow:GreetWorkflow"}
    assert by_name["RunWorkflow:GreetWorkflow"].parent_span_id in start_ids
    for name in worker_names:
        resource = by_name[name].resource
        assert resource["service.name"] == "traced-pool", (name, resource)
        assert resource["temporal.worker_pool"] == "traced-pool"
        assert resource["k8s.namespace.name"] == "team-a"
        assert resource["k8s.pod.name"] == "traced-pool-0"
        assert resource["temporal.namespace"] == temporal.namespace
        assert resource["temporal.task_queue"] == queue
        if versioned:
            assert resource["temporal.worker.build_id"] == build
            assert resource["temporal.worker.deployment_name"] == deployment
        else:
            assert "temporal.worker.build_id" not in resource
