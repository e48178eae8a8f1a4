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


async def test_a_sooner_look_replaces_a_later_one_and_a_later_one_changes_nothing() -> None:
    # A versioned pool at rest waits 30 s for its next look; a spec change asks for one in
    # 1 s. Keeping the 30 s timer left rollouts waiting out the rest of it (issue 18's tail).
    q = WorkQueue()
    key = ("ns", "pool")
    q.add_after(key, 30.0)
    q.add_after(key, 0.05)
    assert await asyncio.wait_for(q.get(), 1) == key
    q.done(key)
    # Events of a burst each ask for a look soon: the first one's time stands.
    q.add_after(key, 0.05)
    q.add_after(key, 30.0)
    for _ in range(3):
        q.add_after(key, 0.2)
    assert await asyncio.wait_for(q.get(), 1) == key
    q.done(key)
    await asyncio.sleep(0.3)  # the later asks were folded into the first: nothing more comes
    assert q.idle()
