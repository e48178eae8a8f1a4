"""Watch-fed caches: one informer (list, then watch from its resourceVersion) per kind and scope.

The reconciler and the scaler read only from here, so a pool whose children are current costs
no request at all. Objects are kept slimmed (no managedFields; Pods, Namespaces and CRDs reduced
to the few fields used) and stored as compact JSON bytes: 1000 pools with their children fit
in a few MB instead of hundreds of MB of Python dicts, and a reader always gets its own copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from workerpool_operator import metrics, trust
from workerpool_operator.grants import Grants
from workerpool_operator.kinds import (
    CHILDREN,
    CONNECTIONS,
    CRD,
    DEPLOYMENT,
    NAMESPACE,
    POD,
    POOL,
    REPLICAS_OWNERS,
    SCALED_OBJECT,
    SECRET,
    SERVICE_MONITOR,
    TRIGGER_AUTH,
    Kind,
)
from workerpool_operator.kube.client import Kube, WatchEvent
from workerpool_operator.kube.errors import Gone
from workerpool_operator.render import Capabilities

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
OnEvent = Callable[[Kind, str, dict[str, Any]], None]

BACKOFF_MAX_SECONDS = 30.0
PAGE_SIZE = 500
SECRET_PAGE_SIZE = 20


def replicas_owners(obj: dict[str, Any]) -> list[str]:
    """`manager/operation` for each managedFields entry that owns spec.replicas."""
    out = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        if "f:replicas" in (fields.get("f:spec") or {}) and not entry.get("subresource"):
            out.append(f"{entry.get('manager')}/{entry.get('operation')}")
        elif entry.get("subresource") == "scale" and "f:replicas" in (fields.get("f:spec") or {}):
            out.append(f"{entry.get('manager')}/{entry.get('operation')}/scale")
    return out


def slim(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """What the operator needs of an object; everything else is dropped before caching."""
    meta = dict(obj.get("metadata") or {})
    if kind is DEPLOYMENT:
        obj = {**obj, REPLICAS_OWNERS: replicas_owners(obj)}
    meta.pop("managedFields", None)
    if kind is POD:
        status = obj.get("status") or {}
        return {
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "labels", "uid")},
            "status": {
                "phase": status.get("phase"),
                "conditions": [
                    c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"
                ],
            },
        }
    if kind is NAMESPACE:
        return {
            # labels: a ClusterTemporalConnection's allowedNamespaces selects on them
            "metadata": {k: meta.get(k) for k in ("name", "uid", "labels", "deletionTimestamp")},
            "status": {"phase": (obj.get("status") or {}).get("phase")},
        }
    if kind is CRD:
        spec = obj.get("spec") or {}
        conds = (obj.get("status") or {}).get("conditions") or []
        return {
            "metadata": {"name": meta.get("name")},
            "spec": {
                "group": spec.get("group"),
                "versions": [v.get("name") for v in spec.get("versions") or [] if v.get("served")],
            },
            "established": any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conds
            ),
        }
    if kind is SECRET:
        return {
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "labels", "uid")},
            "data": obj.get("data") or {},
        }
    return {**obj, "metadata": meta}


class Store:
    """Objects of one kind by (namespace, name), as compact JSON."""

    def __init__(self) -> None:
        self._items: dict[Key, bytes] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        raw = self._items.get((namespace or "", name))
        return None if raw is None else dict(json.loads(raw))

    def list_keys(self) -> list[Key]:
        return list(self._items)

    def values(self) -> Iterator[dict[str, Any]]:
        for raw in list(self._items.values()):
            yield json.loads(raw)

    def put(self, obj: dict[str, Any]) -> bool:
        """Store `obj`; False when nothing changed (the same bytes)."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name")))
        raw = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        if self._items.get(key) == raw:
            return False
        self._items[key] = raw
        return True

    def delete(self, namespace: str | None, name: str) -> bool:
        return self._items.pop((namespace or "", name), None) is not None

    def replace(self, objs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Key]]:
        """Swap in a fresh listing; the changed objects and the keys that disappeared."""
        old = self._items
        self._items = {}
        for o in objs:
            self.put(o)
        changed = []
        for o in objs:
            meta = o.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name")))
            if old.get(key) != self._items.get(key):
                changed.append(o)
        gone = [k for k in old if k not in self._items]
        return changed, gone


