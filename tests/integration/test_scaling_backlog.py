"""The backlog poller against the real Temporal dev server (no mocks of Temporal)."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from workerpool_operator.scaling.observe import (
    ACTIVITY,
    WORKFLOW,
    BacklogPoller,
    served_types,
)
from workerpool_operator.temporal.connections import Connection


async def start_workflows(address: str, queue: str, n: int) -> Client:
    client = await Client.connect(address)
    for i in range(n):
        await client.start_workflow("NobodyPollsThis", id=f"{queue}-{i}", task_queue=queue)
    return client


async def wait_backlog(poller: BacklogPoller, conn: Connection, queue: str, want: int) -> int:
    """Poll until Temporal reports `want` (its stats lag a few seconds behind)."""
    count = -1
    for _ in range(60):
        reading = await poller.observe(conn, queue, max_age=0.5, count_running=True)
        if reading.backlog is not None:
            count = reading.backlog.count
            if count == want:
                return count
        await asyncio.sleep(0.5)
    return count


async def test_backlog_of_unpolled_queue(temporal_server: TemporalDevServer) -> None:
    queue = f"bp-{uuid.uuid4().hex[:8]}"
    conn = Connection(temporal_server.address, temporal_server.namespace)
    poller = BacklogPoller()
    try:
        await start_workflows(temporal_server.address, queue, 7)
        assert await wait_backlog(poller, conn, queue, 7) == 7
        # With tasks waiting the decision cannot reach 0, so the zero guard's count is not asked.
        counter = BacklogPoller()
        waiting = await counter.observe(conn, queue, count_running=True)
        await counter.close()
        assert waiting.backlog is not None
        assert waiting.backlog.count == 7
        assert waiting.backlog.running_workflows is None
        assert waiting.backlog.pollers == 0
        assert waiting.workflow is not None
        assert waiting.workflow.backlog == 7
        # An activity-only pool on the queue sees no backlog of its own: its round asks for the
        # count, which sees the 7 running workflows (visibility is eventually consistent: a
        # fresh poller, so a fresh count, until it catches up).
        activities = served_types(workflows=False, activities=True)
        for _ in range(60):
            counter = BacklogPoller()
            reading = await counter.observe(conn, queue, count_running=True, types=activities)
            await counter.close()
            assert reading.error is None
            assert reading.backlog is not None
            if reading.backlog.running_workflows == 7:
                break
            await asyncio.sleep(0.5)
        assert reading.backlog is not None
        assert reading.backlog.count == 0
        assert reading.backlog.running_workflows == 7
    finally:
        await poller.close()


async def test_concurrent_requesters_share_one_round(temporal_server: TemporalDevServer) -> None:
    queue = f"bp-{uuid.uuid4().hex[:8]}"
    conn = Connection(temporal_server.address, temporal_server.namespace)
    poller = BacklogPoller()
    try:
        readings = await asyncio.gather(
            *(poller.observe(conn, queue, max_age=30) for _ in range(20))
        )
        key = (conn.address, conn.namespace, queue)
        assert poller.calls[key] == 2  # workflow + activity describe, once for 20 pools
        assert all(r is readings[0] for r in readings)
        # inside the window: served from the cache, no new call
        await poller.observe(conn, queue, max_age=30)
        assert poller.calls[key] == 2
    finally:
        await poller.close()


async def test_only_the_types_a_pool_polls_are_fetched_and_counted(
    temporal_server: TemporalDevServer,
) -> None:
    """A workflow-only pool scales on workflow tasks (one call per round); an activity-only pool
    on the same queue never sees them, since its workers could not take them."""
    queue = f"bp-{uuid.uuid4().hex[:8]}"
    conn = Connection(temporal_server.address, temporal_server.namespace)
    poller = BacklogPoller()
    key = (conn.address, conn.namespace, queue)
    try:
        await start_workflows(temporal_server.address, queue, 3)
        workflow_only = served_types(workflows=True, activities=False)
        assert workflow_only == {WORKFLOW}
        count = -1
        for _ in range(60):
            wf = await poller.observe(conn, queue, max_age=0.5, types=workflow_only)
            assert wf.activity is None
            count = wf.backlog.count if wf.backlog else -1
            if count == 3:
                break
            await asyncio.sleep(0.5)
        assert count == 3
        rounds = poller.calls[key]
        assert rounds >= 1
        act = await poller.observe(
            conn, queue, max_age=0.5, types=served_types(workflows=False, activities=True)
        )
        assert act.workflow is None
        assert act.activity is not None
        assert act.backlog is not None
        assert act.backlog.count == 0  # the workflow tasks are not its work
        assert poller.calls[key] == rounds + 1  # its own round: one call, the activity type
        assert served_types(workflows=False, activities=False) == {WORKFLOW, ACTIVITY}
    finally:
        await poller.close()


async def test_outage_is_an_error_reading_then_recovers(temporal: TemporalDevServer) -> None:
    queue = f"bp-{uuid.uuid4().hex[:8]}"
    conn = Connection(temporal.address, temporal.namespace)
    poller = BacklogPoller(rpc_timeout=2.0, backoff_max=1.0)
    try:
        first = await poller.observe(conn, queue, max_age=0.1)
        assert first.error is None
        temporal.stop()
        failed = await poller.observe(conn, queue, max_age=0.1)
        assert failed.backlog is None
        assert failed.error
        temporal.start()
        for _ in range(120):
            reading = await poller.observe(conn, queue, max_age=0.1)
            if reading.error is None:
                break
            await asyncio.sleep(0.5)
        assert reading.error is None
        assert reading.backlog is not None
    finally:
        await poller.close()


async def test_a_pool_at_zero_sees_a_new_backlog_before_the_cached_stats_do(
    temporal_server: TemporalDevServer,
) -> None:
    """The from-0 round's live root-partition hint shows new tasks while the server still
    answers its cached stats (0). Without the hint both stay 0 until the cache refreshes, so the
    state asserted here never occurs. A fresh queue per attempt: on a busy machine the cache
    may refresh before the probe, or every task may land on a non-root partition."""
    conn = Connection(temporal_server.address, temporal_server.namespace)
    workflows = served_types(workflows=True, activities=False)
    seen: list[tuple[int, int]] = []
    for _ in range(5):
        queue = f"bp-{uuid.uuid4().hex[:8]}"
        stats_only, at_zero = BacklogPoller(), BacklogPoller()
        try:
            cold = await stats_only.observe(conn, queue, max_age=0.1, types=workflows)
            assert cold.backlog is not None
            assert cold.backlog.count == 0
            await start_workflows(temporal_server.address, queue, 20)
            for _ in range(10):
                hinted = await at_zero.observe(conn, queue, max_age=0.1, types=workflows, hint=True)
                cached = await stats_only.observe(conn, queue, max_age=0.1, types=workflows)
                assert hinted.backlog is not None
                assert cached.backlog is not None
                seen.append((hinted.backlog.count, cached.backlog.count))
                if hinted.backlog.count > 0 or cached.backlog.count > 0:
                    break
                await asyncio.sleep(0.2)
        finally:
            await stats_only.close()
            await at_zero.close()
        if seen[-1][0] > 0 and seen[-1][1] == 0:
            return
    raise AssertionError(f"(hinted, stats-only) backlog counts seen: {seen}")
