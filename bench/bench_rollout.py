"""Versioned rollouts against their floor, under continuous load: the operator process, the real
Temporal dev server (versioning settings lowered, testbed.temporal.VERSIONING_DYNAMIC_CONFIG) and
one real runtime process per build Deployment (testbed/builds.py; kwok pods run no code).

Two pools of the same spec on the same queue kind, each on its own task queue:

- `versioned`: spec.versioning AllAtOnce; each rollout changes the workflow code (build 1 and 2
  alternate, deliberately replay-incompatible) and an env value, so every rollout is a new build.
  Clock: from the spec change to Temporal's current version being the new build.
- `floor`: the same pool without spec.versioning and the same change; clock: from the spec
  change to the new Deployment being rolled out (kwok) and the new template's worker ready
  (`/readyz`, which the runtime answers once its worker polls): what a plain rolling update
  takes before new code serves.

During each versioned rollout a workflow pinned to the old build waits for a signal; once the new
build is current it is signalled, and `drain_to_scaledown` runs from its completion to the old
build's Deployment at 0 replicas (the exact visibility count, not Temporal's drainage status,
which lags by minutes). A load loop starts short workflows on the versioned pool's queue all
along (`--rate` per second); `lost_tasks` counts those that did not complete, and
`nondeterminism_errors` the workflow-task failures in every workflow's history.
`temporal_calls_per_pool_per_min`: the operator's `workerpool_temporal_calls_total` over a window
once the last old build is gone; `temporal_calls_per_rollout_p50`: the same counter from the spec
change to the new build current (the floor pool makes no Temporal calls), and
`temporal_calls_per_pool_per_min_rollout` its sum over the summed rollout time.

Then a bad build (every workflow fails) ramps at 50 % under the same load with
spec.versioning.analysis on: `bad_build_detect_s` runs from its first failed workflow closing to
its ramp cleared in Temporal, and `bad_build_failed_workflows` counts what it failed until then.

Then a build whose activity fails on every attempt (`bad_activity`, analysis rule
maxActivityFailurePercent, read from the workers' heartbeats) ramps at 50 % on a pool of its own
while OrderFlow workflows start (and are signalled) at `--rate` per second:
`bad_activity_detect_s` runs from its first failed activity attempt (the ActivityTaskScheduled
time of the first workflow whose activity needed a retry: its first attempt fails at once) to its
ramp cleared in Temporal, both server timestamps (goal <= 20 s: twice the runtime's 10 s worker
heartbeat, which is how often the counts it is judged on move); `bad_activity_workflows` counts
the workflows
whose activity failed on it, and `bad_activity_lost` those of them that did not complete (their
retries go to the current build after the rollback).

Last, per-version Builtin scaling during a ramp (`ramp_scale`): a third pool, Builtin-autoscaled
(5 tasks per replica, at most 20), build 2 ramping at RAMP_SCALE_PERCENT % of new work while
build 1 stays current. Its workers are then stopped so the backlog is what the bench starts:
workflows in steps (RAMP_SCALE_STEPS, each held RAMP_SCALE_HOLD_S), every one a workflow task
waiting in the backlog of the version Temporal routed it to. Sampled every second from the first
step: the backlog-derived total N = min(20, ceil(started / 5)), each version's share of it
(N x ramp % for build 2, the rest for build 1) against its Deployment's replicas.
`ramp_scale_error` is the mean absolute difference over all samples and both versions (so the
scaler's lag after each step counts; goal <= 1 replica), `ramp_scale_error_max` the largest;
`ramp_scale_temporal_calls_per_min_by_method` the operator's Temporal calls meanwhile (all pools
of the operator: in `--ramp-scale-only` that pool alone).

    python -m bench.bench_rollout [--rollouts 10] [--rate 2] [--window 60] [--ramp-scale-only]
                                  [--bad-activity-only]

Writes bench-results/rollout.json; medians (p50) over the rollouts. `--ramp-scale-only` and
`--bad-activity-only` run only that part and write its keys into the existing file beside the
others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from testbed.builds import BuildWorkers
from testbed.cluster import LocalCluster, kubectl, wait_established
from testbed.operator import OperatorProcess, metric
from testbed.temporal import VERSIONING_DYNAMIC_CONFIG, TemporalDevServer
from workerpool_operator.versioning.execute import Backoff, observe
from workerpool_operator.versioning.model import DeploymentState

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"
CRDS = Path(__file__).resolve().parents[1] / "crds"
APPS = ("tests.runtime.versioned_v1", "tests.runtime.versioned_v2")
BAD_APP = "tests.runtime.versioned_bad"  # every workflow fails: what analysis must catch
# The bad build ramps at this share, judged after its first closed workflow (maxFailedPercent
# 20), while the load runs; the step's pause is long, so only analysis ends the ramp.
BAD_RAMP = 50
BAD_ACTIVITY_APP = "tests.runtime.versioned_bad_activity"  # its activity fails on every attempt
# The bad-activity build is judged once its workers processed this many activity tasks.
BAD_ACTIVITY_RULE = {"maxActivityFailurePercent": 50, "minTasks": 4}
WAIT_S = 180.0
RAMP_SCALE_PERCENT = 30
RAMP_SCALE_STEPS = (10, 25, 45, 70)  # workflows started by the end of each step
RAMP_SCALE_HOLD_S = 20.0
RAMP_SCALE_TARGET = 5
RAMP_SCALE_MAX = 20


def pool(
    name: str, queue: str, server: TemporalDevServer, i: int, versioned: bool, *, bad: bool = False
) -> dict[str, Any]:
    app = BAD_APP if bad else APPS[i % 2]
    spec: dict[str, Any] = {
        "connection": {"address": server.address, "namespace": server.namespace},
        "taskQueue": queue,
        "replicas": 1,
        "workflows": [f"{app}:OrderFlow", f"{app}:Smoke"],
        "activities": [f"{app}:ACTIVITIES"],
        "env": [{"name": "RELEASE", "value": str(i)}],
    }
    if versioned:
        spec["versioning"] = {
            "defaultBehavior": "Pinned",
            "rollbackWindowSeconds": 0,
            "sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 5},
            "retention": 1,
        }
        if bad:
            spec["versioning"] |= {
                "strategy": "Progressive",
                "steps": [{"rampPercentage": BAD_RAMP, "pauseSeconds": 3600}],
                "analysis": {"maxFailedPercent": 20, "minClosedWorkflows": 1},
            }
    return {"apiVersion": "workerpools.io/v1alpha1", "kind": "TemporalWorkerPool",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def bad_activity_pool(
    name: str, queue: str, server: TemporalDevServer, bad: bool
) -> dict[str, Any]:
    """The bad_activity pool: build 1, or (`bad`) the build whose activity always fails, ramped by
    one long Progressive step under maxActivityFailurePercent (the first build, with no
    unversioned worker, becomes current at once)."""
    body = pool(name, queue, server, 0, True)
    if bad:
        body["spec"]["workflows"] = [f"{BAD_ACTIVITY_APP}:OrderFlow", f"{BAD_ACTIVITY_APP}:Smoke"]
        body["spec"]["activities"] = [f"{BAD_ACTIVITY_APP}:ACTIVITIES"]
    body["spec"]["versioning"] |= {
        "defaultBehavior": "AutoUpgrade",
        "strategy": "Progressive",
        "steps": [{"rampPercentage": BAD_RAMP, "pauseSeconds": 3600}],
        "analysis": BAD_ACTIVITY_RULE,
    }
    return body


def ramp_scale_pool(name: str, queue: str, server: TemporalDevServer, i: int) -> dict[str, Any]:
    """The ramp_scale pool: Builtin-autoscaled, build `i` (an env value) ramped by one long
    Progressive step."""
    body = pool(name, queue, server, i, True)
    spec = body["spec"]
    spec.pop("replicas")
    spec["autoscaling"] = {
        "engine": "Builtin",
        "minReplicas": 0,
        "maxReplicas": RAMP_SCALE_MAX,
        "targetBacklogPerReplica": RAMP_SCALE_TARGET,
        "pollIntervalSeconds": 5,
        "scaleDownStabilizationSeconds": 0,
    }
    spec["versioning"] |= {
        "strategy": "Progressive",
        "steps": [{"rampPercentage": RAMP_SCALE_PERCENT, "pauseSeconds": 3600}],
    }
    return body


async def ramp_scale(kubeconfig: str, ns: str, server: TemporalDevServer, tmp: Path,
                     client: Client, op: OperatorProcess) -> dict[str, Any]:  # fmt: skip
    """Per-version replicas against each version's share of the backlog-derived total during a
    ramp (module docstring)."""
    name, queue = "ramped", f"ro-r-{uuid.uuid4().hex[:6]}"
    workers = BuildWorkers(kubeconfig, ns, name, server, tmp, interval=0.1)

    def status() -> dict[str, Any]:
        return dict((get(kubeconfig, "temporalworkerpool", name, ns) or {}).get("status") or {})

    try:
        apply(kubeconfig, ns, ramp_scale_pool(name, queue, server, 0))
        v1 = await until(lambda: (s := status()).get("currentBuildId") == s.get("targetBuildId")
                         and s.get("currentBuildId"), "ramp_scale: build 1 current")  # fmt: skip
        apply(kubeconfig, ns, ramp_scale_pool(name, queue, server, 1))
        st = await until(lambda: (s := status()).get("rampPercentage") == RAMP_SCALE_PERCENT
                         and s.get("currentBuildId") == v1 and s, "build 2 ramping")  # fmt: skip
        v2 = str(st["targetBuildId"])
    finally:
        workers.close()  # from here the backlog is what the bench starts
    deployments = {
        b: str(v["deployment"]) for v in status().get("versions") or [] if (b := v["buildId"])
    }
    share = {v1: 1 - RAMP_SCALE_PERCENT / 100, v2: RAMP_SCALE_PERCENT / 100}

    def replicas_of(build: str) -> int:
        dep = get(kubeconfig, "deployment", deployments[build], ns) or {}
        return int((dep.get("spec") or {}).get("replicas") or 0)

    errors: list[float] = []
    started = 0
    calls_before, t0 = by_method(op.metrics()), time.monotonic()
    for level in RAMP_SCALE_STEPS:
        while started < level:
            await client.start_workflow("Smoke", id=f"{queue}-{started}", task_queue=queue)
            started += 1
        end = time.monotonic() + RAMP_SCALE_HOLD_S
        while time.monotonic() < end:
            total = min(RAMP_SCALE_MAX, -(-started // RAMP_SCALE_TARGET))
            for build in (v1, v2):
                errors.append(abs(replicas_of(build) - total * share[build]))
            await asyncio.sleep(1.0)
    minutes = (time.monotonic() - t0) / 60
    calls = {k: round((v - calls_before.get(k, 0.0)) / minutes, 1)
             for k, v in sorted(by_method(op.metrics()).items())}  # fmt: skip
    return {
        "ramp_scale_error": round(statistics.mean(errors), 2) if errors else None,
        "ramp_scale_temporal_calls_per_min_by_method": {k: v for k, v in calls.items() if v},
        "ramp_scale_error_max": round(max(errors), 2) if errors else None,
        "ramp_scale_samples": len(errors),
        "ramp_scale_ramp_percent": RAMP_SCALE_PERCENT,
        "ramp_scale_steps": list(RAMP_SCALE_STEPS),
        "ramp_scale_final_replicas": {b: replicas_of(b) for b in share},
    }


async def bad_activity(
    kubeconfig: str, ns: str, server: TemporalDevServer, tmp: Path, client: Client, rate: float
) -> dict[str, Any]:
    """The bad-activity build ramped under load until analysis rolls it back (module
    docstring)."""
    name, queue = "activity", f"ro-a-{uuid.uuid4().hex[:6]}"
    deployment = f"{ns}/{name}"
    workers = BuildWorkers(kubeconfig, ns, name, server, tmp, interval=0.1)
    handles: list[WorkflowHandle[Any, Any]] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            handle = await client.start_workflow(
                "OrderFlow", f"a{len(handles)}", id=f"{queue}-{len(handles)}", task_queue=queue
            )
            await handle.signal("finish")
            handles.append(handle)
            await asyncio.sleep(1 / rate)

    async def routing() -> DeploymentState | None:
        try:
            return await observe(client, deployment)
        except Backoff:  # Temporal's read limit: ask again
            return None

    try:
        apply(kubeconfig, ns, bad_activity_pool(name, queue, server, False))

        def current() -> Any:
            return (
                (get(kubeconfig, "temporalworkerpool", name, ns) or {}).get("status") or {}
            ).get("currentBuildId")

        await until(current, "bad_activity: build 1 current")
        loader = asyncio.create_task(load())
        try:
            apply(kubeconfig, ns, bad_activity_pool(name, queue, server, True))
            await until(lambda: _ramping(routing), "the bad-activity build ramping", interval=0.2)
            state = await until(lambda: _cleared(routing), "the bad-activity build rolled back",
                                interval=0.2)  # fmt: skip
        finally:
            stop.set()
            await loader
        outcomes = await asyncio.gather(*(_activity_outcome(h) for h in handles))
    finally:
        workers.close()
    failed = [(at, ok) for at, ok in outcomes if at is not None]
    rolled_back = state.routing_changed_at
    first = min((at for at, _ in failed), default=None)
    return {
        "bad_activity_detect_s": (
            round((rolled_back - first).total_seconds(), 2) if first and rolled_back else None
        ),
        "bad_activity_workflows": len(failed),
        "bad_activity_lost": sum(1 for _, ok in outcomes if not ok),
        "bad_activity_load_per_s": rate,
        "bad_activity_rule": BAD_ACTIVITY_RULE,
        "bad_activity_load_workflows": len(handles),
    }


async def _ramping(routing: Any) -> bool:
    state = await routing()
    return state is not None and state.ramping_build is not None


async def _cleared(routing: Any) -> DeploymentState | None:
    state = await routing()
    return state if state is not None and state.ramping_build is None else None


async def _activity_outcome(handle: WorkflowHandle[Any, Any]) -> tuple[Any, bool]:
    """(when its activity was scheduled if its first attempt failed, else None; completed)."""
    try:
        await asyncio.wait_for(handle.result(), 180)
        completed = True
    except Exception:  # failed or timed out: lost
        completed = False
    scheduled, retried = None, False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and scheduled is None:
            scheduled = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            retried = retried or event.activity_task_started_event_attributes.attempt > 1
    return (scheduled if retried else None), completed


# One part run on a bed and a dev server of its own: (kubeconfig, ns, server, tmp, client, op).
Part = Callable[
    [str, str, TemporalDevServer, Path, Client, OperatorProcess], Awaitable[dict[str, Any]]
]


async def run_alone(name: str, part: Part) -> dict[str, Any]:
    """Only one part (`name`: its key prefix), on a bed and a dev server of its own, with the
    operator scoped to the part's namespace; its tracebacks as `<name>_operator_tracebacks`."""
    cluster = LocalCluster()
    kubeconfig = str(cluster.acquire())
    slug = name.replace("_", "-")
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{slug}-"))
    server = TemporalDevServer(tmp / "temporal", dynamic_config=VERSIONING_DYNAMIC_CONFIG)
    server.start()
    ns = f"bench-{slug}-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", ns)
    for path in sorted(CRDS.glob("workerpools.io_*.yaml")):
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    wait_established(kubeconfig, "temporalworkerpools.workerpools.io")
    op = OperatorProcess(kubeconfig, f"bench-{slug}", "-n", ns, log_dir=tmp,
                         env={"POD_NAMESPACE": ns})  # fmt: skip
    try:
        client = await Client.connect(server.address, namespace=server.namespace)
        return {**await part(kubeconfig, ns, server, tmp, client, op),
                f"{name}_operator_tracebacks": op.tracebacks()}  # fmt: skip
    finally:
        op.stop()
        kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false", check=False)
        server.stop()
        cluster.release()


