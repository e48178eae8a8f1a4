"""Connect, run the Temporal worker, serve probes and metrics, and drain on SIGTERM.

Everything the SDK owns (runtime, client, worker) lives inside `serve()` so it is dropped
before the interpreter exits: a temporalio client still alive at interpreter shutdown can
abort the process (exit 134) instead of exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import temporalio
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
    WorkerDeploymentConfig,
    WorkerTuner,
)

from worker_runtime import contract, metrics
from worker_runtime.config import default_identity, tls_material
from worker_runtime.contract import RuntimeSettings, TracingSettings
from worker_runtime.loader import UserCode
from worker_runtime.server import Health, HttpServer

if TYPE_CHECKING:
    from worker_runtime.tracing import Tracing

log = logging.getLogger("worker_runtime")


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _MetricsActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with metrics.ActivityTimer(temporalio.activity.info().activity_type):
            return await self.next.execute_activity(input)


class MetricsInterceptor(Interceptor):
    """Feeds started/succeeded/failed/in-flight activity metrics by activity type."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MetricsActivityInbound(super().intercept_activity(next))


# Worker heartbeats carry each worker's slot use to Temporal (ListWorkers): the operator's
# Builtin engine keeps a version's busy workers up from them (the SDK default is 60 s).
HEARTBEAT_SECONDS = 10


def build_runtime(sdk_metrics_port: int) -> Runtime:
    """Core telemetry: Prometheus on an internal port, Core logs forwarded to Python logging;
    worker heartbeats every `HEARTBEAT_SECONDS`."""
    return Runtime(
        worker_heartbeat_interval=timedelta(seconds=HEARTBEAT_SECONDS),
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"127.0.0.1:{sdk_metrics_port}"),
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
        ),
    )


def tls_config(settings: RuntimeSettings) -> TLSConfig | bool:
    if not settings.tls_enabled:
        return False
    ca, cert, key = tls_material(settings)
    return TLSConfig(
        server_root_ca_cert=ca, client_cert=cert, client_private_key=key,
        domain=settings.tls_server_name,
    )  # fmt: skip


async def connect(
    settings: RuntimeSettings, runtime: Runtime, identity: str, health: Health,
    stop: asyncio.Event, interceptors: Sequence[ClientInterceptor] = (),
) -> Client | None:  # fmt: skip
    """Connect with exponential backoff; None if asked to stop before the server answered.

    Client interceptors that are also worker interceptors (tracing) apply to the worker too.
    """
    tls = tls_config(settings)
    delay, attempt = 1.0, 0
    while not stop.is_set():
        attempt += 1
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                tls=tls,
                api_key=settings.api_key,
                identity=identity,
                runtime=runtime,
                interceptors=interceptors,
            )
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            health.set_ready(False, f"Temporal unreachable at {settings.temporal_address}")
            log.warning(
                "Temporal server unreachable at %s, retrying in %.0fs (attempt %d): %s",
                settings.temporal_address, delay, attempt, reason,
                extra={"attempt": attempt, "retry_in_seconds": delay},
            )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, settings.connect_backoff_max_seconds)
    return None


BEHAVIORS = {"Pinned": VersioningBehavior.PINNED, "AutoUpgrade": VersioningBehavior.AUTO_UPGRADE}


def deployment_config(settings: RuntimeSettings) -> WorkerDeploymentConfig | None:
    """The Worker Deployment Version this worker registers as; None for an unversioned pool.

    Workflows may declare their own behavior (`@workflow.defn(versioning_behavior=...)`); the
    pool's default applies to those that do not.
    """
    if settings.worker_deployment_name is None or settings.worker_build_id is None:
        return None
    behavior = settings.default_versioning_behavior
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.worker_deployment_name, build_id=settings.worker_build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=(
            BEHAVIORS[behavior] if behavior is not None else VersioningBehavior.UNSPECIFIED
        ),
    )


