"""Connection health check: the status of TemporalConnections and ClusterTemporalConnections.

Leader-only, next to the scaler. Every `HEALTH_PERIOD_SECONDS` (and at once when a connection's
spec changes) each connection is checked (`probe`: GetSystemInfo, DescribeNamespace,
ListWorkerDeployments) through the shared client for it, the one the scaler and the zero guard
use. The status is built by the pure `reconcile.status.connection_status` and server-side
applied only when it differs from the cached one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    ListWorkerDeploymentsRequest,
)
from temporalio.service import RPCError, RPCStatusCode

from workerpool_operator import metrics
from workerpool_operator.aio import sleep_or_stop
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CLUSTER_CONNECTION,
    CLUSTER_CONNECTION_STATUS,
    CONNECTION,
    CONNECTION_STATUS,
    Kind,
)
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.errors import ApiError, NotLeader
from workerpool_operator.names import MANAGERS
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.diff import is_subset
from workerpool_operator.reconcile.status import connection_status, now_rfc3339
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import (
    Connection,
    CredentialsError,
    connection_from_spec,
    effective_connection_spec,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What the connection health check found; `error` set when the server was not reached."""

    server_version: str | None = None
    namespace_exists: bool | None = None
    task_queue_stats: bool | None = None
    worker_deployments: bool | None = None
    error: str | None = None


def version_at_least(version: str, minimum: tuple[int, int]) -> bool:
    """'1.32.0' >= (1, 25); an unparsable version counts as new enough."""
    try:
        major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= minimum


async def probe(clients: TemporalClients, conn: Connection, rpc_timeout: timedelta) -> Health:
    """GetSystemInfo, DescribeNamespace, ListWorkerDeployments through the same client the
    scaler and the zero guard use for this connection."""
    try:
        client = await clients.get(conn)
        info = await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=rpc_timeout
        )
    except Exception as exc:
        metrics.TEMPORAL_CALLS.labels("GetSystemInfo", "error").inc()
        return Health(error=f"GetSystemInfo: {type(exc).__name__}: {exc}"[:500])
    metrics.TEMPORAL_CALLS.labels("GetSystemInfo", "ok").inc()
    version = info.server_version or None
    exists: bool | None = None
    error = None
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=conn.namespace), timeout=rpc_timeout
        )
        exists = True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            exists = False
        else:
            error = f"DescribeNamespace: {exc.message}"[:500]
    deployments: bool | None = None
    if exists:
        try:
            await client.workflow_service.list_worker_deployments(
                ListWorkerDeploymentsRequest(namespace=conn.namespace, page_size=1),
                timeout=rpc_timeout,
            )
            deployments = True
        except RPCError as exc:
            # UNIMPLEMENTED on older servers; disabled per namespace on newer ones
            deployments = False if exc.status != RPCStatusCode.UNAVAILABLE else None
    return Health(
        server_version=version,
        namespace_exists=exists,
        task_queue_stats=None if version is None else version_at_least(version, (1, 25)),
        worker_deployments=deployments,
        error=error,
    )


HEALTH_PERIOD_SECONDS = 30.0
RPC_TIMEOUT_SECONDS = 5.0
TICK_SECONDS = 2.0
# One check's time box: past it the check is that connection's TemporalUnavailable, and the
# other connections never waited for it (each check is its own task).
CHECK_TIMEOUT_SECONDS = 20.0


