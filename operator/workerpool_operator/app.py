"""The composition root: one process's caches, leader election, reconciler, scaler and
connection health check, plus kopf's lifecycle hooks (startup, cleanup, login, liveness).

kopf runs the process; the reconciler does the watching (server-side label selectors kopf cannot
express) and the reconciling. No per-pool timer, daemon or deletion handler exists, so kopf never
puts a finalizer on a pool: a pool can be deleted at any time, with the operator down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from workerpool_operator import metrics
from workerpool_operator.kinds import POOL
from workerpool_operator.kube.cache import Caches
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.leader import LeaderElector
from workerpool_operator.metrics import PoolGauges
from workerpool_operator.reconcile.reconciler import Reconciler
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.scaling.loop import Scaler
from workerpool_operator.scaling.observe import BacklogPoller
from workerpool_operator.settings import Settings, parse_args, settings_from_args
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.health import HealthChecker
from workerpool_operator.versioning.driver import VersioningDriver
from workerpool_operator.versioning.janitor import Janitor

log = logging.getLogger(__name__)


class Operator:
    """One process: caches always; the reconciler, the scaler and the connection health check
    only while this replica leads (or always, without leader election)."""

    def __init__(self, settings: Settings | None = None, kube: Kube | None = None) -> None:
        self.settings = settings = settings or Settings()
        self.kube = kube or Kube(field_manager=settings.managers.operator)
        self.caches = Caches(
            self.kube,
            namespaces=settings.namespaces,
            credentials_namespace=settings.namespace,
            grants=settings.grants,
        )
        self.view = ClusterView(self.caches)
        # One Temporal client per connection, shared by the scaler, the versioned rollouts and
        # the connection health check.
        self.clients = TemporalClients()
        self.reconciler = Reconciler(
            self.kube,
            self.caches,
            self.view,
            workers=settings.workers,
            resync_seconds=settings.resync_seconds,
            managers=settings.managers,
            versioning=VersioningDriver(
                self.view, self.clients, settings.routing_identity, settings.version_cap
            ),
        )
        self.caches.subscribe(PoolGauges(lambda: len(self.view.store(POOL))).cache_event)
        self.elector: LeaderElector | None = None
        if settings.leader_elect:
            self.elector = LeaderElector(
                self.kube, settings.namespace, settings.identity, name=settings.lease_name
            )
            self.kube.may_write = self.elector.is_leader
        else:
            # Without election this replica always acts: it reports 1, so the operator alerts
            # (no leader, several leaders) mean the same with and without --leader-elect.
            metrics.LEADER.set(1)
        self.poller = BacklogPoller(clients=self.clients)
        self.scaler = Scaler(self.kube, self.view, self.poller, manager=settings.managers.scaler)
        self.caches.subscribe(self.scaler.cache_event)
        # Connection status, through the scaler's clients: one Temporal client per connection.
        self.health = HealthChecker(
            self.kube, self.view, self.clients, manager=settings.managers.health
        )
        # The Temporal side of deleted versioned pools (no finalizer holds a pool).
        self.janitor = Janitor(
            self.view, self.clients, settings.routing_identity, period=settings.janitor_seconds
        )
        self.caches.subscribe(self.janitor.cache_event)
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Until `stop`: caches always; the queue and the scaler only while leading."""
        tasks: list[asyncio.Task[Any]] = []
        if self.elector is not None:
            tasks.append(asyncio.create_task(self.elector.run(self.stop), name="leader"))
        try:
            await self.caches.start()
            self.ready.set()
            while not self.stop.is_set():
                if self.elector is not None:
                    await _first(self.elector.leading.wait(), self.stop.wait())
                    if self.stop.is_set():
                        break
                acting = asyncio.Event()
                work = [
                    asyncio.create_task(self.reconciler.work(acting), name="reconcile"),
                    asyncio.create_task(self.scaler.run(acting), name="scaler"),
                    asyncio.create_task(self.health.run(acting), name="connection-health"),
                    asyncio.create_task(self.janitor.run(acting), name="versioning-janitor"),
                ]
                lost = self.elector.lost.wait() if self.elector is not None else None
                await _first(self.stop.wait(), *([lost] if lost else []))
                acting.set()
                await asyncio.gather(*work, return_exceptions=True)
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.caches.close()
            await self.poller.close()
            self.clients.close()
            await self.kube.close()


async def _first(*aws: Any) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount, else $KUBECONFIG: the same credentials the engine uses."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Start the operator's engine next to kopf's own machinery."""
    settings.posting.level = logging.WARNING
    # `python -m workerpool_operator` hands its Settings over; `kopf run -m ...app` has none, so
    # the flags' defaults (and their environment variables) apply.
    operator = Operator(getattr(memo, "settings", None) or settings_from_args(parse_args([])))
    memo.operator = operator
    memo.task = asyncio.create_task(operator.run(), name="workerpool-operator")


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is None:
        return
    operator.stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(memo.task, timeout=10)


@kopf.on.probe(id="caches")
def caches_synced(memo: Any, **_: Any) -> bool:
    """Liveness detail: the engine's first full listing is done."""
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is None or (memo.task.done() and memo.task.exception() is not None):
        raise kopf.PermanentError("the operator's engine stopped")
    return operator.ready.is_set()
