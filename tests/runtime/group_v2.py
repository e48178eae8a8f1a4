"""Build 2 of the release group's test app (tests/runtime/group_v1.py): the workflow and the
activity both changed, and each says so in what it returns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

BUILD = "v2"


@activity.defn(name="stamp")
async def stamp(_: str) -> str:
    return BUILD


@workflow.defn(name="GroupFlow")
class GroupFlow:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def finish(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, args: dict[str, Any]) -> str:
        if args.get("wait"):
            await workflow.wait_condition(lambda: self.go)
        ran = await workflow.execute_activity(
            "stamp",
            str(args.get("order", "")),
            task_queue=str(args["activities"]),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return f"workflow={BUILD} activity={ran}"


ACTIVITIES = [stamp]
