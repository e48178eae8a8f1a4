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
from dataclasses import dataclass
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


class HealthChecker:
    def __init__(
        self,
        kube: Kube,
        view: ClusterView,
        clients: TemporalClients,
        *,
        period: float = HEALTH_PERIOD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        manager: str = MANAGERS.health,
    ) -> None:
        self.kube = kube
        self.manager = manager
        self.view = view
        self.clients = clients
        self.period = period
        self.clock = clock
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (run only while leading)."""
        while not stop.is_set():
            await self.tick()
            await sleep_or_stop(stop, TICK_SECONDS)

    async def tick(self) -> None:
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
                if last is None or last[1] != generation or self.clock() - last[0] >= self.period:
                    self._last[key] = (self.clock(), generation)
                    due.append((kind, body))
        await asyncio.gather(*(self.check(kind, body) for kind, body in due))

    def _ours(self, kind: Kind, name: str) -> bool:
        """A namespaced install (one of several shards, say) checks a ClusterTemporalConnection
        only while one of its pools uses it, so shards never write the same status."""
        if kind is not CLUSTER_CONNECTION or self.view.namespaces is None:
            return True
        return bool(self.view.pools_using(kind.kind, "", name))

    async def check(self, kind: Kind, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        ns = str(meta.get("namespace") or "")
        cluster = kind is CLUSTER_CONNECTION
        reason = Reason.TEMPORAL_UNAVAILABLE
        try:
            model = api.ClusterTemporalConnection if cluster else api.TemporalConnection
            spec = model.from_body(body).spec
            where = self.view.credentials_namespace if cluster else ns
            conn = connection_from_spec(
                effective_connection_spec(spec), self.view.secrets_in(where), where
            )
        except ValidationError:
            return  # admission's job; pools report ConnectionInvalid
        except CredentialsError as exc:
            health, reason = Health(error=str(exc)), Reason.CREDENTIALS_UNAVAILABLE
            temporal_ns = str((body.get("spec") or {}).get("namespace") or "default")
        else:
            health = await probe(self.clients, conn, timedelta(seconds=RPC_TIMEOUT_SECONDS))
            temporal_ns = spec.namespace
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
