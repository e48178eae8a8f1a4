"""A workflow whose change is NOT replay-compatible, for the analysis of workflow tasks
(issue 19): `Renewal` charges first and then waits for its signal; `RenewalReordered`, the same
workflow type in a later build, starts with a timer. A `Renewal` history replayed by
`RenewalReordered` meets an ActivityTaskScheduled event where the code asks for a timer: a
non-determinism error, which fails the workflow task (retried, the workflow stays Running).

A change that only adds a command before the first one a history has (build 2 of
tests/runtime/versioned_v2.py against a build-1 workflow waiting for its signal) is replayed
without an error by temporalio 1.35: the history must hold a command the new code contradicts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from tests.runtime.versioned_v1 import charge


@workflow.defn(name="Renewal")
class Renewal:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def finish(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, order: str) -> str:
        paid: str = await workflow.execute_activity(
            charge, order, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self.go)
        return paid


@workflow.defn(name="Renewal")
class RenewalReordered:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def finish(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, order: str) -> str:
        await asyncio.sleep(1)  # a timer where the history has the charge: non-deterministic
        paid: str = await workflow.execute_activity(
            charge, order, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self.go)
        return paid
