"""OpenTelemetry tracing of the worker: temporalio's TracingInterceptor with an OTLP exporter.

Configured by the standard OTEL_* variables (`contract.TracingSettings`); the operator writes
them from spec.tracing. This module is imported only when tracing is on, so a worker without
it loads nothing of OpenTelemetry. The OTLP exporters read their own endpoint, headers, timeout
and certificate variables; this module picks the protocol, the sampler and the resource.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from temporalio.contrib.opentelemetry import TracingInterceptor

from worker_runtime import __version__
from worker_runtime.contract import RuntimeSettings, TracingSettings

log = logging.getLogger("worker_runtime")

# Resource attribute keys. service.*, k8s.* are OpenTelemetry semantic conventions; the
# temporal.* keys name what a Temporal worker is (no convention exists for them).
POOL_ATTRIBUTE = "temporal.worker_pool"
NAMESPACE_ATTRIBUTE = "temporal.namespace"
TASK_QUEUE_ATTRIBUTE = "temporal.task_queue"
DEPLOYMENT_ATTRIBUTE = "temporal.worker.deployment_name"
BUILD_ID_ATTRIBUTE = "temporal.worker.build_id"
# How long a drain waits for the last spans to reach the collector.
FLUSH_TIMEOUT_MILLIS = 10_000


def resource_attributes(settings: RuntimeSettings, tracing: TracingSettings) -> dict[str, str]:
    """What every span says about the worker that produced it."""
    attrs = {
        SERVICE_NAME: tracing.service_name or settings.pool_name or settings.task_queue,
        "service.instance.id": settings.identity or settings.pod_name or "",
        "telemetry.distro.name": "worker-runtime",
        "telemetry.distro.version": __version__,
        "k8s.pod.name": settings.pod_name or "",
        "k8s.namespace.name": settings.pod_namespace or "",
        POOL_ATTRIBUTE: settings.pool_name or "",
        NAMESPACE_ATTRIBUTE: settings.temporal_namespace,
        TASK_QUEUE_ATTRIBUTE: settings.task_queue,
        DEPLOYMENT_ATTRIBUTE: settings.worker_deployment_name or "",
        BUILD_ID_ATTRIBUTE: settings.worker_build_id or "",
    }
    return {k: v for k, v in attrs.items() if v}


def sampler(tracing: TracingSettings) -> Sampler:
    """The OTEL_TRACES_SAMPLER named sampler; the ratio defaults to 1 as in the SDK."""
    ratio = 1.0 if tracing.sampler_arg is None else tracing.sampler_arg
    return {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(ratio)),
    }[tracing.sampler]


def exporter(tracing: TracingSettings) -> SpanExporter:
    """The OTLP span exporter of the configured protocol; it reads its OTEL_EXPORTER_OTLP_*
    endpoint, headers, timeout and certificate variables itself."""
    if tracing.effective_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as OTLPHttpSpanExporter,
    )

    return OTLPHttpSpanExporter()


@dataclass
class Tracing:
    """The tracer provider and the interceptor the client and worker use."""

    provider: TracerProvider
    interceptor: TracingInterceptor

    def shutdown(self) -> None:
        """Export what is buffered and stop (called once the worker has drained)."""
        if not self.provider.force_flush(FLUSH_TIMEOUT_MILLIS):
            log.warning("Tracing: not every span was exported within the drain")
        self.provider.shutdown()


def setup(settings: RuntimeSettings, tracing: TracingSettings) -> Tracing:
    """A tracer provider with the worker's resource, batching to OTLP, installed globally so
    spans that user code starts nest under the workflow and activity spans."""
    provider = TracerProvider(
        resource=Resource.create(resource_attributes(settings, tracing)),
        sampler=sampler(tracing),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter(tracing)))
    trace.set_tracer_provider(provider)
    log.info(
        "Tracing on: OTLP %s",
        tracing.effective_protocol,
        extra={"otlp_endpoint": tracing.traces_endpoint or tracing.endpoint},
    )
    return Tracing(provider, TracingInterceptor(provider.get_tracer("worker_runtime")))
