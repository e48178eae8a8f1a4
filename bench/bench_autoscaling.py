"""Autoscaler benchmark: backlog appears -> desired replicas raised, through the real poller.

Against the real Temporal dev server (`temporal server start-dev`), each trial:
  1. starts the Builtin engine's poll loop (BacklogPoller + decide, at the period under test) on
     a fresh task queue nobody polls, with the pool at 0 replicas;
  2. lets it run for a random extra time so the backlog lands at a random phase of both our
     polling and the server's ~5 s task-queue stats cache (as in production, where the loop is
     always running);
  3. starts workflows on the queue and records when `decide` first asks for > 0 replicas.

Latency = that moment minus just before the first workflow start. Temporal calls per queue per
minute are counted by the poller. Several trials run concurrently on separate queues (each
queue has its own server-side cache), so the run takes minutes, not an hour.

KEDA's default path is printed beside it as a model (not measured here: KEDA is not run):
pollingInterval 30 s -> activation 0 -> 1 after U(0, 30) s (median 15 s); 1 -> N goes through
the HPA, which re-reads the metric every 15 s (median +7.5 s).

    python -m bench.bench_autoscaling [--trials 20] [--periods 0.25,1,5,5.25] [--parallel 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from workerpool_operator.api.v1alpha1 import AutoscalingSpec
from workerpool_operator.scaling.backlog import (
    COUNT_MAX_AGE_SECONDS,
    BacklogPoller,
    Connection,
    poll_period,
)
from workerpool_operator.scaling.decide import History, Observation, Policy, decide

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
WORKFLOWS_PER_TRIAL = 10
POLICY = Policy(min_replicas=0, max_replicas=10, target_backlog_per_replica=5)
GOAL_MEDIAN_SECONDS = 3.0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 20 samples p95 is the 19th)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def trial(server: TemporalDevServer, client: Client, period: float) -> dict[str, float]:
    """One backlog-appears -> scale-up measurement with the loop polling every `period` s."""
    queue = f"bench-{uuid.uuid4().hex[:10]}"
    conn = Connection(server.address, server.namespace)
    poller = BacklogPoller()
    history = History()
    detected = asyncio.get_running_loop().create_future()
    t0: float | None = None
    loop_start = time.monotonic()

    async def loop() -> None:
        nonlocal history
        current = 0
        while not detected.done():
            # at 0 replicas the engine asks for no running-workflow count (the guard needs it
            # only on the way down), so a scale-up round is the two DescribeTaskQueue calls
            reading = await poller.observe(conn, queue, max_age=period)
            d = decide(
                Observation(current, reading.backlog, reading.error),
                history,
                POLICY,
                time.monotonic(),
            )
            history = d.history
            if t0 is not None and d.replicas > current:
                detected.set_result(time.monotonic())
                return
            await asyncio.sleep(period)

    task = asyncio.create_task(loop())
    try:
        # random phase against our loop and the server's stats cache
        await asyncio.sleep(period + random.uniform(0, 10.0))
        t0 = time.monotonic()
        for i in range(WORKFLOWS_PER_TRIAL):
            await client.start_workflow("BenchNobodyPolls", id=f"{queue}-{i}", task_queue=queue)
        seen = await asyncio.wait_for(detected, timeout=120)
        elapsed = time.monotonic() - loop_start
        key = (conn.address, conn.namespace, queue)
        return {
            "latency_s": seen - t0,
            "calls_per_min": poller.calls[key] / elapsed * 60,
        }
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await poller.close()


async def run_period(
    server: TemporalDevServer, client: Client, period: float, trials: int, parallel: int
) -> dict[str, Any]:
    sem = asyncio.Semaphore(parallel)

    async def one() -> dict[str, float]:
        async with sem:
            return await trial(server, client, period)

    results = await asyncio.gather(*(one() for _ in range(trials)))
    lat = [r["latency_s"] for r in results]
    calls = [r["calls_per_min"] for r in results]
    return {
        "period_s": period,
        "trials": trials,
        "median_s": statistics.median(lat),
        "p95_s": pct(lat, 95),
        "min_s": min(lat),
        "max_s": max(lat),
        "calls_per_queue_per_min": statistics.median(calls),
        "latencies_s": [round(x, 3) for x in lat],
    }


def keda_model() -> dict[str, Any]:
    """KEDA defaults as a model: pollingInterval 30 s, HPA sync period 15 s."""
    polling, hpa_sync = 30.0, 15.0
    return {
        "engine": "KEDA default (model)",
        "activation_median_s": polling / 2,
        "activation_p95_s": 0.95 * polling,
        "scale_out_median_s": polling / 2 + hpa_sync / 2,
        "scale_out_p95_s": 0.95 * polling + 0.95 * hpa_sync,
        # one DescribeTaskQueueEnhanced per poll plus one per HPA metric read
        "calls_per_queue_per_min": 60 / polling + 60 / hpa_sync,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for period in args.periods:
        # A fresh server per period: each trial leaves workflows nobody polls, and the fast
        # periods' calls used to push later periods into the namespace's rate limit, so a
        # period's result depended on the ones measured before it.
        with tempfile.TemporaryDirectory(prefix="bench-autoscaling-") as tmp:
            server = TemporalDevServer(Path(tmp))
            server.start()
            try:
                client = await Client.connect(server.address)
                print(f"period {period:g}s: {args.trials} trials...", file=sys.stderr, flush=True)
                rows.append(await run_period(server, client, period, args.trials, args.parallel))
            finally:
                server.stop()
    return {
        "workflows_per_trial": WORKFLOWS_PER_TRIAL,
        "engine_default_period_s": poll_period(AutoscalingSpec().poll_interval_seconds),
        "zero_guard_count_calls_per_min": 60 / COUNT_MAX_AGE_SECONDS,
        "goal_median_s": GOAL_MEDIAN_SECONDS,
        "builtin": rows,
        "keda_default_model": keda_model(),
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        "\nbacklog appears -> desired replicas raised (Builtin: real poller + decide, dev server)"
    )
    header = (
        f"{'engine / poll period':<34}{'median':>9}{'p95':>9}{'min':>8}{'max':>8}"
        f"{'calls/q/min':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in result["builtin"]:
        default = " (default)" if r["period_s"] == result["engine_default_period_s"] else ""
        name = f"Builtin {r['period_s']:g}s{default}"
        print(
            f"{name:<34}{r['median_s']:>8.2f}s{r['p95_s']:>8.2f}s{r['min_s']:>7.2f}s"
            f"{r['max_s']:>7.2f}s{r['calls_per_queue_per_min']:>13.1f}"
        )
    k = result["keda_default_model"]
    print(
        f"{'KEDA default 0->1 (model)':<34}{k['activation_median_s']:>8.2f}s"
        f"{k['activation_p95_s']:>8.2f}s{'':>8}{'':>8}{k['calls_per_queue_per_min']:>13.1f}"
    )
    print(
        f"{'KEDA default 1->N (model, +HPA)':<34}{k['scale_out_median_s']:>8.2f}s"
        f"{k['scale_out_p95_s']:>8.2f}s"
    )
    print(
        f"calls: 2 DescribeTaskQueue per poll; +{result['zero_guard_count_calls_per_min']:g}/min "
        "CountWorkflowExecutions while replicas > 0 and minReplicas is 0 (zero guard)"
    )
    print(f"goal: median <= {result['goal_median_s']:g}s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument(
        "--periods",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5, 1.0, 2.0, 5.0, 5.25],
    )
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULTS / "autoscaling.json")
    args = p.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
