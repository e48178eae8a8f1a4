"""Build 1 of a release group's test app: a workflow pool runs GroupFlow, an activity pool on
another task queue runs `stamp`. The workflow reports which build ran it and which build ran its
activity, so a test sees a workflow of one build that ran an activity on another."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

BUILD = "v1"


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