@dataclass(eq=False)
class Informer:
    """List + watch one kind in one scope into a Store, calling `on_event` for every change."""

    kube: Kube
    kind: Kind
    store: Store
    on_event: OnEvent
    _: KW_ONLY
    namespace: str | None = None
    watch_timeout: int = 300
    # Applied after `slim`: the Caches' cut of what they keep (the Secrets' used keys).
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def _slim(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        out = slim(self.kind, obj)
        return out if self.transform is None else self.transform(out)

    def _key_of(self, obj: dict[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name")))

    async def _list(self) -> str:
        # Slimmed page by page, and Secrets (up to 1 MiB each, tenants' to fill) in small
        # pages: a relist never holds more than a page of full objects.
        slimmed, rv = await self.kube.list(
            self.kind, self.namespace, self.kind.selector,
            each=self._slim, page_size=SECRET_PAGE_SIZE if self.kind is SECRET else PAGE_SIZE,
        )  # fmt: skip
        if self.namespace is None:
            changed, gone = self.store.replace(slimmed)
        else:  # several informers (one per namespace) may share a store
            changed = [o for o in slimmed if self.store.put(o)]
            mine = {self._key_of(o) for o in slimmed}
            gone = [k for k in self.store.list_keys() if k[0] == self.namespace and k not in mine]
            for k in gone:
                self.store.delete(*k)
        metrics.CACHE_OBJECTS.labels(self.kind.kind).set(len(self.store))
        for obj in changed:
            self.on_event(self.kind, "ADDED", obj)
        for ns, name in gone:
            self.on_event(self.kind, "DELETED", {"metadata": {"namespace": ns, "name": name}})
        return rv

    def _apply(self, event: WatchEvent) -> str | None:
        obj = event.object
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if event.type == "BOOKMARK":
            return str(rv) if rv else None
        slimmed = self._slim(obj)
        if event.type == "DELETED":
            self.store.delete(*self._key_of(slimmed))
            self.on_event(self.kind, "DELETED", slimmed)
        elif self.store.put(slimmed):
            self.on_event(self.kind, event.type, slimmed)
        metrics.CACHE_OBJECTS.labels(self.kind.kind).set(len(self.store))
        return str(rv) if rv else None

    async def run(self) -> None:
        """Forever: list, watch, and list again after 410 Gone or an error (with backoff)."""
        backoff = 0.5
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._list()
                    self.synced.set()
                async for event in self.kube.watch(
                    self.kind, self.namespace, rv, self.kind.selector, self.watch_timeout
                ):
                    rv = self._apply(event) or rv
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Gone:
                rv = ""
            except Exception as exc:
                log.warning(
                    "watch of %s failed, retrying in %.1fs: %s",
                    self.kind.plural,
                    backoff,
                    exc,
                    extra={"kind": self.kind.kind, "namespace": self.namespace},
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                # Keep rv: the server says 410 if it is too old, and we relist then.


class Caches:
    """Every informer of the process and its store: the operator's whole read side.

    One informer per kind (per watched namespace for namespaced kinds); those of optional kinds
    (ServiceMonitor, KEDA, the connection kinds) start and stop as their CRDs come and go, which
    also decides the `caps` the renderers see. Every change is fanned out to the subscribers
    (the reconciler, the scaler, the pool gauges); readers get copies from the stores.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        namespaces: Sequence[str] | None,
        credentials_namespace: str,
        grants: Grants | None = None,
    ) -> None:
        self.kube = kube
        self.namespaces = None if namespaces is None else list(namespaces)
        # ClusterTemporalConnections' Secrets live here (the operator's own namespace).
        self.credentials_namespace = credentials_namespace
        # The admin's grants ride along with the discovered capabilities to the renderers.
        self.caps = Capabilities(grants=grants or Grants())
        self.stores: dict[Kind, Store] = {}
        self._informers: dict[Kind, list[asyncio.Task[None]]] = {}
        self._synced: dict[Kind, list[asyncio.Event]] = {}
        self._subscribers: list[OnEvent] = []
        self._caps_subscribers: list[Callable[[], None]] = []
        self._crd_changed = asyncio.Event()
        # Secret keys the operator reads (TLS material, the API-key keys connections name): the
        # Secret cache keeps only these (trust.bounded_secret), so memory does not grow with
        # what tenants put into their opted-in Secrets.
        self._secret_keys: frozenset[str] = frozenset({*trust.TLS_KEYS, "api-key"})
        self._crd_task: asyncio.Task[None] | None = None
        # One _follow_crds at a time: the CRD informer's first listing wakes the follower task
        # while start() still waits for the other caches, and a second call that found the
        # informers already started returned at once, before the first had set `caps`: the
        # first reconciles after every start then planned without ServiceMonitor and KEDA (a
        # wrong status written and written back: the restart writes of bench_operator).
        self._crd_lock = asyncio.Lock()

    def subscribe(self, callback: OnEvent) -> None:
        """Call `callback(kind, type, object)` for every change (synchronously: keep it cheap)."""
        self._subscribers.append(callback)

    def subscribe_capabilities(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after an optional kind came or went (its CRD was (un)installed)."""
        self._caps_subscribers.append(callback)

    def store(self, kind: Kind) -> Store:
        return self.stores.setdefault(kind, Store())

    def synced(self, kind: Kind) -> bool:
        events = self._synced.get(kind) or []
        return bool(events) and all(e.is_set() for e in events)

    async def wait_synced(self, kinds: Iterable[Kind]) -> None:
        for kind in kinds:
            for event in self._synced.get(kind, []):
                await event.wait()

    async def start(self) -> None:
        """Start every informer and wait for the first full listing of each."""
        always = [POOL, *[k for k in CHILDREN if k.crd is None], SECRET, POD, NAMESPACE, CRD]
        for kind in always:
            self._start_informers(kind)
        self._crd_task = asyncio.create_task(self._crd_loop(), name="crd-follower")
        await self.wait_synced([POOL, *[k for k in CHILDREN if k.crd is None], SECRET, NAMESPACE])
        await self.wait_synced([CRD])
        await self._follow_crds()

    async def close(self) -> None:
        for kind in list(self._informers):
            self._stop_informers(kind)
        if self._crd_task is not None:
            self._crd_task.cancel()

    def _bounded_secret(self, obj: dict[str, Any]) -> dict[str, Any]:
        return trust.bounded_secret(obj, self._secret_keys)

    def _follow_secret_keys(self) -> None:
        """A connection naming an API-key key the Secret cache does not keep yet: keep it too,
        and list the Secrets again (into the same store, so nothing disappears meanwhile)."""
        keys = set(self._secret_keys)
        for kind in CONNECTIONS:
            for body in self.stores[kind].values() if kind in self.stores else ():
                ref = (body.get("spec") or {}).get("apiKeySecretRef") or {}
                keys.add(str(ref.get("key") or "api-key"))
        if keys <= self._secret_keys:
            return
        self._secret_keys = frozenset(keys)
        if SECRET in self._informers:
            for task in self._informers.pop(SECRET):
                task.cancel()
            self._start_informers(SECRET)

    def _dispatch(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        if kind is CRD:
            self._crd_changed.set()
        if kind in CONNECTIONS:
            self._follow_secret_keys()
        for callback in self._subscribers:
            callback(kind, type_, obj)

    def _start_informers(self, kind: Kind) -> None:
        if kind in self._informers:
            return
        scopes: Iterable[str | None] = (
            [None] if self.namespaces is None or not kind.namespaced else self.namespaces
        )
        if kind is SECRET and self.namespaces is not None:
            scopes = list(dict.fromkeys([*self.namespaces, self.credentials_namespace]))
        tasks, synced = [], []
        transform = self._bounded_secret if kind is SECRET else None
        for ns in scopes:
            inf = Informer(
                self.kube, kind, self.store(kind), self._dispatch, namespace=ns, transform=transform
            )
            tasks.append(asyncio.create_task(inf.run(), name=f"informer-{kind.plural}-{ns}"))
            synced.append(inf.synced)
        self._informers[kind] = tasks
        self._synced[kind] = synced

    def _stop_informers(self, kind: Kind) -> None:
        for task in self._informers.pop(kind, []):
            task.cancel()
        self._synced.pop(kind, None)
        self.stores.pop(kind, None)

    @staticmethod
    def _optional_kinds() -> list[Kind]:
        return [k for k in (*CHILDREN, *CONNECTIONS) if k.crd is not None]

    async def _crd_loop(self) -> None:
        while True:
            await self._crd_changed.wait()
            self._crd_changed.clear()
            await self._follow_crds()

    async def _follow_crds(self) -> None:
        """Start or stop the informer of an optional kind as its CRD comes and goes; `caps`
        describes them when this returns (a call in progress elsewhere is waited for)."""
        async with self._crd_lock:
            await self._follow_crds_locked()

    async def _follow_crds_locked(self) -> None:
        established = {
            str(c["metadata"]["name"]) for c in self.store(CRD).values() if c.get("established")
        }
        changed = False
        for kind in self._optional_kinds():
            if kind.crd in established and kind not in self._informers:
                self._start_informers(kind)
                changed = True
            elif kind.crd not in established and kind in self._informers:
                self._stop_informers(kind)
                changed = True
        if not changed:
            return
        await self.wait_synced(self._optional_kinds())
        caps = Capabilities(
            service_monitor=self.synced(SERVICE_MONITOR),
            keda=self.synced(SCALED_OBJECT) and self.synced(TRIGGER_AUTH),
            grants=self.caps.grants,
        )
        if caps != self.caps:
            log.info("capabilities changed", extra={"capabilities": caps.__dict__})
            self.caps = caps
        for callback in self._caps_subscribers:
            callback()
