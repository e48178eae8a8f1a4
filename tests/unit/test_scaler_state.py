"""The scaler never mixes up queues or tenants (history per queue, readings per credentials),
and steps each pool at its own period."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from workerpool_operator.scaling.decide import History
from workerpool_operator.scaling.loop import PoolState, Scaler
from workerpool_operator.scaling.observe import (
    MIN_POLL_SECONDS,
    SERVER_STATS_CACHE_SECONDS,
    BacklogPoller,
    poll_period,
    served_types,
)
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


class HintClient:
    """A server whose stats are still cached at 0 while the root partition already holds 3."""

    def __init__(self) -> None:
        self.asked_hint: list[bool] = []

        async def describe(request: Any, **__: Any) -> Any:
            self.asked_hint.append(bool(request.include_task_queue_status))
            stats = SimpleNamespace(
                approximate_backlog_count=0,
                approximate_backlog_age=SimpleNamespace(
                    ToTimedelta=lambda: SimpleNamespace(total_seconds=lambda: 0.0)
                ),
                tasks_add_rate=0.0,
                tasks_dispatch_rate=0.0,
            )
            status = SimpleNamespace(
                backlog_count_hint=3 if request.include_task_queue_status else 0
            )
            return SimpleNamespace(stats=stats, pollers=[], task_queue_status=status)

        self.workflow_service = SimpleNamespace(describe_task_queue=describe)


async def test_a_pool_at_zero_reads_the_live_hint_and_others_do_not() -> None:
    """From 0 the first worker waits on the poll, and the stats are cached for ~5 s: a round
    for a pool at 0 also reads the root partition's live count; other rounds stay stats-only."""
    fake = HintClient()

    async def connect(address: str, **kwargs: Any) -> Any:
        return fake

    poller = BacklogPoller(clients=TemporalClients(connect=connect))
    conn = Connection("temporal:7233", "default")
    workflows = served_types(workflows=True, activities=False)
    plain = await poller.observe(conn, "q1", max_age=60, types=workflows)
    at_zero = await poller.observe(conn, "q2", max_age=60, types=workflows, hint=True)
    assert plain.backlog is not None
    assert at_zero.backlog is not None
    assert (plain.backlog.count, at_zero.backlog.count) == (0, 3)
    assert fake.asked_hint == [False, True]  # one call per round either way
    await poller.close()


def test_a_pool_at_zero_is_polled_twice_as_often_and_still_gets_fresh_stats() -> None:
    for interval in (1, 5, 7, 30, 300):
        period = poll_period(interval)
        assert period >= MIN_POLL_SECONDS > SERVER_STATS_CACHE_SECONDS
        assert poll_period(interval, at_zero=True) == period / 2
        # every other round at zero is past the server's stats cache
        assert 2 * poll_period(interval, at_zero=True) > SERVER_STATS_CACHE_SECONDS


async def test_the_step_that_leaves_a_pool_at_zero_sets_the_faster_period() -> None:
    key = ("ns", "p")
    body = {"metadata": {"namespace": "ns", "name": "p"},
            "spec": {"autoscaling": {"engine": "Builtin", "pollIntervalSeconds": 5}}}  # fmt: skip
    view = SimpleNamespace(pool_keys=lambda: [], pool=lambda k: body)
    now = [1000.0]
    scaler = Scaler(cast(Any, None), cast(Any, view), BacklogPoller(), clock=lambda: now[0])
    for replicas_after, period in ((0, 2.625), (2, 5.25), (0, 2.625)):

        async def step(k: Any, state: PoolState, replicas: int = replicas_after) -> None:
            state.at_zero = replicas == 0

        scaler.step = step  # type: ignore[method-assign,assignment]
        state = PoolState(running=True)
        await scaler._step_logged(key, state)
        assert (state.next_at - now[0], state.running) == (period, False)


async def test_the_running_count_is_asked_only_after_a_round_with_no_backlog() -> None:
    """The zero guard's visibility count matters only when the decision could go to 0, which a
    backlog rules out: pools above 0 with tasks waiting asked every 15 s, and on the dev server
    each count took seconds and slowed every other call (the bench's from-N minutes)."""
    backlog = [5]
    counted: list[int] = []

    class Fake:
        def __init__(self) -> None:
            async def describe(*_: Any, **__: Any) -> Any:
                stats = SimpleNamespace(
                    approximate_backlog_count=backlog[0],
                    approximate_backlog_age=SimpleNamespace(
                        ToTimedelta=lambda: SimpleNamespace(total_seconds=lambda: 0.0)
                    ),
                    tasks_add_rate=0.0,
                    tasks_dispatch_rate=0.0,
                )
                return SimpleNamespace(stats=stats, pollers=[])

            self.workflow_service = SimpleNamespace(describe_task_queue=describe)

        async def count_workflows(self, query: str, **_: Any) -> Any:
            counted.append(backlog[0])
            return SimpleNamespace(count=2)

    fake = Fake()

    async def connect(address: str, **kwargs: Any) -> Any:
        return fake

    now = [0.0]
    poller = BacklogPoller(clients=TemporalClients(connect=connect), clock=lambda: now[0])
    conn = Connection("temporal:7233", "default")
    workflows = served_types(workflows=True, activities=False)
    for t in (0.0, 20.0, 40.0):  # every round past the count's 15 s age, tasks waiting
        now[0] = t
        r = await poller.observe(conn, "q", max_age=5.25, count_running=True, types=workflows)
        assert r.backlog is not None
        assert r.backlog.count == 5
    assert counted == []
    backlog[0] = 0
    now[0] = 60.0
    r = await poller.observe(conn, "q", max_age=5.25, count_running=True, types=workflows)
    assert r.backlog is not None
    assert (r.backlog.count, r.backlog.running_workflows) == (0, 2)  # the guard holds a replica
    assert counted == [0]
    now[0] = 61.0  # a fresh empty reading and a fresh count: served from the cache
    await poller.observe(conn, "q", max_age=5.25, count_running=True, types=workflows)
    assert counted == [0]
    await poller.close()