@dataclass(eq=False)
class HealthChecker:
    """Checks every connection the caches hold once per `period` (and on a new generation),
    each in its own task, and applies the connection's status."""

    kube: Kube
    view: ClusterView
    clients: TemporalClients
    _: KW_ONLY
    period: float = HEALTH_PERIOD_SECONDS
    clock: Callable[[], float] = time.monotonic
    manager: str = MANAGERS.health
    # (kind, namespace, name) -> (when it was last checked, the generation checked)
    _last: dict[tuple[str, str, str], tuple[float, int]] = field(default_factory=dict, init=False)
    _running: dict[tuple[str, str, str], asyncio.Task[None]] = field(
        default_factory=dict, init=False
    )

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (run only while leading)."""
        try:
            while not stop.is_set():
                await self.tick(wait=False)
                await sleep_or_stop(stop, TICK_SECONDS)
        finally:
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)
            self._running.clear()

    async def _isolated(self, key: tuple[str, str, str], kind: Kind, body: dict[str, Any]) -> None:
        """One connection's check, time-boxed, its failures its own: one tenant's hanging
        endpoint or malformed Secret never stops or delays another tenant's check."""
        try:
            await asyncio.wait_for(self.check(kind, body), timeout=CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("health check of %s %s/%s timed out", kind.kind, key[1], key[2])
            address = (body.get("spec") or {}).get("address")
            error = f"no answer from {address} within {CHECK_TIMEOUT_SECONDS:.0f}s"
            await self._report(kind, body, Health(error=error), Reason.TEMPORAL_UNAVAILABLE)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health check of %s %s/%s failed", kind.kind, key[1], key[2])

    async def tick(self, *, wait: bool = True) -> None:
        """Start the checks that are due; `wait`: until they end (tests), else in the
        background (the loop), so a slow connection never delays the next tick."""
        self._running = {k: t for k, t in self._running.items() if not t.done()}
        due = []
        for kind in (CONNECTION, CLUSTER_CONNECTION):
            if not self.view.has(kind):
                continue
            store = self.view.store(kind)
            for body in store.values():
                meta = body.get("metadata") or {}
                key = (kind.kind, str(meta.get("namespace") or ""), str(meta.get("name")))
                if not self._ours(kind, key[2]):
                    continue
                generation = int(meta.get("generation") or 0)
                last = self._last.get(key)
                if key in self._running:
                    continue  # still checking it (a slow endpoint): never two at once
                if last is None or last[1] != generation or self.clock() - last[0] >= self.period:
                    self._last[key] = (self.clock(), generation)
                    due.append((key, kind, body))
        for key, kind, body in due:
            self._running[key] = asyncio.create_task(self._isolated(key, kind, body))
        if wait:
            await asyncio.gather(*(self._running[key] for key, _, _ in due))

    def _ours(self, kind: Kind, name: str) -> bool:
        """A namespaced install (one of several shards, say) checks a ClusterTemporalConnection
        only while one of its pools uses it, so shards never write the same status."""
        if kind is not CLUSTER_CONNECTION or self.view.namespaces is None:
            return True
        return bool(self.view.pools_using(kind.kind, "", name))

    async def check(self, kind: Kind, body: dict[str, Any]) -> None:
        ns = str(body["metadata"].get("namespace") or "")
        cluster = kind is CLUSTER_CONNECTION
        try:
            model = api.ClusterTemporalConnection if cluster else api.TemporalConnection
            spec = model.from_body(body).spec
        except ValidationError:
            return  # admission's job; pools report ConnectionInvalid
        refused = self.view.caps.grants.address_error(spec.address, f"{kind.kind} address")
        if refused is not None:  # never dialled: the admin does not allow the address
            await self._report(kind, body, Health(error=refused), Reason.ADDRESS_NOT_ALLOWED)
            return
        where = self.view.credentials_namespace if cluster else ns
        try:
            conn = connection_from_spec(
                effective_connection_spec(spec), self.view.secrets_in(where), where
            )
        except CredentialsError as exc:
            await self._report(kind, body, Health(error=str(exc)), Reason.CREDENTIALS_UNAVAILABLE)
            return
        health = await probe(self.clients, conn, timedelta(seconds=RPC_TIMEOUT_SECONDS))
        await self._report(kind, body, health, Reason.TEMPORAL_UNAVAILABLE)

    async def _report(
        self, kind: Kind, body: dict[str, Any], health: Health, reason: Reason
    ) -> None:
        """Apply the connection's status from one check, when it changed."""
        meta = body["metadata"]
        ns = str(meta.get("namespace") or "")
        cluster = kind is CLUSTER_CONNECTION
        temporal_ns = str((body.get("spec") or {}).get("namespace") or "default")
        status = connection_status(
            server_version=health.server_version,
            namespace_exists=health.namespace_exists,
            task_queue_stats=health.task_queue_stats,
            worker_deployments=health.worker_deployments,
            error=health.error,
            error_reason=reason,
            temporal_namespace=temporal_ns,
            live_status=body.get("status"),
            generation=int(meta.get("generation") or 0),
            now=now_rfc3339(),
        )
        if is_subset(status, body.get("status") or {}):
            return
        status["lastCheckTime"] = now_rfc3339()
        target = CLUSTER_CONNECTION_STATUS if cluster else CONNECTION_STATUS
        try:
            await self.kube.apply_status(target, ns, meta["name"], status, manager=self.manager)
        except NotLeader:
            return
        except ApiError as exc:
            log.warning("status of %s %s/%s: %s", kind.kind, ns, meta["name"], exc.sentence())
