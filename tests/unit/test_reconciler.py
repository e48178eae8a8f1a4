"""One pool's reconcile as the reconciler runs it (reconcile/reconciler.py): planned from the
caches, carried out, reported. The real ClusterView and Stores over a stand-in API server that
answers applies as a real one does (the object back, with a UID and no status yet) and feeds
what was written back into the caches, as the watches would."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

from tests import builders
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CHILDREN,
    DEPLOYMENT,
    NAMESPACE,
    PDB,
    POOL,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    Kind,
)
from workerpool_operator.kube.cache import Caches, Store
from workerpool_operator.kube.client import Kube, kind_of
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.reconciler import Reconciler
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.render import Capabilities

UID = "0000-pool-uid"
KEY = ("shop", "orders")


class Bed:
    """The API server and the operator's caches in one: every write is counted, and lands in
    the caches only when `deliver()` plays the watch events out."""

    def __init__(self) -> None:
        self.stores: dict[Kind, Store] = {k: Store() for k in (POOL, NAMESPACE, SECRET, *CHILDREN)}
        self.caps = Capabilities()
        self.namespaces: list[str] | None = None
        self.credentials_namespace = "workerpools-system"
        self.writes: list[str] = []
        self.pending: list[tuple[Kind, dict[str, Any]]] = []

    # the Caches surface ClusterView and Reconciler use
    def store(self, kind: Kind) -> Store:
        return self.stores[kind]

    def subscribe(self, callback: Callable[..., None]) -> None:
        pass

    def subscribe_capabilities(self, callback: Callable[[], None]) -> None:
        pass

    # the Kube surface the executor and report() use
    async def get(self, kind: Kind, namespace: str, name: str, **_: Any) -> dict[str, Any] | None:
        return self.stores[kind].get(namespace, name)

    async def apply(self, obj: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        kind = kind_of(obj)
        self.writes.append(kind.kind)
        live: dict[str, Any] = json.loads(json.dumps(obj))
        live["metadata"]["uid"] = f"uid-{kind.kind}"
        live["metadata"]["generation"] = 1
        if kind is DEPLOYMENT:
            live["spec"].setdefault("replicas", 1)
            live["status"] = {}  # the controller-manager has not looked at it yet
        self.pending.append((kind, live))
        return live

    async def apply_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any], **_: Any
    ) -> dict[str, Any]:
        self.writes.append(f"{kind.kind} status")
        body = self.stores[POOL].get(namespace, name)
        assert body is not None
        body["status"] = json.loads(json.dumps(status))
        self.pending.append((POOL, body))
        return body

    async def try_event(self, *_: Any, **__: Any) -> None:
        pass

    def deliver(self) -> None:
        for kind, obj in self.pending:
            self.stores[kind].put(obj)
        self.pending.clear()


def new_pool() -> dict[str, Any]:
    doc = builders.pool("orders", "shop", connection={"address": "temporal:7233"})
    doc["metadata"].update(uid=UID, generation=1)
    return doc


def reconciler(bed: Bed) -> Reconciler:
    caches = cast(Caches, bed)
    return Reconciler(cast(Kube, bed), caches, ClusterView(caches), workers=1)


def ready(bed: Bed) -> dict[str, Any]:
    body = bed.stores[POOL].get(*KEY)
    assert body is not None
    conditions = (body.get("status") or {}).get("conditions") or []
    return next(c for c in conditions if c["type"] == api.CONDITION_READY)


async def test_a_new_pool_is_written_then_described_then_left_alone() -> None:
    """The pass that creates the children writes no status (it would be stale at once); the
    pass their watch events bring writes one that describes them; after that, a pool whose
    children and status are current costs no write."""
    bed = Bed()
    bed.stores[POOL].put(new_pool())
    r = reconciler(bed)

    assert not await r.reconcile(KEY)
    assert sorted(bed.writes) == sorted(k.kind for k in (DEPLOYMENT, SERVICE, SERVICE_ACCOUNT, PDB))
    bed.deliver()

    written = len(bed.writes)
    assert not await r.reconcile(KEY)  # the children's events
    assert bed.writes[written:] == [f"{api.KIND} status"]
    bed.deliver()
    body = bed.stores[POOL].get(*KEY)
    assert body is not None
    assert body["status"]["observedGeneration"] == 1
    assert body["status"]["desiredReplicas"] == 1  # the Deployment as created
    assert ready(bed)["message"] == "0/1 replicas ready"

    written = len(bed.writes)
    assert not await r.reconcile(KEY)  # the status's own event, or a resync
    assert bed.writes[written:] == []


async def test_the_status_follows_the_deployment_once_its_pods_are_ready() -> None:
    bed = Bed()
    bed.stores[POOL].put(new_pool())
    r = reconciler(bed)
    await r.reconcile(KEY)
    bed.deliver()
    await r.reconcile(KEY)
    bed.deliver()

    dep = bed.stores[DEPLOYMENT].get(*KEY)
    assert dep is not None
    dep["status"] = {
        "observedGeneration": 1,
        **dict.fromkeys(("replicas", "readyReplicas", "availableReplicas", "updatedReplicas"), 1),
    }
    bed.stores[DEPLOYMENT].put(dep)
    written = len(bed.writes)
    await r.reconcile(KEY)
    assert bed.writes[written:] == [f"{api.KIND} status"]
    bed.deliver()
    assert ready(bed)["status"] == "True"
    assert ready(bed)["reason"] == Reason.AVAILABLE
