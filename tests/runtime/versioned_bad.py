"""A broken build of the versioned test app: OrderFlow fails at once (non-retryable), as a
build with a bad dependency or a bad config would. Analysis during a ramp must see it and roll
back (issue 19)."""

from __future__ import annotations

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError


@activity.defn(name="charge")
async def charge(order: str) -> str:
    return f"bad:{order}"


@workflow.defn(name="OrderFlow")
class OrderFlow:
    @workflow.signal
    def finish(self) -> None:
        pass

    @workflow.run
    async def run(self, order: str) -> str:
        raise ApplicationError(f"order {order}: this build is broken", non_retryable=True)


@workflow.defn(name="Smoke")
class Smoke:
    @workflow.run
    async def run(self, _: object = None) -> str:
        raise ApplicationError("this build is broken", non_retryable=True)


ACTIVITIES = [charge]


@workflow.defn(name="StuckFlow")
class StuckFlow:
    """Fails its workflow task (not the workflow) on every attempt, as a non-determinism error
    does: the workflow stays Running and its tasks keep failing."""

    @workflow.run
    async def run(self, order: str) -> str:
        raise RuntimeError(f"order {order}: workflow task bug")
