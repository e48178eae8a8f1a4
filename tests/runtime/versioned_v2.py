"""Build 2 of the versioned test app: its `charge` answers "v2:", so a workflow's result names the
build that ran its activity. OrderFlow also starts with a timer build 1 never had; a build-1
workflow still waiting for its signal replays here without a non-determinism error (the SDK
accepts the new command), so the tests tell the builds apart by the result, not by a failure."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError


@activity.defn(name="charge")
async def charge(order: str) -> str:
    return f"v2:{order}"


@workflow.defn(name="OrderFlow")
class OrderFlow:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def finish(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, order: str) -> str:
        await asyncio.sleep(0.1)  # a timer build 1 never had
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_activity(
            charge, order, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="Smoke")
class Smoke:
    @workflow.run
    async def run(self, _: object = None) -> str:
        return "ok"


@workflow.defn(name="FailingSmoke")
class FailingSmoke:
    @workflow.run
    async def run(self, _: object = None) -> str:
        raise ApplicationError("build 2 is broken", non_retryable=True)


ACTIVITIES = [charge]
