"""The reconciler: cache events become pool keys on the work queue; workers take keys, plan
from the caches (pure), execute and report. Runs only on the leader; a standby keeps its
caches warm. A pool whose children are current costs no request."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from workerpool_operator import metrics
from workerpool_operator.aio import sleep_or_stop
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CHILDREN,
    CLUSTER_CONNECTION,
    CONNECTIONS,
    NAMESPACE,
    POOL,
    SECRET,
    Kind,
)
from workerpool_operator.kube.cache import Caches, Key
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.errors import ApiError, NotLeader
from workerpool_operator.names import MANAGERS, POOL_LABEL, FieldManagers
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.execute import Executor
from workerpool_operator.reconcile.model import Outcome, Plan, VersioningObserved
from workerpool_operator.reconcile.plan import plan
from workerpool_operator.reconcile.queue import WorkQueue
from workerpool_operator.reconcile.report import report
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.versioning.driver import VersioningDriver

log = logging.getLogger(__name__)

# A child's events come in bursts (a new Deployment's status moves several times in a second):
# its pool is looked at once, this long after the first of them.
CHILD_EVENT_DELAY_SECONDS = 0.5


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        caches: Caches,
        view: ClusterView,
        *,
        workers: int = 16,
        resync_seconds: float = 300.0,
        managers: FieldManagers = MANAGERS,
        versioning: VersioningDriver | None = None,
    ) -> None:
        self.view = view
        self.versioning = versioning
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.managers = managers
        self.queue = WorkQueue()
        self.executor = Executor(kube)
        self.kube = kube
        caches.subscribe(self._on_event)
        caches.subscribe_capabilities(self._requeue_all)

    def _requeue_all(self) -> None:
        """A pool's children or its connection may depend on what came or went."""
        for key in self.view.pool_keys():
            self.queue.add(key)

    def _on_event(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        """Cache callback (synchronous, cheap): map the object to the pool keys it affects."""
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if kind is POOL:
            self.queue.add((ns, name), urgent=_spec_changed(obj))
        elif kind in CHILDREN:
            pool = (meta.get("labels") or {}).get(POOL_LABEL) or name
            if self.view.pool((ns, pool)) is not None:
                self.queue.add_after((ns, pool), CHILD_EVENT_DELAY_SECONDS)
        elif kind is SECRET:
            for key in self.view.pools_referencing(ns, name):
                self.queue.add(key)
        elif kind in CONNECTIONS:
            for key in self.view.pools_using(kind.kind, ns, name):
                self.queue.add(key)
        elif kind is NAMESPACE:  # labels decide what a ClusterTemporalConnection allows
            for key in self.view.pool_keys():
                ref = self.view.connection_ref(key)
                if key[0] == name and ref and ref[0] == CLUSTER_CONNECTION.kind:
                    self.queue.add(key)

    async def reconcile(self, key: Key) -> bool:
        """Converge one pool from the caches; True when a write failed and should be retried."""
        ns, name = key
        body = self.view.pool(key)
        if body is None:
            if self.versioning is not None:
                self.versioning.forget(key)
            return False
        start = time.perf_counter()
        versioned = None
        if self.versioning is not None and _versioned(body):
            versioned = await self.versioning.observe(body)  # Temporal's side, read before the plan
        p = plan(
            body,
            self.view.caps,
            self.view.observed(key, body, versioned),
            namespace_terminating=self.view.namespace_terminating(ns),
            managers=self.managers,
        )
        if p.requeue_after is not None:
            self.queue.add_after(key, p.requeue_after)
        if versioned is not None and self.versioning is not None:
            # Until that look, other reconciles of the pool (a child's status, our own status
            # write) plan from the same reading instead of asking Temporal again.
            self.versioning.hold(key, p.requeue_after)
        try:
            if p.drop_finalizer is not None:
                await self.executor.drop_finalizer(ns, name, p.drop_finalizer)
            if not p.act:
                return False
            outcome = await self.executor.execute(ns, name, p, attempt=self.queue.failures(key) + 1)
            if p.versioned is not None and versioned is not None and versioned.observation:
                await self._route(key, body, p, outcome, versioned)
            if outcome.created and not (outcome.failures or outcome.conflicts):
                # The new children's own events bring the pool back in a moment, with a status
                # that describes them; writing one now would be stale at once.
                return False
            await report(self.kube, body, p, outcome)
        except NotLeader:
            return False
        except ApiError as exc:
            metrics.RECONCILES.labels("error").inc()
            log.warning("reconcile of %s/%s failed: %s", ns, name, exc.sentence())
            return True
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - start)
        failed = bool(outcome.failures)
        metrics.RECONCILES.labels("error" if failed else "success").inc()
        return failed

    async def _route(
        self, key: Key, body: dict[str, Any], p: Plan, outcome: Outcome, read: VersioningObserved
    ) -> None:
        """A versioned pool after its writes: Temporal's routing calls, then the other builds'
        replicas and retirements, each told in an Event."""
        assert self.versioning is not None
        assert p.versioned is not None
        ns = key[0]
        obj = {"apiVersion": api.API_VERSION, "kind": api.KIND, **body}
        routing = p.versioned.routing
        carried = await self.versioning.carry_out(key, read, routing)
        outcome.routing_refused = carried.refused
        if carried.done and not carried.refused:
            for event in routing.events:
                await self.kube.try_event(
                    obj,
                    reason=event.reason,
                    message=event.message,
                    type_="Warning" if event.warning else "Normal",
                )
        for deployment in await self.executor.settle_builds(ns, p, self.managers.versioning):
            await self.kube.try_event(
                obj, reason=Reason.VERSION_RETIRED, message=f"deleted Deployment {deployment}"
            )

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if await self.reconcile(key):
                    self.queue.retry(key)
                else:
                    self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The API server is unreachable or restarting: no traceback, retry with backoff.
                log.warning("reconcile of %s/%s: API server unreachable: %s", *key, exc)
                metrics.RECONCILES.labels("error").inc()
                self.queue.retry(key)
            except Exception:
                log.exception("reconcile of %s/%s crashed", *key)
                metrics.RECONCILES.labels("error").inc()
                self.queue.retry(key)
            finally:
                self.queue.done(key)

    async def _resync(self, stop: asyncio.Event) -> None:
        """Safety net: look at every pool again now and then (free when all is current)."""
        while not await sleep_or_stop(stop, self.resync_seconds):
            self._requeue_all()

    async def work(self, stop: asyncio.Event) -> None:
        """Reconcile until `stop` (run only while leading)."""
        if self.versioning is not None:
            self.versioning.forget_all()  # Temporal is read afresh on taking over
        self._requeue_all()  # one look at every pool on taking over
        tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        tasks.append(asyncio.create_task(self._resync(stop)))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _spec_changed(obj: dict[str, Any]) -> bool:
    """A new pool, or a spec the status does not describe yet: its reconcile goes first."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    return status.get("observedGeneration") != meta.get("generation")


def _versioned(body: dict[str, Any]) -> bool:
    """Versioned, or left versioning with builds still to retire (status.versions): Temporal's
    side is read before the plan."""
    return (body.get("spec") or {}).get("versioning") is not None or bool(
        (body.get("status") or {}).get("versions")
    )
