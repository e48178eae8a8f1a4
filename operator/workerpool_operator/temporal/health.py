"""Connection health check: the status of TemporalConnections and ClusterTemporalConnections.

Leader-only, next to the scaler. Every `HEALTH_PERIOD_SECONDS` (and at once when a connection's
spec changes) each connection is checked through the BacklogPoller's client for it, the same
client the scaler and the zero guard use (`BacklogPoller.health`: GetSystemInfo,
DescribeNamespace, ListWorkerDeployments). The status is built by the pure
`status.connection_status` and server-side applied only when it differs from the cached one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

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
from workerpool_operator.reconcile.plan import effective_connection_spec
from workerpool_operator.reconcile.status import connection_status, now_rfc3339
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.scaling.loop import CredentialsError, connection_from_spec
from workerpool_operator.scaling.observe import BacklogPoller, Health

log = logging.getLogger(__name__)

HEALTH_PERIOD_SECONDS = 30.0
TICK_SECONDS = 2.0


class HealthChecker:
    def __init__(
        self,
        kube: Kube,
        view: ClusterView,
        poller: BacklogPoller,
        *,
        period: float = HEALTH_PERIOD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        manager: str = MANAGERS.health,
    ) -> None:
        self.kube = kube
        self.manager = manager
        self.view = view
        self.poller = poller
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
            health = await self.poller.health(conn)
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
