"""The scaler never mixes up queues or tenants (history per queue, readings per credentials),
and steps each pool at its own period."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from workerpool_operator.scaling.decide import History
from workerpool_operator.scaling.loop import PoolState, Scaler
from workerpool_operator.scaling.observe import BacklogPoller
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import Connection


def test_history_resets_when_the_queue_or_the_connection_changes() -> None:
    state = PoolState()
    state.follow(("orders", "fp1"))
    state.history = History(recommendations=((1.0, 5),), last_backlog=40)
    state.follow(("orders", "fp1"))
    assert state.history.last_backlog == 40  # same queue: kept
    state.follow(("orders-v2", "fp1"))  # taskQueue renamed
    assert state.history == History()
    state.history = History(recommendations=((2.0, 3),), last_backlog=9)
    state.follow(("orders-v2", "fp2"))  # another connection (server or credentials)
    assert state.history == History()


class FakeClient:
    """Stands in for temporalio's Client: each API key sees its own tenant's backlog."""

    def __init__(self, api_key: str | None) -> None:
        backlog = {"tenant-a": 7, "tenant-b": 0}.get(api_key or "", 0)
        stats = SimpleNamespace(
            approximate_backlog_count=backlog,
            approximate_backlog_age=SimpleNamespace(
                ToTimedelta=lambda: SimpleNamespace(total_seconds=lambda: 0.0)
            ),
            tasks_add_rate=0.0,
            tasks_dispatch_rate=0.0,
        )

        async def describe(*_: Any, **__: Any) -> Any:
            if api_key == "revoked":
                raise RuntimeError("PermissionDenied")
            return SimpleNamespace(stats=stats, pollers=[])

        self.workflow_service = SimpleNamespace(describe_task_queue=describe)


async def fake_connect(address: str, **kwargs: Any) -> Any:
    return FakeClient(kwargs.get("api_key"))


async def test_tenants_with_other_credentials_never_share_readings_or_back_off() -> None:
    clients = TemporalClients(connect=fake_connect)
    poller = BacklogPoller(clients=clients)
    a = Connection("temporal:7233", "shared", tls=True, api_key="tenant-a")
    b = Connection("temporal:7233", "shared", tls=True, api_key="tenant-b")
    revoked = Connection("temporal:7233", "shared", tls=True, api_key="revoked")
    ra = await poller.observe(a, "orders", max_age=60)
    rb = await poller.observe(b, "orders", max_age=60)  # same queue, inside a's window
    assert ra.backlog is not None
    assert rb.backlog is not None
    assert (ra.backlog.count, rb.backlog.count) == (14, 0)  # workflow + activity each
    bad = await poller.observe(revoked, "orders", max_age=60)
    assert bad.error is not None  # its failure and back-off are its own
    again = await poller.observe(a, "orders", max_age=60)
    assert again.error is None
    assert len(clients.connections()) == 3
    assert poller.evict_idle(0.0) == 3  # unused clients go, and their readings with them
    assert clients.connections() == []
    await poller.close()


def builtin_pool(generation: int, backlog: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "p", "generation": generation},
        "spec": {"autoscaling": {"engine": "Builtin"}},
        "status": {"backlog": {"count": backlog}},
    }


def test_only_a_spec_change_brings_a_pools_next_step_forward() -> None:
    """A status write (the scaler's own, the reconciler's) re-timed the pool's next poll from
    that moment: a pool whose status moved every few seconds had its polls put off."""
    view = SimpleNamespace(pool_keys=lambda: [])
    scaler = Scaler(cast(Any, None), cast(Any, view), BacklogPoller())
    key = ("ns", "p")
    scaler.pool_event(key, "ADDED", builtin_pool(1))
    state = scaler.states[key] = PoolState(next_at=100.0)
    scaler.pool_event(key, "MODIFIED", builtin_pool(1, backlog=20))  # status only
    assert state.next_at == 100.0
    scaler.pool_event(key, "MODIFIED", builtin_pool(2, backlog=20))  # the spec changed
    assert state.next_at == 0.0
