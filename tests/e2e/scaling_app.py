"""Workflows the autoscaling e2e test runs on real `python -m worker_runtime` workers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def short_work(seconds: float) -> str:
    """A little real work so the backlog drains over a few seconds, not instantly."""
    await asyncio.sleep(seconds)
    return "done"


@workflow.defn
class ShortWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        return await workflow.execute_activity(
            short_work, seconds, start_to_close_timeout=timedelta(seconds=60)
        )


@workflow.defn
class WaitForSignalWorkflow:
    """Stays Running (nothing in the backlog) until signalled or terminated."""

    def __init__(self) -> None:
        self._done = False

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)
