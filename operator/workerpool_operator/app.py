"""kopf wiring: the process's lifecycle (startup, cleanup, liveness), nothing per object.

kopf runs the process; the engine (`engine.py`) does the watching, with server-side label
selectors kopf cannot express, and the reconciling. No per-pool timer, daemon or deletion
handler exists, so kopf never puts a finalizer on a pool: a pool can be deleted at any time,
with the operator down or uninstalled. Settings come from the environment (`__main__` sets
it from the command line): WATCH_NAMESPACES, WORKERPOOL_LEADER_ELECT, POD_NAMESPACE,
WORKERPOOL_WORKERS, WORKERPOOL_RESYNC_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

import kopf

from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.leader import LeaderElector
from workerpool_operator.reconcile.engine import Engine
from workerpool_operator.scaling.loop import Scaler
from workerpool_operator.scaling.observe import BacklogPoller
from workerpool_operator.temporal.health import HealthChecker

log = logging.getLogger(__name__)


def settings_from_env() -> dict[str, Any]:
    namespaces = [n for n in os.environ.get("WATCH_NAMESPACES", "").split(",") if n]
    return {
        "namespaces": namespaces or None,
        "workers": int(os.environ.get("WORKERPOOL_WORKERS", "16")),
        "resync_seconds": float(os.environ.get("WORKERPOOL_RESYNC_SECONDS", "300")),
        "leader_elect": os.environ.get("WORKERPOOL_LEADER_ELECT", "") in ("1", "true"),
        "lease_namespace": os.environ.get("POD_NAMESPACE", "workerpools-system"),
        "identity": os.environ.get("POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
    }


class Operator:
    """Caches, leader election, reconcile workers and the scaler of one process."""

    def __init__(self, kube: Kube | None = None, **settings: Any) -> None:
        cfg = {**settings_from_env(), **settings}
        self.kube = kube or Kube()
        self.engine = Engine(
            self.kube,
            namespaces=cfg["namespaces"],
            workers=cfg["workers"],
            resync_seconds=cfg["resync_seconds"],
            credentials_namespace=cfg["lease_namespace"],
        )
        self.elector: LeaderElector | None = None
        if cfg["leader_elect"]:
            self.elector = LeaderElector(self.kube, cfg["lease_namespace"], cfg["identity"])
            self.kube.may_write = self.elector.is_leader
        self.poller = BacklogPoller()
        self.scaler = Scaler(self.kube, self.engine, self.poller)
        # Connection status, through the scaler's poller: one Temporal client per connection.
        self.health = HealthChecker(self.kube, self.engine, self.poller)
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Until `stop`: caches always; the queue and the scaler only while leading."""
        tasks: list[asyncio.Task[Any]] = []
        if self.elector is not None:
            tasks.append(asyncio.create_task(self.elector.run(self.stop), name="leader"))
        try:
            await self.engine.start_caches()
            self.ready.set()
            while not self.stop.is_set():
                if self.elector is not None:
                    await _first(self.elector.leading.wait(), self.stop.wait())
                    if self.stop.is_set():
                        break
                acting = asyncio.Event()
                work = [
                    asyncio.create_task(self.engine.work(acting), name="reconcile"),
                    asyncio.create_task(self.scaler.run(acting), name="scaler"),
                    asyncio.create_task(self.health.run(acting), name="connection-health"),
                ]
                lost = self.elector.lost.wait() if self.elector is not None else None
                await _first(self.stop.wait(), *([lost] if lost else []))
                acting.set()
                await asyncio.gather(*work, return_exceptions=True)
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.close()
            await self.poller.close()
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
    operator = Operator()
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