async def run_bad_activity(rate: float) -> dict[str, Any]:
    """Only the bad_activity part, on a bed and a dev server of its own."""

    async def part(kubeconfig: str, ns: str, server: TemporalDevServer, tmp: Path,
                   client: Client, op: OperatorProcess) -> dict[str, Any]:  # fmt: skip
        return await bad_activity(kubeconfig, ns, server, tmp, client, rate)

    return await run_alone("bad_activity", part)


async def run_ramp_scale() -> dict[str, Any]:
    """Only the ramp_scale part, on a bed and a dev server of its own."""
    return await run_alone("ramp_scale", ramp_scale)


def apply(kubeconfig: str, ns: str, body: dict[str, Any]) -> None:
    kubectl(kubeconfig, "apply", "-n", ns, "--server-side", "-f", "-", input=json.dumps(body))


def get(kubeconfig: str, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    out = kubectl(kubeconfig, "get", kind, name, "-n", ns, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


async def until(probe: Any, what: str, wait_s: float = WAIT_S, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {wait_s}s: {what}")


class Load:
    """Short workflows started all along on one queue; each must complete."""

    def __init__(self, client: Client, queue: str, rate: float) -> None:
        self.client, self.queue, self.rate = client, queue, rate
        self.handles: list[WorkflowHandle[Any, Any]] = []
        self.started = 0
        self.failed_starts = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            self.started += 1
            try:
                self.handles.append(
                    await self.client.start_workflow(
                        "Smoke", id=f"{self.queue}-load-{self.started}", task_queue=self.queue
                    )
                )
            except Exception:  # a start the server refused is a lost task too
                self.failed_starts += 1
            await asyncio.sleep(1 / self.rate)

    def stop(self) -> None:
        self._stop.set()


async def outcome(handle: WorkflowHandle[Any, Any]) -> tuple[bool, int]:
    """(completed, workflow-task failures in its history)."""
    try:
        await asyncio.wait_for(handle.result(), 120)
        completed = True
    except Exception:  # failed or timed out: not completed
        completed = False
    failures = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failures += 1
    return completed, failures


def by_method(text: str) -> dict[str, float]:
    """workerpool_temporal_calls_total per RPC (both results)."""
    out: dict[str, float] = {}
    for m in re.finditer(
        r'^workerpool_temporal_calls_total\{[^}]*method="([^"]+)"[^}]*\} ([0-9.e+-]+)$',
        text,
        re.MULTILINE,
    ):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def p50(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def ratio(xs: list[float], floor: list[float]) -> float | None:
    if not xs or not floor:
        return None
    return round(statistics.median(xs) / statistics.median(floor), 2)


async def run(rollouts: int, rate: float, window: float) -> dict[str, Any]:
    cluster = LocalCluster()
    kubeconfig = str(cluster.acquire())
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    server = TemporalDevServer(tmp / "temporal", dynamic_config=VERSIONING_DYNAMIC_CONFIG)
    server.start()
    tag = uuid.uuid4().hex[:6]
    ns = f"bench-rollout-{tag}"
    kubectl(kubeconfig, "create", "namespace", ns)
    for path in sorted(CRDS.glob("workerpools.io_*.yaml")):
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    wait_established(kubeconfig, "temporalworkerpools.workerpools.io")
    op = OperatorProcess(kubeconfig, "bench-rollout", "-n", ns, log_dir=tmp,
                         env={"POD_NAMESPACE": ns})  # fmt: skip
    vq, fq = f"ro-v-{tag}", f"ro-f-{tag}"
    versioned = BuildWorkers(kubeconfig, ns, "versioned", server, tmp, interval=0.1)
    floor = BuildWorkers(kubeconfig, ns, "floor", server, tmp, interval=0.1, versioned=False)
    client = await Client.connect(server.address, namespace=server.namespace)
    result: dict[str, Any] = {}
    rollout_s: list[float] = []
    floor_s: list[float] = []
    drain_s: list[float] = []
    rollout_calls: list[float] = []
    pinned: list[WorkflowHandle[Any, Any]] = []
    load = Load(client, vq, rate)
    try:

        def current() -> str | None:
            st = (get(kubeconfig, "temporalworkerpool", "versioned", ns) or {}).get("status") or {}
            if st.get("currentBuildId") and st["currentBuildId"] == st.get("targetBuildId"):
                return str(st["currentBuildId"])
            return None

        apply(kubeconfig, ns, pool("versioned", vq, server, 0, True))
        apply(kubeconfig, ns, pool("floor", fq, server, 0, False))
        build = await until(current, "the first build current")
        await until(lambda: floor.ready_at, "the floor's first worker ready")
        loader = asyncio.create_task(load.run())
        for i in range(1, rollouts + 1):
            print(f"rollout {i}/{rollouts}", file=sys.stderr, flush=True)
            old = build
            held = await client.start_workflow("OrderFlow", f"p{i}", id=f"{vq}-pinned-{i}",
                                               task_queue=vq)  # fmt: skip
            pinned.append(held)
            # Floor: the same change on the unversioned pool.
            generation = (get(kubeconfig, "deployment", "floor", ns) or {})["metadata"][
                "generation"
            ]
            t0 = time.monotonic()
            apply(kubeconfig, ns, pool("floor", fq, server, i, False))

            def rolled(gen: int = generation) -> bool:
                dep = get(kubeconfig, "deployment", "floor", ns) or {}
                st, meta = dep.get("status") or {}, dep.get("metadata") or {}
                return bool(
                    meta.get("generation", 0) > gen
                    and st.get("observedGeneration") == meta.get("generation")
                    and st.get("updatedReplicas") == st.get("availableReplicas") == 1
                    and f"g{meta['generation']}" in floor.ready_at
                )

            await until(rolled, f"floor rollout {i}")
            floor_s.append(time.monotonic() - t0)
            # Versioned: spec change -> the new build current.
            calls_before = metric(op.metrics(), "workerpool_temporal_calls_total")
            t0 = time.monotonic()
            apply(kubeconfig, ns, pool("versioned", vq, server, i, True))
            build = await until(lambda o=old: (b := current()) and b != o and b, f"rollout {i}")
            rollout_s.append(time.monotonic() - t0)
            calls_after = metric(op.metrics(), "workerpool_temporal_calls_total")
            rollout_calls.append(calls_after - calls_before)
            # The old build's pinned workflow ends; until the old build is at 0 replicas.
            await held.signal("finish")
            await held.result()
            done_at = time.monotonic()
            await until(lambda o=old: o in versioned.stopped, f"build {old} scaled to 0")
            drain_s.append(versioned.stopped[old] - done_at)
        load.stop()
        await loader
        # Steady state: the last old build gone (its Deployment and its Temporal version), then
        # the operator's Temporal calls per minute.
        await until(lambda: len(versioned.builds()) == 1, "old builds deleted", wait_s=120)

        def one_version() -> bool:
            st = (get(kubeconfig, "temporalworkerpool", "versioned", ns) or {}).get("status") or {}
            return len(st.get("versions") or []) == 1

        await until(one_version, "old Temporal versions deleted", wait_s=120, interval=0.5)
        before = by_method(op.metrics())
        await asyncio.sleep(window)
        steady = {k: v - before.get(k, 0.0) for k, v in by_method(op.metrics()).items()}
        calls = sum(steady.values())
        outcomes = await asyncio.gather(*(outcome(h) for h in [*load.handles, *pinned]))
        lost = sum(1 for ok, _ in outcomes if not ok) + load.failed_starts
        bad = await bad_build(kubeconfig, ns, server, client, vq, rate)
        bad_activities = await bad_activity(kubeconfig, ns, server, tmp, client, rate)
        scaled = await ramp_scale(kubeconfig, ns, server, tmp, client, op)
        result = {
            "rollouts": len(rollout_s),
            "rollout_allatonce_p50_s": p50(rollout_s),
            "rollout_floor_p50_s": p50(floor_s),
            "rollout_ratio": ratio(rollout_s, floor_s),
            "drain_to_scaledown_p50_s": p50(drain_s),
            "drain_to_scaledown_max_s": round(max(drain_s), 2) if drain_s else None,
            "load_workflows": load.started,
            "lost_tasks": lost,
            "nondeterminism_errors": sum(f for _, f in outcomes),
            "temporal_calls_per_pool_per_min": round(calls / (window / 60), 1),
            "temporal_calls_per_rollout_p50": p50(rollout_calls),
            "temporal_calls_per_pool_per_min_rollout": (
                round(sum(rollout_calls) / sum(rollout_s) * 60, 1) if rollout_s else None
            ),
            "temporal_calls_steady_by_method": {k: v for k, v in sorted(steady.items()) if v},
            "rollout_max_s": round(max(rollout_s), 2) if rollout_s else None,
            "rollout_s": [round(x, 2) for x in rollout_s],
            "rollout_calls": rollout_calls,
            "floor_s": [round(x, 2) for x in floor_s],
            **bad,
            **bad_activities,
            **scaled,
            "operator_tracebacks": op.tracebacks(),
            "machine": "2-core shared bed (kwok nodes, local workers per build)",
        }
    finally:
        versioned.close()
        floor.close()
        op.stop()
        kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false", check=False)
        server.stop()
        cluster.release()
    return result


async def bad_build(
    kubeconfig: str, ns: str, server: TemporalDevServer, client: Client, queue: str, rate: float
) -> dict[str, Any]:
    """A build whose every workflow fails, ramped at BAD_RAMP % under the same load, with
    analysis on: `bad_build_detect_s` runs from its first failed workflow closing to the ramp
    cleared in Temporal (both server timestamps); `bad_build_failed_workflows` counts the load
    workflows it failed before that."""
    deployment = f"{ns}/versioned"
    load = Load(client, queue, rate)
    loader = asyncio.create_task(load.run())
    try:
        apply(kubeconfig, ns, pool("versioned", queue, server, 0, True, bad=True))

        async def routing() -> DeploymentState | None:
            try:
                return await observe(client, deployment)
            except Backoff:  # Temporal's read limit: ask again
                return None

        async def ramping() -> str | None:
            state = await routing()
            return state.ramping_build if state is not None else None

        async def cleared() -> DeploymentState | None:
            state = await routing()
            return state if state is not None and state.ramping_build is None else None

        bad = await until(ramping, "the bad build ramping", interval=0.2)
        rolled_back = (
            await until(cleared, "the bad build rolled back", interval=0.2)
        ).routing_changed_at
    finally:
        load.stop()
        await loader
    failed_at = []
    for handle in load.handles:
        desc = await handle.describe()
        if desc.status is not None and desc.status.name == "FAILED" and desc.close_time:
            failed_at.append(desc.close_time)
    detect = (rolled_back - min(failed_at)).total_seconds() if failed_at and rolled_back else None
    return {
        "bad_build": bad,
        "bad_build_ramp_percent": BAD_RAMP,
        "bad_build_load_per_s": rate,
        "bad_build_detect_s": round(detect, 2) if detect is not None else None,
        "bad_build_failed_workflows": sum(1 for t in failed_at if rolled_back and t <= rolled_back),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rollouts", type=int, default=10)
    p.add_argument("--rate", type=float, default=2.0, help="load workflows started per second")
    p.add_argument("--window", type=float, default=60.0, help="steady-state window, seconds")
    p.add_argument("--ramp-scale-only", action="store_true",
                   help="only the per-version scaling part; keep the other keys")  # fmt: skip
    p.add_argument("--bad-activity-only", action="store_true",
                   help="only the bad-activity analysis part; keep the other keys")  # fmt: skip
    args = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "rollout.json"
    kept = json.loads(out.read_text()) if out.exists() else {}
    if args.ramp_scale_only:
        result = {**kept, **asyncio.run(run_ramp_scale())}
    elif args.bad_activity_only:
        result = {**kept, **asyncio.run(run_bad_activity(args.rate))}
    else:
        result = asyncio.run(run(args.rollouts, args.rate, args.window))
    out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("AllAtOnce rollout p50 (spec -> build current)", "rollout_allatonce_p50_s", ""),
        ("AllAtOnce rollout max", "rollout_max_s", ""),
        ("floor p50 (spec -> new Deployment serving)", "rollout_floor_p50_s", ""),
        ("rollout / floor", "rollout_ratio", "goal <= 1.3"),
        ("last pinned workflow -> old build at 0, p50", "drain_to_scaledown_p50_s", "goal <= 15 s"),
        ("lost tasks", "lost_tasks", "goal 0"),
        ("non-determinism errors", "nondeterminism_errors", "goal 0"),
        ("Temporal calls per pool per minute (steady)", "temporal_calls_per_pool_per_min", ""),
        ("Temporal calls per rollout, p50", "temporal_calls_per_rollout_p50", ""),
        ("Temporal calls per minute, rollouts", "temporal_calls_per_pool_per_min_rollout", ""),
        ("bad build: first failure -> rolled back", "bad_build_detect_s", "goal <= 2 s"),
        ("bad build: workflows it failed before that", "bad_build_failed_workflows", ""),
        ("bad activity: first failure -> rolled back", "bad_activity_detect_s", "goal <= 20 s"),
        ("bad activity: workflows it failed, lost", "bad_activity_lost", "goal 0"),
        ("ramp: |replicas - share| per version, mean", "ramp_scale_error", "goal <= 1"),
        ("ramp: |replicas - share| per version, max", "ramp_scale_error_max", ""),
    ]
    print(f"\nrollout benchmark ({result.get('rollouts')} rollouts, "
          f"{result.get('load_workflows')} load workflows)")  # fmt: skip
    for label, key, goal in rows:
        print(f"  {label:<48} {result.get(key)!s:>10}  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
