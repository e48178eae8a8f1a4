"""User code the runtime hosts in tests, imported by path like a real pool's code."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def greet(name: str) -> str:
    """Fast async activity."""
    return f"Hello, {name}!"


@activity.defn
def shout(text: str) -> str:
    """Sync activity: the runtime must provide a thread pool for it."""
    return text.upper()


@activity.defn
async def slow_square(x: int, seconds: float) -> int:
    """Long enough to be in flight when SIGTERM arrives; heartbeats so cancel is delivered."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        activity.heartbeat()
        await asyncio.sleep(0.2)
    return x * x


@activity.defn
async def noop() -> None:
    """For throughput benchmarks."""


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )
        return await workflow.execute_activity(
            shout, greeting, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class SquareWorkflow:
    @workflow.run
    async def run(self, x: int, seconds: float) -> int:
        return await workflow.execute_activity(
            slow_square,
            args=[x, seconds],
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


def all_activities() -> list[object]:
    """A factory, as pools may list one path for many activities."""
    return [greet, shout, slow_square, noop]


NOT_AN_ACTIVITY = 42
