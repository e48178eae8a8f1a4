"""The engine: watch-fed caches, a work queue of pool keys, and the executor of Plans.

Every event (a pool, a child, an opted-in Secret, a CRD appearing) only puts a pool key on the
queue. Workers take keys, plan from the caches (`plan.plan`, pure) and carry the plan out:
server-side apply of what differs, prune, status. A key is never worked on by two workers at
once, and a burst of events for one pool collapses into one reconcile (client-go's workqueue
rules). A pool whose children are current costs no request. Only the leader works the queue
and runs the scaler; a standby keeps its caches warm.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import ValidationError

from workerpool_operator import metrics
from workerpool_operator.aio import sleep_or_stop
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CHILDREN,
    CLUSTER_CONNECTION,
    CONNECTION,
    CONNECTIONS,
    CRD,
    DEPLOYMENT,
    NAMESPACE,
    POD,
    POOL,
    POOL_STATUS,
    SCALED_OBJECT,
    SECRET,
    SERVICE_MONITOR,
    TRIGGER_AUTH,
    Kind,
)
from workerpool_operator.kube.cache import Informer, Key, Store
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.errors import (
    ApiError,
    NotLeader,
    ServerError,
    TooManyRequests,
    Unauthorized,
)
from workerpool_operator.names import (
    DEFAULT_NAMESPACE,
    LEGACY_FINALIZER,
    MANAGERS,
    POOL_LABEL,
    FieldManagers,
)
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.diff import is_subset
from workerpool_operator.reconcile.plan import (
    ChildWrite,
    Observed,
    Outcome,
    Plan,
    Resolved,
    Unresolved,
    adoptable,
    conflict_message,
    connection_ref_key,
    controlled_by,
    finish,
    plan,
    resolve_connection,
)
from workerpool_operator.reconcile.status import now_rfc3339
from workerpool_operator.render import Capabilities

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 300.0
# A child write the API server keeps answering with 5xx is reported (ApplyFailed) from this
# many consecutive failed reconciles on (still retried): some 5xx are not transient, e.g. a
# quantity the CRD's pattern admits but the Deployment decoder refuses ("quantities must match
# the regular expression"), and a pool must never sit silently without a status.
SERVER_ERRORS_BEFORE_REPORT = 3
# A child's events come in bursts (a new Deployment's status moves several times in a second):
# its pool is looked at once, this long after the first of them.
CHILD_EVENT_DELAY_SECONDS = 0.5


class WorkQueue:
    """Deduplicating queue: a key is queued at most once and processed by one worker at a time.

    Two lanes: `urgent` keys (a pool was created or its spec changed) are handed out before the
    rest (a child's status moved, a resync), so a burst of new pools gets its children first
    and the status refreshes that the new children cause come after.
    """

    def __init__(self) -> None:
        self._lanes: tuple[collections.deque[Key], collections.deque[Key]] = (
            collections.deque(),
            collections.deque(),
        )
        self._ready = asyncio.Event()
        self._dirty: set[Key] = set()
        self._urgent: set[Key] = set()  # dirty keys that go first
        self._processing: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._dirty)

    def _push(self, key: Key) -> None:
        self._lanes[0 if key in self._urgent else 1].append(key)
        self._ready.set()

    def add(self, key: Key, *, urgent: bool = False) -> None:
        if urgent and key not in self._urgent:
            self._urgent.add(key)
            if key in self._dirty and key not in self._processing:
                self._push(key)  # jumps ahead; the copy in the other lane is skipped later
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)
        metrics.QUEUE_DEPTH.set(len(self._dirty))

    def add_after(self, key: Key, delay: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def retry(self, key: Key) -> float:
        """Requeue a failed key with exponential backoff; the delay chosen."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(RETRY_BASE_SECONDS * 2.0**n, RETRY_MAX_SECONDS)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        """Consecutive failed attempts of `key` so far."""
        return self._failures.get(key, 0)

    async def get(self) -> Key:
        while True:
            for lane in self._lanes:
                while lane:
                    key = lane.popleft()
                    if key in self._dirty and key not in self._processing:
                        self._processing.add(key)
                        self._dirty.discard(key)
                        self._urgent.discard(key)
                        metrics.QUEUE_DEPTH.set(len(self._dirty))
                        return key
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key)

    def idle(self) -> bool:
        return not self._dirty and not self._processing


@dataclass
class Engine:
    kube: Kube
    namespaces: list[str] | None = None  # None: every namespace
    workers: int = 16
    resync_seconds: float = 300.0
    stores: dict[Kind, Store] = field(default_factory=dict)
    queue: WorkQueue = field(default_factory=WorkQueue)
    caps: Capabilities = field(default_factory=Capabilities)
    # Where the Secrets of ClusterTemporalConnections live: the operator's own namespace.
    credentials_namespace: str = DEFAULT_NAMESPACE
    managers: FieldManagers = MANAGERS
    reconciles: int = 0
    _informers: dict[Kind, list[asyncio.Task[None]]] = field(default_factory=dict)
    _synced: dict[Kind, list[asyncio.Event]] = field(default_factory=dict)
    _on_pool: list[Any] = field(default_factory=list)
    _condition_types: dict[Key, set[str]] = field(default_factory=dict)

    # --- caches -------------------------------------------------------------------------

    def store(self, kind: Kind) -> Store:
        return self.stores.setdefault(kind, Store())

    def _start_informers(self, kind: Kind) -> None:
        if kind in self._informers:
            return
        scopes: Iterable[str | None] = (
            [None] if self.namespaces is None or not kind.namespaced else self.namespaces
        )
        if kind is SECRET and self.namespaces is not None:
            # ClusterTemporalConnections' Secrets live in the credentials namespace
            scopes = list(dict.fromkeys([*self.namespaces, self.credentials_namespace]))
        tasks, synced = [], []
        for ns in scopes:
            inf = Informer(self.kube, kind, self.store(kind), self._on_event, namespace=ns)
            tasks.append(asyncio.create_task(inf.run(), name=f"informer-{kind.plural}-{ns}"))
            synced.append(inf.synced)
        self._informers[kind] = tasks
        self._synced[kind] = synced

    def _stop_informers(self, kind: Kind) -> None:
        for task in self._informers.pop(kind, []):
            task.cancel()
        self._synced.pop(kind, None)
        self.stores.pop(kind, None)

    def synced(self, kind: Kind) -> bool:
        events = self._synced.get(kind) or []
        return bool(events) and all(e.is_set() for e in events)

    async def wait_synced(self, kinds: Iterable[Kind]) -> None:
        for kind in kinds:
            for event in self._synced.get(kind, []):
                await event.wait()

    def _optional_kinds(self) -> list[Kind]:
        return [k for k in (*CHILDREN, *CONNECTIONS) if k.crd is not None]

    def _established(self) -> set[str]:
        return {
            str(c["metadata"]["name"]) for c in self.store(CRD).values() if c.get("established")
        }

    async def _follow_crds(self) -> None:
        """Start or stop the informer of an optional child kind as its CRD comes and goes."""
        established = self._established()
        changed = False
        for kind in self._optional_kinds():
            if kind.crd in established and kind not in self._informers:
                self._start_informers(kind)
                changed = True
            elif kind.crd not in established and kind in self._informers:
                self._stop_informers(kind)
                changed = True
        if changed:
            await self.wait_synced(self._optional_kinds())
            caps = Capabilities(
                service_monitor=self.synced(SERVICE_MONITOR),
                keda=self.synced(SCALED_OBJECT) and self.synced(TRIGGER_AUTH),
            )
            if caps != self.caps:
                log.info("capabilities changed", extra={"capabilities": caps.__dict__})
                self.caps = caps
            # A pool's children or its connection may depend on what came or went.
            for key in self.store(POOL).list_keys():
                self.queue.add(key)

    def _on_event(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        """Informer callback (synchronous, cheap): map the object to the pool keys it affects."""
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if kind is POOL:
            metrics.POOLS.set(len(self.store(POOL)))
            self._export_conditions(ns, name, type_, obj)
            self.queue.add((ns, name), urgent=self._spec_changed(ns, name, obj))
            for callback in self._on_pool:
                callback((ns, name), type_, obj)
        elif kind in CHILDREN:
            pool = (meta.get("labels") or {}).get(POOL_LABEL) or name
            if self.store(POOL).get(ns, pool) is not None:
                self.queue.add_after((ns, pool), CHILD_EVENT_DELAY_SECONDS)
        elif kind is SECRET:
            for key in self.pools_referencing(ns, name):
                self.queue.add(key)
        elif kind in CONNECTIONS:
            for key in self.pools_using(kind.kind, ns, name):
                self.queue.add(key)
        elif kind is NAMESPACE:  # labels decide what a ClusterTemporalConnection allows
            for key in self.store(POOL).list_keys():
                if key[0] == name and (ref := self._ref(key)) and ref[0] == CLUSTER_CONNECTION.kind:
                    self.queue.add(key)
        elif kind is CRD:
            self._crd_changed.set()

    @staticmethod
    def _spec_changed(ns: str, name: str, obj: dict[str, Any]) -> bool:
        """A new pool, or a spec the status does not describe yet: its reconcile goes first."""
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        return status.get("observedGeneration") != meta.get("generation")

    def _export_conditions(self, ns: str, name: str, type_: str, obj: dict[str, Any]) -> None:
        """workerpool_pool_condition from the cached pool (alerts and dashboards read it)."""
        before = self._condition_types.pop((ns, name), set())
        now: set[str] = set()
        if type_ != "DELETED":
            for cond in (obj.get("status") or {}).get("conditions") or []:
                ctype, status = str(cond.get("type")), str(cond.get("status"))
                now.add(ctype)
                for value in metrics.CONDITION_STATUSES:
                    metrics.POOL_CONDITION.labels(ns, name, ctype, value).set(
                        1 if value == status else 0
                    )
            self._condition_types[(ns, name)] = now
        for ctype in before - now:
            for value in metrics.CONDITION_STATUSES:
                with contextlib.suppress(KeyError):
                    metrics.POOL_CONDITION.remove(ns, name, ctype, value)

    def _ref(self, key: Key) -> tuple[str, str, str] | None:
        return connection_ref_key(self.store(POOL).get(*key) or {})

    def pools_using(self, kind: str, namespace: str, name: str) -> list[Key]:
        """Pools whose spec.connectionRef names this connection."""
        return [k for k in self.store(POOL).list_keys() if self._ref(k) == (kind, namespace, name)]

    def observed_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Observed fields about a pool's connection, from the caches."""
        ns = str((body.get("metadata") or {}).get("namespace") or "")
        ref = connection_ref_key(body)
        connection = None
        if ref is not None:
            kind = CLUSTER_CONNECTION if ref[0] == CLUSTER_CONNECTION.kind else CONNECTION
            store = self.stores.get(kind)
            connection = None if store is None else store.get(ref[1], ref[2])
        namespace = self.store(NAMESPACE).get("", ns) or {}
        return {
            "connection": connection,
            "namespace_labels": (namespace.get("metadata") or {}).get("labels") or {},
            "credentials_namespace": self.credentials_namespace,
        }

    def resolve(self, pool: api.TemporalWorkerPool, body: dict[str, Any]) -> Resolved | Unresolved:
        """The pool's effective connection from the caches (the scaler's and health check's
        view; the reconciler gets the same through `plan`)."""
        return resolve_connection(pool, Observed(**self.observed_connection(body)))

    def pools_referencing(self, namespace: str, secret: str) -> list[Key]:
        """Pools whose effective connection names this Secret: in the pool's own namespace
        (what its pods mount), or in the credentials namespace for a cluster connection."""
        out = []
        for key in self.store(POOL).list_keys():
            body = self.store(POOL).get(*key) or {}
            if key[0] != namespace and namespace != self.credentials_namespace:
                continue
            try:
                pool = api.TemporalWorkerPool.from_body(body)
            except ValidationError:
                continue
            resolved = self.resolve(pool, body)
            if isinstance(resolved, Unresolved):
                continue
            conn = resolved.pool.spec.effective_connection
            names = {
                conn.tls.secret_name if conn.tls is not None else None,
                conn.api_key_secret_ref.name if conn.api_key_secret_ref is not None else None,
            }
            if secret in names and namespace in (key[0], resolved.secrets_namespace):
                out.append(key)
        return out

    def secrets_in(self, namespace: str) -> dict[str, dict[str, Any]]:
        store = self.stores.get(SECRET)
        if store is None:
            return {}
        return {k[1]: v for k in store.list_keys() if k[0] == namespace and (v := store.get(*k))}

    def namespace_terminating(self, namespace: str) -> bool:
        obj = self.store(NAMESPACE).get("", namespace)
        if obj is None:
            return False
        return bool(obj["metadata"].get("deletionTimestamp")) or (
            (obj.get("status") or {}).get("phase") == "Terminating"
        )

    # --- the executor -------------------------------------------------------------------

    async def reconcile(self, key: Key) -> bool:
        """Converge one pool from the caches; True when a write failed and should be retried."""
        ns, name = key
        body = self.store(POOL).get(ns, name)
        if body is None:
            return False
        start = time.perf_counter()
        observed = Observed(
            children={
                kind: (self.stores[kind].get(ns, name) if kind in self.stores else None)
                for kind in CHILDREN
            },
            secrets=self.secrets_in(ns),
            **self.observed_connection(body),
        )
        p = plan(
            body,
            self.caps,
            observed,
            namespace_terminating=self.namespace_terminating(ns),
            managers=self.managers,
        )
        try:
            if p.drop_finalizer is not None:
                await self._drop_finalizer(ns, name, p.drop_finalizer)
            if not p.act:
                return False
            outcome = await self._execute(ns, name, p)
            if outcome.created and not (outcome.failures or outcome.conflicts):
                # The new children's own events bring the pool back in a moment, with a status
                # that describes them; writing one now would be stale at once.
                return False
            await self._write_status(body, p, outcome)
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

    async def _drop_finalizer(self, ns: str, name: str, index: int) -> None:
        """Pools made before 0.2 carry kopf's finalizer; without timers nothing needs it."""
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": LEGACY_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        with contextlib.suppress(ApiError):  # 422: the list changed meanwhile; next event
            await self.kube.patch(
                POOL, ns, name, ops, content_type="application/json-patch+json", verb="finalizer"
            )

    async def _execute(self, ns: str, name: str, p: Plan) -> Outcome:
        outcome = Outcome()
        assert p.pool is not None
        pool = p.pool
        if p.handover is not None:
            h = p.handover
            await self.kube.apply(
                {
                    "apiVersion": DEPLOYMENT.api_version,
                    "kind": DEPLOYMENT.kind,
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"replicas": h.replicas},
                },
                manager=h.manager,
            )
            log.info(
                "handed spec.replicas over",
                extra={"pool": f"{ns}/{name}", "replicas": h.replicas, "to": h.manager},
            )

        async def write(w: ChildWrite) -> None:
            if not w.known:
                live = await self.kube.get(w.kind, ns, name, cached=True)
                if live is not None and not controlled_by(live, pool.uid) and not adoptable(live):
                    outcome.conflicts[w.kind] = conflict_message(w.kind, ns, name)
                    return
            try:
                await self.kube.apply(w.manifest)
                if not w.known:
                    outcome.created += 1
            except ApiError as exc:
                # The object's own refusal (invalid, forbidden by quota or policy) is the
                # pool's ApplyFailed; throttling and server trouble retry the whole pool, and
                # a 5xx that persists is reported too (SERVER_ERRORS_BEFORE_REPORT).
                if isinstance(exc, (Unauthorized, TooManyRequests)):
                    raise
                sentence = f"{w.kind.kind} {ns}/{name}: {exc.sentence()}"
                if isinstance(exc, ServerError):
                    tries = self.queue.failures((ns, name)) + 1
                    if tries < SERVER_ERRORS_BEFORE_REPORT:
                        raise
                    sentence += f" (HTTP {exc.status} {tries} times in a row; still retrying)"
                outcome.failures[w.kind] = sentence
                metrics.ERRORS.labels(Reason.APPLY_FAILED).inc()

        # KEDA resolves a ScaledObject's TriggerAuthentication when it first sees it: the
        # ScaledObject goes last, and not at all while its TriggerAuthentication is refused.
        first = [w for w in p.writes if w.kind is not SCALED_OBJECT]
        await asyncio.gather(*(write(w) for w in first))
        auth_ok = TRIGGER_AUTH not in outcome.failures and TRIGGER_AUTH not in outcome.conflicts
        for w in p.writes:
            if w.kind is SCALED_OBJECT and auth_ok:
                await write(w)
        for kind, uid in p.prune:
            await self.kube.delete(kind, ns, name, uid=uid)
        return outcome

    async def _write_status(self, body: dict[str, Any], p: Plan, outcome: Outcome) -> None:
        meta = body["metadata"]
        live = body.get("status") or {}
        generation = int(meta.get("generation") or 0)
        status = finish(p, outcome, live, generation=generation, now=now_rfc3339())
        ready_before: dict[str, Any] = next(
            (c for c in live.get("conditions") or [] if c.get("type") == api.CONDITION_READY), {}
        )
        ready_now = next(c for c in status["conditions"] if c["type"] == api.CONDITION_READY)
        if is_subset(status, live):
            return
        await self.kube.apply_status(POOL_STATUS, meta["namespace"], meta["name"], status)
        problem = ready_now["reason"] in (
            Reason.INVALID_SPEC,
            Reason.APPLY_FAILED,
            Reason.NAME_CONFLICT,
            Reason.CONNECTION_NOT_FOUND,
            Reason.CONNECTION_NOT_ALLOWED,
            Reason.CONNECTION_INVALID,
        )
        if problem and (
            ready_before.get("reason") != ready_now["reason"]
            or ready_before.get("message") != ready_now["message"]
        ):
            metrics.ERRORS.labels(ready_now["reason"]).inc()
            with contextlib.suppress(Exception):  # an Event is best effort
                await self.kube.event(
                    {"apiVersion": api.API_VERSION, "kind": api.KIND, **body},
                    reason=ready_now["reason"],
                    message=ready_now["message"],
                    type_="Warning",
                )

    # --- running --------------------------------------------------------------------------

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
        while not stop.is_set():
            await sleep_or_stop(stop, self.resync_seconds)
            for key in self.store(POOL).list_keys():
                self.queue.add(key)

    async def _crd_loop(self) -> None:
        while True:
            await self._crd_changed.wait()
            self._crd_changed.clear()
            await self._follow_crds()

    async def start_caches(self) -> None:
        """Start every informer and wait for the first full listing of each."""
        self._crd_changed = asyncio.Event()
        for kind in (POOL, *[k for k in CHILDREN if k.crd is None], SECRET, POD, NAMESPACE, CRD):
            self._start_informers(kind)
        self._crd_task = asyncio.create_task(self._crd_loop(), name="crd-follower")
        await self.wait_synced([POOL, *[k for k in CHILDREN if k.crd is None], SECRET, NAMESPACE])
        await self.wait_synced([CRD])
        await self._follow_crds()

    async def work(self, stop: asyncio.Event) -> None:
        """Reconcile until `stop` (run only while leading)."""
        for key in self.store(POOL).list_keys():  # one look at every pool on taking over
            self.queue.add(key)
        tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        tasks.append(asyncio.create_task(self._resync(stop)))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for kind in list(self._informers):
            self._stop_informers(kind)
        task = getattr(self, "_crd_task", None)
        if task is not None:
            task.cancel()
