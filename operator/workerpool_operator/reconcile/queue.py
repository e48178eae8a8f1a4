"""The work queue of pool keys, with client-go's workqueue rules: a key is queued at most once
and worked on by one worker at a time, and a burst of events for one pool collapses into one
reconcile. Failed keys come back with exponential backoff."""

from __future__ import annotations

import asyncio
import collections

from workerpool_operator import metrics
from workerpool_operator.kube.cache import Key

RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 300.0


class WorkQueue:
    """Deduplicating queue: a key is queued at most once and processed by one worker at a time.

    Two lanes: `urgent` keys (a pool was created or its spec changed) are handed out before the
    rest (a child's status moved, a resync), so a burst of new pools gets its children first
    and the status refreshes that the new children cause come after.
    """

    def __init__(self) -> None:
        self._lanes: tuple[collections.deque[Key], collections.deque[Key]] = (
            collections.deque(),
            collections.deque(),
        )
        self._ready = asyncio.Event()
        self._dirty: set[Key] = set()
        self._urgent: set[Key] = set()  # dirty keys that go first
        self._processing: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._dirty)

    def _push(self, key: Key) -> None:
        self._lanes[0 if key in self._urgent else 1].append(key)
        self._ready.set()

    def add(self, key: Key, *, urgent: bool = False) -> None:
        if urgent and key not in self._urgent:
            self._urgent.add(key)
            if key in self._dirty and key not in self._processing:
                self._push(key)  # jumps ahead; the copy in the other lane is skipped later
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)
        metrics.QUEUE_DEPTH.set(len(self._dirty))

    def add_after(self, key: Key, delay: float) -> None:
        """Queue `key` in `delay` seconds. A key already waiting keeps the earlier of the two
        times (client-go's AddAfter): a pool's 30 s look at rest must not postpone the 1 s one
        a spec change asks for, nor a child's event; a later time changes nothing, so a burst
        of events still collapses into one reconcile."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        waiting = self._timers.get(key)
        if waiting is not None:
            if waiting.when() <= when:
                return
            waiting.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_at(when, fire)

    def retry(self, key: Key) -> float:
        """Requeue a failed key with exponential backoff; the delay chosen."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(RETRY_BASE_SECONDS * 2.0**n, RETRY_MAX_SECONDS)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        """Consecutive failed attempts of `key` so far."""
        return self._failures.get(key, 0)

    async def get(self) -> Key:
        while True:
            for lane in self._lanes:
                while lane:
                    key = lane.popleft()
                    if key in self._dirty and key not in self._processing:
                        self._processing.add(key)
                        self._dirty.discard(key)
                        self._urgent.discard(key)
                        metrics.QUEUE_DEPTH.set(len(self._dirty))
                        return key
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key)

    def idle(self) -> bool:
        return not self._dirty and not self._processing
