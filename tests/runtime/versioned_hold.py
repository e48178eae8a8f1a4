"""A versioned test app for per-version scaling: Smoke returns at once, Hold runs one activity
that keeps its worker's slot busy for the given seconds (a busy worker with no backlog)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="hold")
async def hold(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "held"


@workflow.defn(name="Hold")
class Hold:
    @workflow.run
    async def run(self, seconds: float) -> str:
        return await workflow.execute_activity(
            hold, seconds, start_to_close_timeout=timedelta(seconds=seconds + 60)
        )


@workflow.defn(name="Smoke")
class Smoke:
    @workflow.run
    async def run(self, _: object = None) -> str:
        return "ok"


ACTIVITIES = [hold]
