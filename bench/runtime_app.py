"""Benchmark user code: one workflow that keeps a fixed number of no-op activities in flight.

Both workers in bench.bench_runtime host exactly this workflow and its own `noop`
activity, so the only difference between them is the runtime itself. Lanes (each one running
its share of activities back to back) keep the in-flight count steady instead of gathering in
batches, which would leave the worker idle while each batch's slowest activity finishes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def noop() -> None:
    """Does nothing: what is measured is the runtime around it."""


@workflow.defn
class NoopLanes:
    """Run `activities` no-op activities over `lanes` concurrent sequential chains."""

    @workflow.run
    async def run(self, activities: int, lanes: int) -> int:
        async def lane(count: int) -> int:
            for _ in range(count):
                await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=60))
            return count

        share, extra = divmod(activities, lanes)
        done = await asyncio.gather(*(lane(share + (i < extra)) for i in range(lanes)))
        return sum(done)
