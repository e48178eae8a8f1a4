"""How the executor carries a plan out against the API server (reconcile/execute.py).

A recording stand-in for the Kube client: what matters here is which requests go out and in
what order (each request yields to the event loop, as a real one does), not their answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import DEPLOYMENT, PDB, SERVICE, SERVICE_ACCOUNT, Kind
from workerpool_operator.kube.client import Kube, kind_of
from workerpool_operator.reconcile.execute import Executor
from workerpool_operator.reconcile.model import Observed
from workerpool_operator.reconcile.plan import plan
from workerpool_operator.render import Capabilities

UID = "0000-pool-uid"


def new_pool() -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "orders", "namespace": "shop", "uid": UID, "generation": 1},
        "spec": {
            "connection": {"address": "temporal:7233"},
            "taskQueue": "orders",
            "workflows": ["app:Wf"],
        },
    }


class Recorder:
    """Every GET and apply, in order; `foreign` kinds exist under the pool's name, not its."""

    def __init__(self, foreign: frozenset[Kind] = frozenset()) -> None:
        self.foreign = foreign
        self.calls: list[tuple[str, str]] = []

    async def get(self, kind: Kind, namespace: str, name: str, **_: Any) -> dict[str, Any] | None:
        self.calls.append(("get", kind.kind))
        await asyncio.sleep(0)
        return {"metadata": {"name": name}} if kind in self.foreign else None

    async def apply(self, obj: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        self.calls.append(("apply", kind_of(obj).kind))
        await asyncio.sleep(0)
        return dict(obj)


async def test_a_new_pool_is_looked_up_once_then_written_in_phases() -> None:
    """Each phase was a lookup and then a write: six round trips in a row for a new pool
    where three do (all lookups at once, then one round of writes per phase: the PDB, which
    names no object, goes with the ServiceAccount and the Service, then the Deployment)."""
    kube = Recorder()
    p = plan(new_pool(), Capabilities(), Observed())
    outcome = await Executor(cast(Kube, kube)).execute("shop", "orders", p)
    verbs = [verb for verb, _ in kube.calls]
    assert "apply" in verbs
    first_write = verbs.index("apply")
    assert "get" not in verbs[first_write:], kube.calls  # every lookup before any write
    writes = [kind for verb, kind in kube.calls if verb == "apply"]
    # what a child points at is written before it
    assert writes.index(SERVICE_ACCOUNT.kind) < writes.index(DEPLOYMENT.kind)
    # the PDB covers the pods from the first one, in the same round as the ServiceAccount
    assert writes.index(PDB.kind) < writes.index(DEPLOYMENT.kind)
    assert sorted(writes[:3]) == sorted([SERVICE_ACCOUNT.kind, SERVICE.kind, PDB.kind])
    assert outcome.created == len(writes)
    assert not outcome.conflicts


async def test_a_name_someone_else_holds_blocks_what_would_point_at_it() -> None:
    kube = Recorder(foreign=frozenset({SERVICE_ACCOUNT}))
    p = plan(new_pool(), Capabilities(), Observed())
    outcome = await Executor(cast(Kube, kube)).execute("shop", "orders", p)
    writes = {kind for verb, kind in kube.calls if verb == "apply"}
    assert SERVICE.kind in writes  # unaffected
    assert SERVICE_ACCOUNT.kind not in writes  # never taken over
    assert DEPLOYMENT.kind not in writes  # its pods would run as someone else's account
    assert PDB.kind not in writes  # it would point at a Deployment that is not written
    assert set(outcome.conflicts) == {SERVICE_ACCOUNT}
