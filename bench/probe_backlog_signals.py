"""How soon each Temporal signal shows a new backlog (issue 21: where Builtin's from-0 time goes).

One dev server. Per trial, four fresh queues get 10 workflows each, nobody polls them, and each
queue is watched by one signal only, so no signal warms another's server-side cache:

- `stats_0.2s`: `DescribeTaskQueue(report_stats)` every 0.2 s: shows the server's ~5 s stats
  cache (a change appears when the cache is next recomputed);
- `hint_0.2s`: `DescribeTaskQueue(include_task_queue_status)` every 0.2 s: the root partition's
  live `backlog_count_hint` (what the Builtin engine reads for a pool at 0);
- `count_0.5s`: visibility `CountWorkflowExecutions(TaskQueue AND ExecutionStatus='Running')`
  every 0.5 s;
- `stats_5.25s`: the stats every 5.25 s at a random phase (the Builtin poll above 0).

The figure per signal: seconds from just before the queue's first `start_workflow` to the send
of the first request whose answer was above 0 (nan: not within 20 s).

    python -m bench.probe_backlog_signals [--trials 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from testbed.temporal import TemporalDevServer

SIGNALS = {"stats_0.2s": 0.2, "hint_0.2s": 0.2, "count_0.5s": 0.5, "stats_5.25s": 5.25}


async def probe(trials: int) -> dict[str, list[float]]:
    server = TemporalDevServer(Path(tempfile.mkdtemp(prefix="probe-signals-")) / "temporal")
    server.start()
    try:
        client = await Client.connect(server.address, namespace=server.namespace)

        async def describe(queue: str, *, stats: bool) -> int:
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=server.namespace,
                    task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                    report_stats=stats,
                    include_task_queue_status=not stats,
                )
            )
            if stats:
                return int(resp.stats.approximate_backlog_count)
            return int(resp.task_queue_status.backlog_count_hint)

        async def count(queue: str) -> int:
            result = await client.count_workflows(
                f"TaskQueue='{queue}' AND ExecutionStatus='Running'"
            )
            return int(result.count)

        read: dict[str, Callable[[str], Awaitable[int]]] = {
            "stats_0.2s": lambda q: describe(q, stats=True),
            "hint_0.2s": lambda q: describe(q, stats=False),
            "count_0.5s": count,
            "stats_5.25s": lambda q: describe(q, stats=True),
        }
        out: dict[str, list[float]] = {k: [] for k in SIGNALS}
        for trial in range(trials):
            seen = await one_trial(client, read)
            for k in SIGNALS:
                out[k].append(round(seen.get(k, math.nan), 2))
            print(f"trial {trial}: " + ", ".join(f"{k} {out[k][-1]}" for k in SIGNALS), flush=True)
        return out
    finally:
        server.stop()


async def one_trial(
    client: Client, read: dict[str, Callable[[str], Awaitable[int]]]
) -> dict[str, float]:
    """Four fresh queues, one per signal, 10 workflows each: seconds until each signal saw them."""
    queues = {k: f"probe-{uuid.uuid4().hex[:8]}" for k in SIGNALS}
    for k, q in queues.items():  # the queue is known to the server before the backlog
        await read[k](q)
    started: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop, all_seen = asyncio.Event(), asyncio.Event()

    async def watch(k: str) -> None:
        period = SIGNALS[k]
        await asyncio.sleep(random.uniform(0, period))
        while not stop.is_set():
            sent = time.monotonic()
            try:
                n = await read[k](queues[k])
            except Exception as exc:  # a slow or refused read is reported, not fatal
                print(f"{k}: {type(exc).__name__}: {exc}", file=sys.stderr)
                n = 0
            if n > 0 and k in started and k not in seen:
                seen[k] = sent - started[k]
                if len(seen) == len(SIGNALS):
                    all_seen.set()
            await asyncio.sleep(max(0.0, period - (time.monotonic() - sent)))

    watchers = [asyncio.create_task(watch(k)) for k in SIGNALS]
    await asyncio.sleep(random.uniform(6, 11))  # a random phase of the stats cache
    for k, q in queues.items():
        started[k] = time.monotonic()
        for i in range(10):
            await client.start_workflow("Unpolled", id=f"{q}-{i}", task_queue=q)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), timeout=20)
    stop.set()
    await asyncio.gather(*watchers, return_exceptions=True)
    return seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=8)
    args = p.parse_args(argv)
    result = asyncio.run(probe(args.trials))
    for k, values in result.items():
        ordered = sorted(values, key=lambda v: math.inf if math.isnan(v) else v)
        print(f"{k:<12} median {ordered[(len(ordered) - 1) // 2]:>5} s  all {ordered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
