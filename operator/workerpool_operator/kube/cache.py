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
from collections.abc import Callable, Iterator
from typing import Any

from workerpool_operator import metrics
from workerpool_operator.kinds import CRD, DEPLOYMENT, NAMESPACE, POD, REPLICAS_OWNERS, SECRET, Kind
from workerpool_operator.kube.client import Kube, WatchEvent
from workerpool_operator.kube.errors import Gone

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
OnEvent = Callable[[Kind, str, dict[str, Any]], None]

BACKOFF_MAX_SECONDS = 30.0


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


class Informer:
    """List + watch one kind in one scope into a Store, calling `on_event` for every change."""

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        store: Store,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.store = store
        self.on_event = on_event
        self.namespace = namespace
        self.watch_timeout = watch_timeout
        self.synced = asyncio.Event()

    def _key_of(self, obj: dict[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name")))

    async def _list(self) -> str:
        items, rv = await self.kube.list(self.kind, self.namespace, self.kind.selector)
        for item in items:
            item.setdefault("apiVersion", self.kind.api_version)
            item.setdefault("kind", self.kind.kind)
        slimmed = [slim(self.kind, i) for i in items]
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
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        slimmed = slim(self.kind, obj)
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
