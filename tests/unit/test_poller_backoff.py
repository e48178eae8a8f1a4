"""The backlog poller's back-off after a Temporal outage (scaling/observe.py).

A fake Temporal client (a server that is down, then up again) and a fake clock: what matters is
which reading a pool gets at a given moment, not real time.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from workerpool_operator.scaling.observe import BacklogPoller
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import Connection


class Server:
    """A Temporal frontend that can be down; every queue has a backlog of 7 per type."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def describe(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        if not self.up:
            raise RuntimeError("DeadlineExceeded")
        stats = SimpleNamespace(
            approximate_backlog_count=7,
            approximate_backlog_age=SimpleNamespace(
                ToTimedelta=lambda: SimpleNamespace(total_seconds=lambda: 0.0)
            ),
            tasks_add_rate=0.0,
            tasks_dispatch_rate=0.0,
        )
        return SimpleNamespace(stats=stats, pollers=[])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poller_for(server: Server, clock: Clock) -> BacklogPoller:
    async def connect(*_: Any, **__: Any) -> Any:
        service = SimpleNamespace(describe_task_queue=server.describe)
        return SimpleNamespace(workflow_service=service)

    return BacklogPoller(clock=clock, clients=TemporalClients(connect=connect, clock=clock))


async def fail_long(poller: BacklogPoller, conn: Connection, queue: str, clock: Clock) -> float:
    """Poll `queue` every period through an outage long enough for a deep back-off; returns
    when its last failing round started."""
    last_failed = clock.now
    for _ in range(20):  # 105 s: failures 1..5, the back-off at its cap
        reading = await poller.observe(conn, queue)
        if reading.error is not None:
            last_failed = reading.fetched_at
        clock.now += 5.25
    return last_failed


async def test_a_queue_in_back_off_polls_again_once_its_connection_answers() -> None:
    server, clock = Server(), Clock()
    poller = poller_for(server, clock)
    conn = Connection("temporal:7233", "default")
    try:
        assert (await poller.observe(conn, "orders")).error is None
        server.up = False
        await fail_long(poller, conn, "orders", clock)
        # Temporal is back; another pool's queue on the same connection gets a good reading ...
        server.up = True
        assert (await poller.observe(conn, "billing")).error is None
        clock.now += 5.25
        # ... so "orders" is read again at its next step, not after the rest of its back-off
        # (up to 60 s more, holding its replicas while its backlog grows).
        reading = await poller.observe(conn, "orders")
        assert reading.error is None
        assert reading.backlog is not None
        assert reading.backlog.count == 14
    finally:
        await poller.close()


async def test_back_off_holds_while_nothing_on_the_connection_answers() -> None:
    server, clock = Server(), Clock()
    poller = poller_for(server, clock)
    conn = Connection("temporal:7233", "default")
    other_tenant = Connection("temporal:7233", "default", tls=True, api_key="tenant-b")
    try:
        server.up = False
        await fail_long(poller, conn, "orders", clock)
        calls = server.calls
        # a success through other credentials says nothing about these: no early retry
        server.up = True
        assert (await poller.observe(other_tenant, "orders")).error is None
        server.up = False
        for _ in range(3):
            clock.now += 5.25
            assert (await poller.observe(conn, "orders")).error is not None
        assert server.calls == calls + 2  # the other tenant's round (two types): still backing off
    finally:
        await poller.close()
