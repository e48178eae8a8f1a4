"""Runtime throughput benchmark: activities/s via `python -m worker_runtime` vs a bare Worker.

Both run against one real Temporal dev server (`temporal server start-dev`), in one run.

Two worker subprocesses run side by side for the whole run, each polling its own task queue:
  - runtime: `python -m worker_runtime`, configured by TWP_* env exactly as a pool's pod is
    (testbed.runtime.runtime_env), so its metrics interceptor, Prometheus telemetry,
    readiness probe and JSON logging are all inside the measurement;
  - bare: this module with `--bare-worker`: `Client.connect` + `Worker`, nothing else, reading
    the same env (same interpreter, same user code, same slot settings, default SDK runtime).
Both host only bench.runtime_app:NoopLanes and bench.runtime_app:noop.

A round starts `--workflows` NoopLanes workflows on one side's queue, each running
`--activities` no-op activities over `--lanes` back-to-back chains (workflows x lanes activities
always outstanding, within the activity slots), and times from just before the first start to
the last result. The client only starts a few workflows and waits (its CPU is reported: about
0.01 cores); per activity the work is in the worker (activity task, then a workflow task to
schedule the next one) and in the server. The server's SQLite file goes to /dev/shm when there
is one: on a shared disk, the server's writes, not either worker, set the pace.

The worker and the server share the machine's cores, so on a small machine neither alone is the
limit and a worker overhead shows in activities/s only in part. The worker's own CPU time per
activity (from /proc, all threads) is therefore reported too, with the CPU used by the worker,
the server and the benchmark client per round: it shows the runtime's cost even where the
throughput ratio dilutes it.

One warm-up round per side runs first and is not counted. Measured rounds come in pairs whose
order alternates (runtime-bare, bare-runtime, ...), which cancels a linear drift (database
growth, caches, neighbours' load) between the sides. Reported: every round, the medians of each
side and the ratio of the median activities/s (goal: runtime/bare >= 0.95). The worker logs go
to bench-results/runtime-bench-{runtime,bare}.log; the benchmark exits 1 if a worker did not exit
0 on SIGTERM.

    python -m bench.bench_runtime [--rounds 8] [--workflows 8] [--activities 150] [--lanes 12]
        [--max-concurrent-activities 100] [--max-concurrent-workflow-tasks 100] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from bench.runtime_app import NoopLanes
from testbed.runtime import runtime_env
from testbed.temporal import TemporalDevServer, die_with_parent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
WORKFLOW_PATH = "bench.runtime_app:NoopLanes"
ACTIVITY_PATH = "bench.runtime_app:noop"
SIDES = ("runtime", "bare")
GOAL_RATIO = 0.95
SHM = Path("/dev/shm")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, all threads (Python and the SDK's Rust core)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all cores, to show how loaded the machine was in a round."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class WorkerProcess:
    """One worker subprocess; output goes to a file so a full pipe can never slow it down."""

    def __init__(self, side: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.side = side
        self.queue = env["TWP_TASK_QUEUE"]
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )  # fmt: skip

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.side} worker exited {self.proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (both drain and exit 0 on it), SIGKILL if that takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.proc.returncode


async def wait_polling(client: Client, worker: WorkerProcess, wait_s: float = 120) -> None:
    """Same readiness test for both sides: the server lists pollers of both task types."""
    deadline = time.monotonic() + wait_s
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while time.monotonic() < deadline:
        worker.check_alive()
        polling = True
        for kind in kinds:
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=worker.queue),
                    task_queue_type=kind,
                )
            )
            polling = polling and len(resp.pollers) > 0
        if polling:
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{worker.side} worker not polling after {wait_s:g}s; see {worker.log}")


async def one_round(
    client: Client, worker: WorkerProcess, server_pid: int, args: argparse.Namespace, name: str
) -> dict[str, Any]:
    """Start the fixed workload on one side's queue and time it to the last result."""
    worker.check_alive()
    pid = worker.proc.pid
    cpu0, srv0, (busy0, total0) = proc_cpu_seconds(pid), proc_cpu_seconds(server_pid), machine_cpu()
    own0 = time.process_time()
    t0 = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                client.execute_workflow(
                    NoopLanes.run,
                    args=[args.activities, args.lanes],
                    id=f"{worker.queue}-{name}-{i}",
                    task_queue=worker.queue,
                    execution_timeout=timedelta(seconds=args.round_timeout),
                )
                for i in range(args.workflows)
            )
        ),
        args.round_timeout,
    )
    seconds = time.perf_counter() - t0
    own1 = time.process_time()
    cpu1, srv1, (busy1, total1) = proc_cpu_seconds(pid), proc_cpu_seconds(server_pid), machine_cpu()
    done = sum(results)
    if done != args.workflows * args.activities:
        raise RuntimeError(f"{done} activities ran, expected {args.workflows * args.activities}")
    return {
        "round": name,
        "side": worker.side,
        "activities": done,
        "seconds": round(seconds, 3),
        "activities_per_s": round(done / seconds, 1),
        "worker_cpu_ms_per_activity": round((cpu1 - cpu0) * 1000 / done, 3),
        "worker_cores": round((cpu1 - cpu0) / seconds, 2),
        "server_cores": round((srv1 - srv0) / seconds, 2),
        "client_cores": round((own1 - own0) / seconds, 2),
        "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 3),
    }


