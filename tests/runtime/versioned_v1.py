"""Build 1 of a versioned test app: OrderFlow waits for a signal, then runs one activity."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="charge")
async def charge(order: str) -> str:
    return f"v1:{order}"


@workflow.defn(name="OrderFlow")
class OrderFlow:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def finish(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, order: str) -> str:
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_activity(
            charge, order, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="Smoke")
class Smoke:
    @workflow.run
    async def run(self, _: object = None) -> str:
        return "ok"


ACTIVITIES = [charge]
