"""The scaler never mixes up queues or tenants: history per queue, readings per credentials."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from workerpool_operator.scaling.decide import History
from workerpool_operator.scaling.loop import PoolState
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
