"""User code for the live alert test (tests/e2e/test_alerts_live.py), shipped to the pods of
the real node in a ConfigMap (stdlib + temporalio), imported as `e2eapp.alerts_app`.

Each workflow is one real cause of one or more of the chart's alerts: work that holds the only
activity slot, an activity that always fails and is retried every second, a workflow that takes
another path on replay, and a quick workflow to pile up as backlog. `Chat` calls the runtime's
own OpenAIChat activity (worker_runtime.llm.openai), for the dashboard's LLM panels.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

ONCE = RetryPolicy(maximum_attempts=1)
EVERY_SECOND = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(seconds=1),
)


@activity.defn
async def hold(seconds: float) -> None:
    """Keep the activity slot busy for `seconds`."""
    await asyncio.sleep(seconds)


@activity.defn
async def always_fails() -> None:
    raise RuntimeError("always fails (the live alert test's failing activity)")


@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class Hold:
    @workflow.run
    async def run(self, seconds: float) -> None:
        await workflow.execute_activity(
            hold, seconds, retry_policy=ONCE, start_to_close_timeout=timedelta(seconds=seconds + 60)
        )


@workflow.defn
class Flaky:
    """An activity that fails on every attempt, retried every second until terminated."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            always_fails, retry_policy=EVERY_SECOND, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class Quick:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            noop, retry_policy=ONCE, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class Nondeterministic:
    """Schedules an activity when run fresh and a timer when replayed: with no workflow cache
    every task replays, so every task after the first fails with a non-determinism error."""

    @workflow.run
    async def run(self) -> None:
        if workflow.unsafe.is_replaying():
            await workflow.sleep(0.1)
        else:
            await workflow.execute_activity(
                noop, retry_policy=ONCE, start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.execute_activity(
            noop, retry_policy=ONCE, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class Chat:
    """One chat completion through the runtime's OpenAIChat activity (registered by name)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            "OpenAIChat",
            {"messages": [{"role": "user", "content": "hello"}]},
            retry_policy=ONCE,
            start_to_close_timeout=timedelta(seconds=60),
        )