def build_worker(
    client: Client, settings: RuntimeSettings, code: UserCode, executor: ThreadPoolExecutor | None
) -> Worker:
    """Map the env contract onto Worker options; the graceful timeout is always passed."""
    kwargs: dict[str, Any] = {}
    versioning = deployment_config(settings)
    if versioning is not None:
        kwargs["deployment_config"] = versioning
    if settings.resource_tuner_target_memory is not None:
        assert settings.resource_tuner_target_cpu is not None  # enforced by the contract
        kwargs["tuner"] = WorkerTuner.create_resource_based(
            target_memory_usage=settings.resource_tuner_target_memory,
            target_cpu_usage=settings.resource_tuner_target_cpu,
        )
    for name in contract.WORKER_TUNING_FIELDS:
        value = getattr(settings, name)
        if value is not None:
            kwargs[name] = value
    if executor is not None:
        kwargs["activity_executor"] = executor
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=code.workflows,
        activities=code.activities,
        interceptors=[MetricsInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        **kwargs,
    )


async def watch_readiness(
    client: Client, worker: Worker, settings: RuntimeSettings, health: Health
) -> None:
    """Ready = worker running and a cheap RPC (GetSystemInfo) answers; logs each flip."""
    interval = settings.readiness_probe_seconds
    while True:
        ready, reason = True, "ready"
        try:
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), retry=False, timeout=timedelta(seconds=max(interval, 2))
            )
        except Exception as err:
            ready, reason = False, f"Temporal server unreachable: {type(err).__name__}"
        if ready and not worker.is_running:
            ready, reason = False, "worker not polling"
        if ready != health.ready:
            if ready:
                log.info("Temporal server reachable, worker polling: ready")
            else:
                log.warning("Not ready: %s", reason)
        health.set_ready(ready, reason)
        await asyncio.sleep(interval)


async def serve(
    settings: RuntimeSettings, code: UserCode, tracing_settings: TracingSettings | None = None
) -> int:
    """Run until SIGTERM/SIGINT (exit 0 after draining) or a fatal worker error (exit 1).

    With tracing on, the last spans are exported after the drain, before the process exits.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("Received %s: stopping polling, draining in-flight activities", sig.name)
            stop.set()
        else:
            log.warning("Received %s again: still draining (up to %ss)", sig.name,
                        settings.graceful_shutdown_seconds)  # fmt: skip

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    metrics.set_build_info(importlib.metadata.version("temporalio"))
    health = Health()
    sdk_port = free_local_port()
    http = HttpServer(health, settings.metrics_port, f"http://127.0.0.1:{sdk_port}/metrics")
    await http.start()
    identity = default_identity(settings)
    runtime = build_runtime(sdk_port)
    tracing: Tracing | None = None
    if tracing_settings is not None and tracing_settings.enabled:
        from worker_runtime.tracing import setup

        tracing = setup(settings, tracing_settings)
    executor = (
        ThreadPoolExecutor(
            max_workers=settings.max_concurrent_activities or 100,
            thread_name_prefix="activity",
        )
        if code.has_sync_activities
        else None
    )
    exit_code = 0
    try:
        interceptors = [tracing.interceptor] if tracing is not None else []
        client = await connect(settings, runtime, identity, health, stop, interceptors)
        if client is None:
            log.info("Stopped before Temporal was reachable")
            return 0
        worker = build_worker(client, settings, code, executor)
        log.info(
            "Starting Temporal worker",
            extra={
                "address": settings.temporal_address,
                "workflows": [w.__name__ for w in code.workflows],
                "activities": [getattr(a, "__name__", repr(a)) for a in code.activities],
                "graceful_shutdown_seconds": settings.graceful_shutdown_seconds,
                "worker_deployment_name": settings.worker_deployment_name,
                "build_id": settings.worker_build_id,
            },
        )
        worker_task = asyncio.create_task(worker.run(), name="worker")
        probe = asyncio.create_task(watch_readiness(client, worker, settings, health))
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({worker_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        health.set_ready(False, "shutting down")
        probe.cancel()
        stop_task.cancel()
        if not worker_task.done():
            await worker.shutdown()
        try:
            await worker_task
            log.info("Worker drained and stopped")
        except Exception as err:
            log.error("Temporal worker failed: %s: %s", type(err).__name__, err, exc_info=err)
            exit_code = 1
        del worker, client
    finally:
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)
        await http.stop()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        del runtime
    return exit_code
