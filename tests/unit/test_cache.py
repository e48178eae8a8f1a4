"""The watch-fed caches (cache.py): what a relist reports, per namespace, and what is kept.

The informer runs against a scripted API (a listing per namespace and a watch that ends in
410 Gone on cue): the properties here are the cache's own bookkeeping, which the e2e and chaos
tests only see through their effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from testbed.wait import eventually
from workerpool_operator.kinds import DEPLOYMENT, NAMESPACE, POD, REPLICAS_OWNERS, SECRET, SERVICE
from workerpool_operator.kube.cache import Informer, Store, slim
from workerpool_operator.kube.client import WatchEvent
from workerpool_operator.kube.errors import Gone


def obj(ns: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, **extra}


def test_replace_reports_only_what_changed_and_what_went() -> None:
    store = Store()
    store.replace([obj("a", "same"), obj("a", "edited", spec={"v": 1}), obj("a", "deleted")])
    changed, gone = store.replace(
        [obj("a", "same"), obj("a", "edited", spec={"v": 2}), obj("a", "new")]
    )
    assert [o["metadata"]["name"] for o in changed] == ["edited", "new"]
    assert gone == [("a", "deleted")]
    assert sorted(store.list_keys()) == [("a", "edited"), ("a", "new"), ("a", "same")]
    assert store.get("a", "edited") == obj("a", "edited", spec={"v": 2})


def test_a_reader_gets_its_own_copy() -> None:
    store = Store()
    store.put(obj("a", "x", spec={"v": 1}))
    got = store.get("a", "x")
    assert got is not None
    got["spec"]["v"] = 99
    assert store.get("a", "x") == obj("a", "x", spec={"v": 1})
    assert not store.put(obj("a", "x", spec={"v": 1}))  # the same bytes: no change


class ScriptedApi:
    """list() answers from `listing`; each watch waits until `relist()` ends it with 410."""

    def __init__(self) -> None:
        self.listing: dict[str, list[dict[str, Any]]] = {}
        self.gone: dict[str, asyncio.Event] = {}

    async def list(
        self,
        kind: Any,
        namespace: str | None = None,
        selector: str | None = None,
        *,
        each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]:
        items = [dict(o) for o in self.listing.get(namespace or "", [])]
        return [each(o) for o in items] if each is not None else items, "1"

    async def watch(self, kind: Any, namespace: str | None, *_: Any) -> AsyncIterator[WatchEvent]:
        event = self.gone.setdefault(namespace or "", asyncio.Event())
        await event.wait()
        event.clear()
        raise Gone()
        yield  # an async generator

    def relist(self, namespace: str) -> None:
        self.gone.setdefault(namespace, asyncio.Event()).set()


def test_a_relist_of_one_namespace_deletes_only_its_own_vanished_objects() -> None:
    """Informers of several namespaces share a store: a relist of `a` that no longer lists
    a/x reports a/x deleted and leaves namespace b's objects (b/x too) alone."""

    async def main() -> list[tuple[str, str, str]]:
        api = ScriptedApi()
        api.listing = {"a": [obj("a", "x"), obj("a", "y")], "b": [obj("b", "x")]}
        store, events = Store(), []

        def record(kind: Any, etype: str, o: dict[str, Any]) -> None:
            events.append((etype, o["metadata"]["namespace"], o["metadata"]["name"]))

        informers = [
            Informer(api, SERVICE, store, record, namespace=ns)  # type: ignore[arg-type]
            for ns in ("a", "b")
        ]
        tasks = [asyncio.create_task(i.run()) for i in informers]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), 5)
        events.clear()
        api.listing["a"] = [obj("a", "y", spec={"v": 2})]
        api.relist("a")
        await eventually(lambda: ("ADDED", "a", "y") in events, "a's relist", wait_s=5,
                         interval=0.01)  # fmt: skip
        for t in tasks:
            t.cancel()
        assert sorted(store.list_keys()) == [("a", "y"), ("b", "x")]
        return events

    assert sorted(asyncio.run(main())) == [("ADDED", "a", "y"), ("DELETED", "a", "x")]


def test_slim_keeps_what_the_operator_reads() -> None:
    managed = [
        {"manager": "workerpool-operator", "operation": "Apply",
         "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:metadata": {}}},
    ]  # fmt: skip
    dep = slim(DEPLOYMENT, obj("a", "d", spec={"replicas": 3}) | {"metadata": {
        "namespace": "a", "name": "d", "managedFields": managed}})  # fmt: skip
    assert dep[REPLICAS_OWNERS] == [
        "workerpool-operator/Apply",
        "kube-controller-manager/Update/scale",
    ]
    assert "managedFields" not in dep["metadata"]
    assert dep["spec"] == {"replicas": 3}

    pod = slim(POD, {
        "metadata": {"namespace": "a", "name": "p", "uid": "u", "labels": {"l": "1"},
                     "annotations": {"big": "x" * 1000}},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False"}, {"type": "Ready", "status": "False"}]},
    })  # fmt: skip
    assert pod == {
        "metadata": {"name": "p", "namespace": "a", "labels": {"l": "1"}, "uid": "u"},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]},
    }
    ns = slim(NAMESPACE, {"metadata": {"name": "a", "uid": "u", "labels": {"t": "s"},
                                       "annotations": {"x": "y"}}, "spec": {"finalizers": []},
                          "status": {"phase": "Active"}})  # fmt: skip
    assert ns["metadata"]["labels"] == {"t": "s"}  # allowedNamespaces selects on them
    assert "annotations" not in ns["metadata"]
    assert "spec" not in ns
    secret = slim(SECRET, {"metadata": {"namespace": "a", "name": "s", "uid": "u",
                                        "annotations": {"kubectl.kubernetes.io/x": "{}"}},
                           "data": {"k": "dg=="}, "type": "Opaque"})  # fmt: skip
    assert secret == {
        "metadata": {"name": "s", "namespace": "a", "labels": None, "uid": "u"},
        "data": {"k": "dg=="},
    }
