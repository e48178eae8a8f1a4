"""A build of the versioned test app whose workflow code is build 1's (replay-compatible) but
whose activity fails on every attempt, as a build with a bad client or credentials would: the
activity is retried, so its workflows stay Running and never close as failed. Analysis during a
ramp must see it in the workers' heartbeats and roll back (issue 19)."""

from __future__ import annotations

from temporalio import activity

from tests.runtime.versioned_v1 import OrderFlow, Smoke


@activity.defn(name="charge")
async def charge(order: str) -> str:
    raise RuntimeError(f"order {order}: the payment client of this build is broken")


ACTIVITIES = [charge]
__all__ = ["ACTIVITIES", "OrderFlow", "Smoke"]
