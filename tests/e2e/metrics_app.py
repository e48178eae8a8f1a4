"""Workflows and activities that make a worker runtime export every metric the chart's alerts
and dashboard query (tests/e2e/test_metric_names.py): successes, an activity failure, a
workflow-task failure and a real non-determinism error (a workflow that takes another path on
replay, run with no workflow cache so every task replays)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

TIMEOUT = timedelta(seconds=10)


@activity.defn
async def ok(x: int) -> int:
    return x


@activity.defn
async def boom(x: int) -> int:
    raise RuntimeError(f"boom {x}")


@workflow.defn
class WorkAndFail:
    """One activity that succeeds and one that fails for good."""

    @workflow.run
    async def run(self, x: int) -> int:
        await workflow.execute_activity(ok, x, start_to_close_timeout=TIMEOUT)
        with contextlib.suppress(ActivityError):  # the failure is the point
            await workflow.execute_activity(
                boom,
                x,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        return x


@workflow.defn
class Nondeterministic:
    """Schedules an activity when run fresh and a timer when replayed: a non-determinism error
    on the first replay."""

    @workflow.run
    async def run(self) -> None:
        if workflow.unsafe.is_replaying():
            await workflow.sleep(0.1)
        else:
            await workflow.execute_activity(ok, 1, start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity(ok, 2, start_to_close_timeout=TIMEOUT)


def activities() -> list[object]:
    return [ok, boom]
