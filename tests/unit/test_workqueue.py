"""The engine's work queue: deduplication, one worker per key, urgent keys first."""

from __future__ import annotations

import asyncio

from workerpool_operator.reconcile.queue import WorkQueue


async def test_a_key_is_queued_once_and_requeued_if_it_changed_while_processed() -> None:
    q = WorkQueue()
    q.add(("ns", "a"))
    q.add(("ns", "a"))
    assert len(q) == 1
    key = await q.get()
    q.add(key)  # changed while a worker has it: not handed to a second worker
    assert len(q) == 1
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == key
    q.done(key)
    assert q.idle()


async def test_urgent_keys_are_handed_out_first() -> None:
    q = WorkQueue()
    for i in range(3):
        q.add(("ns", f"status-{i}"))
    q.add(("ns", "new-pool"), urgent=True)
    q.add(("ns", "status-2"), urgent=True)  # already queued: it jumps ahead, once
    order = [await q.get() for _ in range(4)]
    assert order[:2] == [("ns", "new-pool"), ("ns", "status-2")]
    assert sorted(order[2:]) == [("ns", "status-0"), ("ns", "status-1")]
    for key in order:
        q.done(key)
    assert q.idle()
    assert len(q) == 0