def round_order(pairs: int) -> list[str]:
    """runtime,bare then bare,runtime, ...: alternating pairs cancel a linear drift."""
    order: list[str] = []
    for i in range(pairs):
        order.extend(SIDES if i % 2 == 0 else reversed(SIDES))
    return order


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    by_side = {s: [r for r in rounds if r["side"] == s] for s in SIDES}
    keys = [k for k in rounds[0] if k not in ("round", "side", "activities", "seconds")]
    med = {
        s: {k: round(statistics.median(r[k] for r in rs), 3) for k in keys}
        for s, rs in by_side.items()
    }
    ratio = med["runtime"]["activities_per_s"] / med["bare"]["activities_per_s"]
    # Each pair's own ratio: the two rounds of a pair ran back to back, under the same load.
    pair_ratios = []
    for a, b in zip(rounds[::2], rounds[1::2], strict=True):
        rt, bare = (a, b) if a["side"] == "runtime" else (b, a)
        pair_ratios.append(round(rt["activities_per_s"] / bare["activities_per_s"], 3))
    return {
        "median": med,
        "ratio_runtime_over_bare": round(ratio, 3),
        "pair_ratios": pair_ratios,
        "median_pair_ratio": round(statistics.median(pair_ratios), 3),
        "cpu_ratio_runtime_over_bare": round(
            med["runtime"]["worker_cpu_ms_per_activity"]
            / med["bare"]["worker_cpu_ms_per_activity"],
            3,
        ),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    slots = {
        "TWP_MAX_CONCURRENT_ACTIVITIES": str(args.max_concurrent_activities),
        "TWP_MAX_CONCURRENT_WORKFLOW_TASKS": str(args.max_concurrent_workflow_tasks),
    }
    argv = {
        "runtime": [sys.executable, "-m", "worker_runtime"],
        "bare": [sys.executable, "-m", "bench.bench_runtime", "--bare-worker"],
    }
    workers: dict[str, WorkerProcess] = {}
    exit_codes: dict[str, int] = {}
    rounds: list[dict[str, Any]] = []
    warmup: list[dict[str, Any]] = []
    # A dedicated SDK runtime for the client, dropped before exit (see the end of this file).
    runtime = Runtime(telemetry=TelemetryConfig())
    client: Client | None = None
    with tempfile.TemporaryDirectory(prefix="bench-runtime-", dir=args.server_dir) as tmp:
        server = TemporalDevServer(Path(tmp))
        try:
            print("starting the Temporal dev server...", file=sys.stderr, flush=True)
            server.start()
            client = await Client.connect(
                server.address, namespace=server.namespace, runtime=runtime
            )
            # The dev server is one process; its CPU shows which side of the wire is the limit.
            assert server.pid is not None
            server_pid = server.pid
            run_id = uuid.uuid4().hex[:6]
            for side in SIDES:
                env = runtime_env(
                    server, f"bench-{side}-{run_id}", WORKFLOW_PATH, ACTIVITY_PATH, **slots
                )
                log = RESULTS / f"runtime-bench-{side}.log"
                workers[side] = WorkerProcess(side, argv[side], env, log)
            for w in workers.values():
                await wait_polling(client, w)
            for side in SIDES:
                print(f"warm-up: {side}...", file=sys.stderr, flush=True)
                warmup.append(await one_round(client, workers[side], server_pid, args, "warmup"))
            for i, side in enumerate(round_order(args.rounds)):
                r = await one_round(client, workers[side], server_pid, args, f"r{i + 1}")
                print(
                    f"round {i + 1}: {side:<8}{r['activities_per_s']:>8.1f} act/s",
                    file=sys.stderr,
                    flush=True,
                )
                rounds.append(r)
            for side, w in workers.items():
                exit_codes[side] = w.stop()
        finally:
            for side, w in workers.items():
                exit_codes.setdefault(side, w.stop(timeout=10))
            # Drop the SDK objects while the interpreter is fully alive.
            del client, runtime
            gc.collect()
            server.stop()
    return {
        "workload": {
            "workflows_per_round": args.workflows,
            "activities_per_workflow": args.activities,
            "lanes_per_workflow": args.lanes,
            "activities_outstanding": args.workflows * args.lanes,
            "max_concurrent_activities": args.max_concurrent_activities,
            "max_concurrent_workflow_tasks": args.max_concurrent_workflow_tasks,
            "rounds_per_side": args.rounds,
            "server_db_parent": str(args.server_dir or tempfile.gettempdir()),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "warmup": warmup,
        "rounds": rounds,
        **summarize(rounds),
        "worker_exit_codes": exit_codes,
    }


def print_table(result: dict[str, Any]) -> None:
    w = result["workload"]
    print(
        f"\nno-op activities/s: python -m worker_runtime vs bare temporalio Worker "
        f"(dev server, {w['cpu_count']} cores)\n"
        f"{w['workflows_per_round']} workflows x {w['activities_per_workflow']} activities per "
        f"round, {w['activities_outstanding']} outstanding, "
        f"max_concurrent_activities={w['max_concurrent_activities']}"
    )
    header = (
        f"{'round':<8}{'worker':<10}{'act/s':>9}{'seconds':>9}{'CPU ms/act':>12}"
        f"{'cores: worker':>15}{'server':>8}{'client':>8}{'machine busy':>14}"
    )
    print(header)
    print("-" * len(header))

    def row(name: str, side: str, r: dict[str, Any], seconds: str) -> None:
        print(
            f"{name:<8}{side:<10}{r['activities_per_s']:>9.1f}{seconds:>9}"
            f"{r['worker_cpu_ms_per_activity']:>12.3f}{r['worker_cores']:>15.2f}"
            f"{r['server_cores']:>8.2f}{r['client_cores']:>8.2f}"
            f"{r['machine_busy']:>13.0%}"
        )

    for r in result["rounds"]:
        row(r["round"], r["side"], r, f"{r['seconds']:.2f}")
    print("-" * len(header))
    for side in SIDES:
        row("median", side, result["median"][side], "")
    print(
        f"ratio runtime/bare of median act/s: {result['ratio_runtime_over_bare']:.3f} "
        f"(goal >= {result['goal_ratio']:g}: {'met' if result['meets_goal'] else 'NOT met'})"
    )
    print(f"median of per-pair ratios: {result['median_pair_ratio']:.3f}")
    print(
        "worker CPU per activity runtime/bare (medians): "
        f"{result['cpu_ratio_runtime_over_bare']:.3f}"
    )
    codes = result["worker_exit_codes"]
    print(f"worker exit codes after SIGTERM: runtime {codes['runtime']}, bare {codes['bare']}")


async def bare_worker() -> int:
    """What a user writes without the runtime: connect, Worker with the same slots, run."""
    from temporalio.worker import Worker

    from bench.runtime_app import noop

    env = os.environ
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = await Client.connect(
        env["TWP_TEMPORAL_ADDRESS"], namespace=env.get("TWP_TEMPORAL_NAMESPACE", "default")
    )
    worker = Worker(
        client,
        task_queue=env["TWP_TASK_QUEUE"],
        workflows=[NoopLanes],
        activities=[noop],
        max_concurrent_activities=int(env["TWP_MAX_CONCURRENT_ACTIVITIES"]),
        max_concurrent_workflow_tasks=int(env["TWP_MAX_CONCURRENT_WORKFLOW_TASKS"]),
    )
    async with worker:
        await stop.wait()
    del worker, client
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=8, help="measured rounds per side")
    p.add_argument("--workflows", type=int, default=8, help="workflows per round")
    p.add_argument("--activities", type=int, default=150, help="no-op activities per workflow")
    p.add_argument("--lanes", type=int, default=12, help="activities in flight per workflow")
    # the SDK's defaults, passed to both sides explicitly
    p.add_argument("--max-concurrent-activities", type=int, default=100)
    p.add_argument("--max-concurrent-workflow-tasks", type=int, default=100)
    p.add_argument("--round-timeout", type=float, default=300, help="seconds")
    p.add_argument(
        "--server-dir",
        type=Path,
        default=SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else None,
        help="parent of the dev server's database folder (default: /dev/shm if writable)",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "runtime.json")
    p.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.workflows < 1 or args.activities < 1 or args.lanes < 1:
        p.error("--rounds, --workflows, --activities and --lanes must be >= 1")
    if args.bare_worker:
        return asyncio.run(bare_worker())
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(main_async(args))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(c == 0 for c in result["worker_exit_codes"].values()) else 1


if __name__ == "__main__":
    code = main()
    # As worker_runtime.__main__ does: collect the SDK objects while the interpreter is alive,
    # then skip finalization, where a temporalio runtime can still abort the process (exit 134).
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
