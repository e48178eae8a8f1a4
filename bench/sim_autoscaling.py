"""Trace-driven study of autoscaling policies: the Builtin `decide` against a model of KEDA + HPA.

Why: the live benchmark (bench/bench_autoscaling.py) measures reaction latency on a real bed, but
not what a policy costs or what tasks wait over hours of bursty traffic. This module replays the
PURE `workerpool_operator.scaling.decide.decide` (imported, not copied) against a queue model, so
the numbers follow the operator's code, and compares policies on task wait (p50/p95) and on
replica-seconds / GPU-seconds.

    python -m bench.sim_autoscaling [--seed 1] [--day-hours 24] [--policies a,b] [--out FILE]
        [--seeds N] [--opt-in TRACE:FIELD=VALUE ...]

(`make sim`, `SIM_ARGS=...`; `make bench` runs it too) writes bench-results/sim_autoscaling.json.
`--seeds N` adds a min-max table over N seeds (is a ranking the policy's or the seed's?);
`--policies` also takes age-only, rates-only and idle-only (one opt-in rule family each);
`--opt-in` changes a field the age+rate policy adds on one trace.

Queue model (discrete time, 1 s steps, every time an integer second):
- Tasks arrive per the trace and wait in one FIFO backlog (Temporal's task queue). One task is one
  job: a workflow whose one activity runs `service` seconds on a worker of the pool (the short
  workflow tasks are left out). A task is dispatched the second a ready worker has a free slot,
  to the worker with the most free slots (Temporal hands a task to a waiting poller; every
  worker with a free slot has one). A replica runs `slots` tasks at once.
- A new pod is ready `startup` seconds after the scaler raises replicas (GPU: 60-120 s, image
  pull and model load; CPU: 8-12 s), drawn per pod from one sequence per trace, so every policy's
  k-th pod starts equally fast (common random numbers).
- Scale-down never kills running work: the ReplicaSet picks its victims as Kubernetes ranks them
  (not-ready pods first, newest first; then the ready pods ready for the shortest time; Kubernetes
  does not know which workers are busy), and a busy victim drains (SIGTERM: stops polling,
  finishes its tasks) and counts replica-seconds until its last task is done. An idle one goes at
  once. `terminationGracePeriodSeconds` is assumed long enough for any task.
- Replica-seconds: every pod from creation (start-up included: a GPU is held while the model
  loads) to exit, over a fixed horizon per trace (the trace plus a tail that lets every policy
  settle), the same for all policies. GPU-seconds: replica-seconds x GPUs per pod (GPU pool only).

What the scalers see (Temporal task-queue stats, `DescribeTaskQueue`):
- The server recomputes the stats at most every `SERVER_STATS_CACHE_SECONDS` (5 s) and answers
  from that copy in between; one cache per queue, shared by every reader (the Builtin poller,
  KEDA's scale loop and KEDA's metrics server).
- backlog count = tasks waiting (not running), backlog age = the oldest one's wait,
  `tasks_add_rate` / `tasks_dispatch_rate` = tasks added / dispatched over the last 30 s, divided by
  30 (Temporal's proto: "averaging the last 30 seconds"; sync-matched tasks included), pollers =
  ready workers that are not draining.
- Builtin: polls every `poll_period(pollIntervalSeconds)` = 5.25 s, at a random phase, calls
  `decide` and sets the Deployment's replicas to its answer. For a pool with `minReplicas: 0`
  that hosts the workflows (the GPU pool), from >0 replicas it also has the visibility count of
  running workflows (here: jobs arrived and not finished), refreshed at most every 15 s
  (`COUNT_MAX_AGE_SECONDS`), as the operator's poller does. No in-flight count (the operator
  does not scrape workers), no GPU capacity ceiling (GPUs are assumed available).

KEDA-default (KEDA >= 2.17 `temporal` scaler, the ScaledObject the operator renders, with KEDA's
defaults; sources: keda.sh/docs/latest/reference/scaledobject-spec and .../scalers/temporal,
kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale, and the HPA controller's
replica_calculator.go / horizontal.go):
- KEDA's scale loop every `pollingInterval` 30 s (default): the scaler's metric is the backlog
  count, active when it exceeds `activationTargetQueueSize` (0). At 0 replicas and active: 0 -> 1.
  At >0 replicas and inactive for `cooldownPeriod` 300 s (default) since it was last active:
  -> 0 (no guard for running work). Between 1 and max the HPA acts (KEDA sets the HPA's
  minReplicas to max(1, minReplicaCount)); the HPA does nothing while the Deployment is at 0.
- The HPA controller syncs every 15 s (`--horizontal-pod-autoscaler-sync-period`) on KEDA's
  external metric, target type AverageValue = `targetQueueSize` (= targetBacklogPerReplica; KEDA's
  metrics server asks the scaler afresh on each read, `useCachedMetrics` false by default):
  ratio = backlog / (target x replicas); within the 10% tolerance it keeps the replicas, else
  desired = ceil(backlog / target). Default behavior: scale-up window 0 s, at most
  max(+4 pods, +100%) per 15 s (selectPolicy Max over the scale-up events of the last 15 s);
  scale-down stabilization 300 s (the highest desired of the last 300 s), then up to 100% per
  15 s; clamped to [max(1, min), max].

Not modelled: the workflow tasks and their own backlog, Temporal's partitions and its unloading of
idle queues, failures and retries, API-server and controller latencies (a replica change is
instant, the start-up delay covers scheduling and pulls), GPU scarcity (Pending pods), scale-down
picking by pod-deletion-cost, a grace period shorter than a task (the KEDA -> 0 and every
scale-down would then kill work), pollers that stop polling while their slots are full.

Traces (each documented at its generator): `gpu-llm` (bursts of several-minute LLM jobs, GPU pool,
minReplicas 0), `steady-eval` (evaluation workflows at a noisy constant rate) and `daily-ramp`
(a day of diurnal traffic, a raised-cosine ramp; `--day-hours` compresses it).

Policies: `count-only` (the spec's defaults: targetBacklogPerReplica alone), `age+rate` (the
opt-in rules: targetBacklogAgeSeconds and scaleOnRates; on the GPU pool also
scaleDownOnlyWhenIdle and scaleToZeroAfterIdleSeconds 600) and `keda-default` (above). Writes
bench-results/sim_autoscaling.json and prints a table.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workerpool_operator.api.v1alpha1 import AutoscalingSpec
from workerpool_operator.scaling.decide import Backlog, History, Observation, Policy, decide
from workerpool_operator.scaling.observe import (
    COUNT_MAX_AGE_SECONDS,
    SERVER_STATS_CACHE_SECONDS,
    poll_period,
)

RATE_WINDOW = 30  # Temporal's tasks_add_rate / tasks_dispatch_rate average the last 30 s

# KEDA and HPA defaults (see the module docstring for where they come from).
KEDA_POLLING_INTERVAL = 30.0
KEDA_COOLDOWN = 300.0
HPA_SYNC_PERIOD = 15.0
HPA_TOLERANCE = 0.1
HPA_DOWN_WINDOW = 300.0
HPA_UP_PODS = 4  # scale-up policy: +4 pods per 15 s ...
HPA_UP_PERCENT = 100  # ... or +100% per 15 s, whichever allows more
HPA_POLICY_PERIOD = 15.0
HPA_DOWN_PERCENT = 100  # scale-down policy: 100% per 15 s

POLICIES = ("count-only", "age+rate", "keda-default")
# One opt-in rule family at a time (`--policies`): which rule an age+rate number is due to.
ABLATIONS: dict[str, tuple[str, ...]] = {
    "age-only": ("targetBacklogAgeSeconds",),
    "rates-only": ("scaleOnRates",),
    "idle-only": ("scaleDownOnlyWhenIdle", "scaleToZeroAfterIdleSeconds"),
}


# ---------------------------------------------------------------------------- traces


@dataclass(frozen=True)
class PoolModel:
    """The worker pool a trace runs on: capacity, start-up, and its autoscaling spec."""

    slots: int  # tasks one replica runs at once
    startup: tuple[int, int]  # seconds from scale-up to ready, uniform in [lo, hi]
    gpus: int  # GPUs per replica (0: a CPU pool)
    autoscaling: Mapping[str, Any]  # spec.autoscaling as a user writes it (camelCase), count-only
    opt_in: Mapping[str, Any]  # the fields the age+rate policy adds
    hosts_workflows: bool  # the pool runs the jobs' workflows (the guard's running count applies)


@dataclass(frozen=True)
class Trace:
    name: str
    about: str
    pool: PoolModel
    tasks: tuple[tuple[int, int], ...]  # (arrival second, service seconds), by arrival
    horizon: int  # seconds simulated (and billed) for every policy: the trace plus a settling tail
    bursts: tuple[int, ...] = ()  # burst start seconds (the GPU trace)


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth; the rates here are small): random has no Poisson sampler."""
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation keeps big rates cheap
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def gpu_llm_trace(seed: int, hours: float = 4.0) -> Trace:
    """GPU LLM jobs in bursts: a user or a pipeline submits 3-10 jobs within 10-120 s, each a
    generation of several minutes (log-normal, median 4 min, 1-15 min); bursts are followed by a
    short gap (4-10 min: the next batch of the same session) or a long one (20-45 min), half
    and half. One job per GPU (slots 1), pods need 60-120 s to load the model, minReplicas 0:
    idle GPUs are the cost that matters."""
    rng = random.Random(f"{seed}/gpu-llm")
    tasks: list[tuple[int, int]] = []
    bursts: list[int] = []
    t, end = 120.0, hours * 3600
    while t < end:
        bursts.append(int(t))
        spread = rng.uniform(10, 120)
        for _ in range(rng.randint(3, 10)):
            service = round(rng.lognormvariate(math.log(240), 0.35))
            tasks.append((int(t + rng.uniform(0, spread)), min(max(service, 60), 900)))
        gap = rng.uniform(240, 600) if rng.random() < 0.5 else rng.uniform(1200, 2700)
        t += spread + gap
    tasks.sort()
    pool = PoolModel(
        slots=1,
        startup=(60, 120),
        gpus=1,
        autoscaling={"minReplicas": 0, "maxReplicas": 16, "targetBacklogPerReplica": 1},
        opt_in={
            "targetBacklogAgeSeconds": 60,
            "scaleOnRates": True,
            "scaleDownOnlyWhenIdle": True,
            "scaleToZeroAfterIdleSeconds": 600,
        },
        hosts_workflows=True,
    )
    horizon = tasks[-1][0] + 3600 if tasks else 3600
    return Trace("gpu-llm", _doc(gpu_llm_trace), pool, tuple(tasks), horizon, tuple(bursts))


def steady_eval_trace(seed: int, hours: float = 1.0) -> Trace:
    """Evaluation workflows at a constant-ish rate: Poisson arrivals at 1.5/s times (1 + x), x a
    slow AR(1) noise (about +-25%); each task runs 20 s median (log-normal, sigma 0.5), 4 slots
    per replica (about 9 replicas busy), CPU pods ready in 8-12 s, minReplicas 1."""
    rng = random.Random(f"{seed}/steady-eval")
    tasks: list[tuple[int, int]] = []
    duration, noise = int(hours * 3600), 0.0
    for t in range(duration):
        noise = 0.98 * noise + rng.gauss(0, 0.05)
        for _ in range(_poisson(rng, 1.5 * max(0.0, 1 + noise))):
            tasks.append((t, max(1, math.ceil(rng.lognormvariate(math.log(20), 0.5)))))
    pool = PoolModel(
        slots=4,
        startup=(8, 12),
        gpus=0,
        autoscaling={"minReplicas": 1, "maxReplicas": 30, "targetBacklogPerReplica": 5},
        opt_in={"targetBacklogAgeSeconds": 30, "scaleOnRates": True},
        hosts_workflows=True,
    )
    return Trace("steady-eval", _doc(steady_eval_trace), pool, tuple(tasks), duration + 1200)


def daily_ramp_trace(seed: int, day_hours: float = 24.0) -> Trace:
    """A day of diurnal traffic, compressed into `day_hours` simulated hours: Poisson arrivals
    at 0.3 + 9.7 * (1 - cos(2 pi t / day)) / 2 per second (night 0.3/s, peak 10/s at midday),
    times a per-minute noise of +-10%; tasks of 6 s mean (exponential), 8 slots per replica (about
    8 replicas busy at the peak), CPU pods ready in 8-12 s, minReplicas 1."""
    rng = random.Random(f"{seed}/daily-ramp")
    tasks: list[tuple[int, int]] = []
    day, factor = int(day_hours * 3600), 1.0
    for t in range(day):
        if t % 60 == 0:
            factor = rng.uniform(0.9, 1.1)
        lam = (0.3 + 9.7 * (1 - math.cos(2 * math.pi * t / day)) / 2) * factor
        for _ in range(_poisson(rng, lam)):
            tasks.append((t, max(1, math.ceil(rng.expovariate(1 / 6)))))
    pool = PoolModel(
        slots=8,
        startup=(8, 12),
        gpus=0,
        autoscaling={"minReplicas": 1, "maxReplicas": 30, "targetBacklogPerReplica": 10},
        opt_in={"targetBacklogAgeSeconds": 30, "scaleOnRates": True},
        hosts_workflows=True,
    )
    return Trace("daily-ramp", _doc(daily_ramp_trace), pool, tuple(tasks), day + 1200)


def _doc(fn: Callable[..., Trace]) -> str:
    return " ".join((fn.__doc__ or "").split())


def policy_for(pool: PoolModel, name: str) -> Policy:
    """The Builtin Policy of a named policy, through the spec (`Policy.from_spec`) as the operator
    builds it, so the study follows the fields' real defaults."""
    fields = dict(pool.autoscaling)
    if name == "age+rate":
        fields.update(pool.opt_in)
    elif name in ABLATIONS:
        fields.update({k: v for k, v in pool.opt_in.items() if k in ABLATIONS[name]})
    return Policy.from_spec(AutoscalingSpec.model_validate(fields))


# ---------------------------------------------------------------------------- the world


class Pod:
    """One worker pod: created, ready at `ready_at`, maybe draining, gone at `ended`."""

    __slots__ = ("created", "draining", "ended", "id", "ready_at", "running")

    def __init__(self, pid: int, created: int, ready_at: int) -> None:
        self.id = pid
        self.created = created
        self.ready_at = ready_at
        self.draining = False
        self.running = 0
        self.ended: int | None = None


@dataclass(frozen=True)
class ScaleEvent:
    t: int
    actor: str  # "builtin", "keda" (0 <-> 1, cooldown) or "hpa"
    before: int
    after: int


class World:
    """The task queue, the Deployment's pods and Temporal's view of it, one second at a time."""

    def __init__(self, trace: Trace, seed: int) -> None:
        self.trace = trace
        self.pool = trace.pool
        n = len(trace.tasks)
        self.arrival = [a for a, _ in trace.tasks]
        self.service = [s for _, s in trace.tasks]
        self.start: list[int | None] = [None] * n
        self.end: list[int | None] = [None] * n
        self.ran_on: list[int] = [-1] * n
        self.next_task = 0  # next task of the trace to arrive
        self.queue: deque[int] = deque()
        self.running: list[tuple[int, int, int]] = []  # heap of (end, pod id, task)
        self.completed = 0
        self.pods: list[Pod] = []  # every pod ever created, by id
        self.live: list[Pod] = []  # the pods not gone yet (draining ones included)
        self.replicas = 0  # the Deployment's spec.replicas
        self.events: list[ScaleEvent] = []
        self.drained_busy = 0  # pods that were busy when chosen for scale-down and drained
        horizon = trace.horizon
        self.adds = [0] * (horizon + 2)
        self.dispatches = [0] * (horizon + 2)
        self._cum_add = [0]
        self._cum_dispatch = [0]
        self._startup_rng = random.Random(f"{seed}/{trace.name}/pods")
        self._stats: Backlog | None = None
        self._stats_at = -math.inf
        self.max_replicas = 0
        self.timeline: list[tuple[int, int, int, int]] = []  # (t, replicas, backlog, running)

    # -- queue and workers
    def step(self, t: int) -> None:
        """Completions, arrivals and dispatch at second t (before any scaler looks)."""
        if t >= len(self.adds):  # past the horizon while work remains: grow the counters
            self.adds.append(0)
            self.dispatches.append(0)
        pods = self.pods
        while self.running and self.running[0][0] <= t:
            end, pid, task = heapq.heappop(self.running)
            pod = pods[pid]
            pod.running -= 1
            self.end[task] = end
            self.completed += 1
            if pod.draining and pod.running == 0 and pod.ended is None:
                pod.ended = t
                self.live.remove(pod)
        arrivals = self.arrival
        while self.next_task < len(arrivals) and arrivals[self.next_task] <= t:
            self.queue.append(self.next_task)
            self.next_task += 1
            self.adds[t] += 1
        if self.queue:
            slots = self.pool.slots
            free = [
                (p.running - slots, p.id)
                for p in self.live
                if not p.draining and p.ready_at <= t and p.running < slots
            ]
            heapq.heapify(free)
            while self.queue and free:
                neg_free, pid = heapq.heappop(free)
                task = self.queue.popleft()
                pod = pods[pid]
                pod.running += 1
                self.start[task] = t
                self.ran_on[task] = pid
                heapq.heappush(self.running, (t + self.service[task], pid, task))
                self.dispatches[t] += 1
                if neg_free + 1 < 0:
                    heapq.heappush(free, (neg_free + 1, pid))
        self._cum_add.append(self._cum_add[-1] + self.adds[t])
        self._cum_dispatch.append(self._cum_dispatch[-1] + self.dispatches[t])

    def scale(self, t: int, replicas: int, actor: str) -> None:
        """Set spec.replicas: new pods start, or victims go the way a ReplicaSet picks them."""
        before = self.replicas
        if replicas == before:
            return
        self.events.append(ScaleEvent(t, actor, before, replicas))
        self.replicas = replicas
        self.max_replicas = max(self.max_replicas, replicas)
        live = [p for p in self.live if not p.draining]
        if replicas > len(live):
            lo, hi = self.pool.startup
            for _ in range(replicas - len(live)):
                pod = Pod(len(self.pods), t, t + self._startup_rng.randint(lo, hi))
                self.pods.append(pod)
                self.live.append(pod)
            return
        # ReplicaSet ranking: not ready before ready (newest first), then the ready pods ready
        # for the shortest time (ties: the sort is stable, by creation). Busy or idle is not
        # part of it.
        live.sort(key=lambda p: (p.ready_at <= t, -(p.ready_at if p.ready_at <= t else p.created)))
        for pod in live[: len(live) - replicas]:
            if pod.running:
                pod.draining = True
                self.drained_busy += 1
            else:
                pod.ended = t
                self.live.remove(pod)

    # -- what Temporal reports
    def stats(self, t: int) -> Backlog:
        """DescribeTaskQueue's stats: recomputed at most every 5 s, cached in between."""
        if self._stats is None or t - self._stats_at >= SERVER_STATS_CACHE_SECONDS:
            lo = max(0, t + 1 - RATE_WINDOW)
            adds = self._cum_add[t + 1] - self._cum_add[lo]
            dispatches = self._cum_dispatch[t + 1] - self._cum_dispatch[lo]
            self._stats = Backlog(
                count=len(self.queue),
                age_seconds=float(t - self.arrival[self.queue[0]]) if self.queue else 0.0,
                add_rate=adds / RATE_WINDOW,
                dispatch_rate=dispatches / RATE_WINDOW,
                pollers=sum(1 for p in self.live if not p.draining and p.ready_at <= t),
            )
            self._stats_at = t
        return self._stats

    def ready(self, t: int) -> int:
        """The Deployment's readyReplicas: ready pods not terminating (draining)."""
        return sum(1 for p in self.live if not p.draining and p.ready_at <= t)

    def running_workflows(self) -> int:
        """Visibility's count of Running workflows on the queue: jobs arrived and not done."""
        return self.next_task - self.completed

    def done(self) -> bool:
        return self.next_task == len(self.arrival) and self.completed == len(self.arrival)


# ---------------------------------------------------------------------------- scalers


class Scaler:
    name = ""

    def step(self, t: int, world: World) -> None:
        raise NotImplementedError


@dataclass
class BuiltinScaler(Scaler):
    """The operator's Builtin engine: poll every poll_period, `decide`, set replicas."""

    policy: Policy
    phase: float
    hosts_workflows: bool
    name: str = "builtin"
    history: History = field(default_factory=History)
    next_at: float = 0.0
    count: int | None = None
    count_at: float = -math.inf
    decisions: list[tuple[int, int | None, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.period = poll_period(self.policy.poll_interval)
        self.next_at = self.phase

    def step(self, t: int, world: World) -> None:
        if t < self.next_at:
            return
        while self.next_at <= t:
            self.next_at += self.period
        current = world.replicas
        reading = world.stats(t)
        running: int | None = None
        if self.policy.min_replicas == 0 and current > 0 and self.hosts_workflows:
            if t - self.count_at >= COUNT_MAX_AGE_SECONDS:
                self.count, self.count_at = world.running_workflows(), t
            running = self.count
        decision = decide(
            Observation(
                current,
                replace(reading, running_workflows=running),
                ready_replicas=world.ready(t),
            ),
            self.history,
            self.policy,
            float(t),
        )
        self.history = decision.history
        self.decisions.append((t, decision.recommendation, decision.replicas))
        world.scale(t, decision.replicas, self.name)


@dataclass
class KedaScaler(Scaler):
    """KEDA's scale loop (activation, cooldown) and the HPA controller on its external metric,
    with the defaults listed in the module docstring."""

    min_replicas: int
    max_replicas: int
    target: int
    activation: int
    keda_phase: float
    hpa_phase: float
    name: str = "keda"
    keda_next: float = 0.0
    hpa_next: float = 0.0
    last_active: float | None = None
    recommendations: list[tuple[int, int]] = field(default_factory=list)  # HPA (t, desired)
    desired_log: list[tuple[int, int]] = field(default_factory=list)  # every HPA desired, kept
    active_log: list[tuple[int, bool]] = field(default_factory=list)  # every KEDA activity check
    up_events: list[tuple[int, int]] = field(default_factory=list)
    down_events: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keda_next, self.hpa_next = self.keda_phase, self.hpa_phase

    def step(self, t: int, world: World) -> None:
        if t >= self.keda_next:
            while self.keda_next <= t:
                self.keda_next += KEDA_POLLING_INTERVAL
            self._keda(t, world)
        if t >= self.hpa_next:
            while self.hpa_next <= t:
                self.hpa_next += HPA_SYNC_PERIOD
            self._hpa(t, world)

    def _keda(self, t: int, world: World) -> None:
        active = world.stats(t).count > self.activation
        self.active_log.append((t, active))
        current = world.replicas
        if active:
            self.last_active = t
            if current == 0:
                world.scale(t, max(1, self.min_replicas), "keda")
        elif (
            current > 0
            and self.min_replicas == 0
            and (self.last_active is None or t - self.last_active >= KEDA_COOLDOWN)
        ):
            world.scale(t, 0, "keda")

    def _hpa(self, t: int, world: World) -> None:
        current = world.replicas
        if current == 0:
            return  # the HPA is inactive while the target is scaled to zero
        metric = world.stats(t).count
        ratio = metric / (self.target * current)
        desired = current if abs(1.0 - ratio) <= HPA_TOLERANCE else math.ceil(metric / self.target)
        # stabilization (up window 0: only the down window of the highest recommendation)
        down = max([desired, *(r for rt, r in self.recommendations if rt > t - HPA_DOWN_WINDOW)])
        stabilized = min(max(current, desired), down)
        self.recommendations = [
            (rt, r) for rt, r in self.recommendations if rt > t - HPA_DOWN_WINDOW
        ]
        self.recommendations.append((t, desired))
        self.desired_log.append((t, desired))
        floor = max(1, self.min_replicas)
        final = stabilized
        if stabilized > current:
            start = current - _changes(self.up_events, t) + _changes(self.down_events, t)
            limit = max(start + HPA_UP_PODS, math.ceil(start * (1 + HPA_UP_PERCENT / 100)))
            final = min(stabilized, max(limit, current), self.max_replicas)
        elif stabilized < current:
            start = current - _changes(self.up_events, t) + _changes(self.down_events, t)
            limit = min(int(start * (1 - HPA_DOWN_PERCENT / 100)), current)
            final = max(stabilized, limit, floor)
        final = min(max(final, floor), self.max_replicas)
        if final > current:
            self.up_events.append((t, final - current))
        elif final < current:
            self.down_events.append((t, current - final))
        world.scale(t, final, "hpa")


def _changes(events: list[tuple[int, int]], t: int) -> int:
    """Replicas added (or removed) by the HPA within its policy period before t."""
    return sum(n for et, n in events if et > t - HPA_POLICY_PERIOD)


# ---------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One trace under one policy: the world after the run, and the scaler that drove it."""

    trace: Trace
    policy: str
    world: World
    scaler: Scaler
    end: int
    seconds: float

    def waits(self) -> list[int]:
        return [
            s - a
            for s, a in zip(self.world.start, self.world.arrival, strict=True)
            if s is not None
        ]

    def summary(self) -> dict[str, Any]:
        world, waits = self.world, sorted(self.waits())
        replica_seconds = sum(
            (p.ended if p.ended is not None else self.end) - p.created for p in world.pods
        )
        return {
            "trace": self.trace.name,
            "policy": self.policy,
            "tasks": len(world.arrival),
            "served": world.completed,
            "wait_p50_s": _rank(waits, 0.50),
            "wait_p95_s": _rank(waits, 0.95),
            "wait_max_s": waits[-1] if waits else None,
            "replica_seconds": replica_seconds,
            "gpu_seconds": replica_seconds * self.trace.pool.gpus if self.trace.pool.gpus else None,
            "max_replicas": world.max_replicas,
            "pods_started": len(world.pods),
            "scale_changes": len(world.events),
            "busy_pods_drained": world.drained_busy,
            "simulated_s": self.end,
            "cpu_s": round(self.seconds, 2),
        }


def _rank(values: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile, as bench_autoscaling reports them."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def simulate(trace: Trace, policy: str, seed: int) -> Run:
    """Replay `trace` under `policy` until the horizon (and on until every task is served)."""
    began = time.perf_counter()
    world = World(trace, seed)
    pool = trace.pool
    phases = random.Random(f"{seed}/{trace.name}/phases")
    builtin_phase, keda_phase, hpa_phase = (phases.uniform(0, p) for p in (5.25, 30.0, 15.0))
    scaler: Scaler
    if policy == "keda-default":
        spec = AutoscalingSpec.model_validate(dict(pool.autoscaling))
        scaler = KedaScaler(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target=spec.target_backlog_per_replica,
            activation=spec.activation_backlog,
            keda_phase=keda_phase,
            hpa_phase=hpa_phase,
        )
    elif policy in POLICIES or policy in ABLATIONS:
        scaler = BuiltinScaler(policy_for(pool, policy), builtin_phase, pool.hosts_workflows)
    else:
        known = ", ".join((*POLICIES, *ABLATIONS))
        raise ValueError(f"unknown policy {policy!r}; one of {known}")
    first = pool.autoscaling.get("minReplicas", 1)
    world.scale(0, int(first), "initial")
    world.events.clear()
    for pod in world.pods:  # the pool starts warm at its minimum
        pod.ready_at = 0
    t = 0
    while t <= trace.horizon or not world.done():
        world.step(t)
        scaler.step(t, world)
        if t % 10 == 0:
            world.timeline.append((t, world.replicas, len(world.queue), len(world.running)))
        t += 1
        if t > trace.horizon + 48 * 3600:
            raise RuntimeError(f"{trace.name}/{policy}: tasks still waiting two days after the end")
    return Run(trace, policy, world, scaler, t, time.perf_counter() - began)


def traces(
    seed: int, day_hours: float = 24.0, opt_in: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Trace]:
    """The three traces; `opt_in` overrides age+rate fields per trace name (`--opt-in`)."""
    out = [gpu_llm_trace(seed), steady_eval_trace(seed), daily_ramp_trace(seed, day_hours)]
    extra = dict(opt_in or {})
    unknown = set(extra) - {t.name for t in out}
    if unknown:
        raise ValueError(f"unknown trace(s) {sorted(unknown)}")
    return [
        replace(t, pool=replace(t.pool, opt_in={**t.pool.opt_in, **extra[t.name]}))
        if t.name in extra
        else t
        for t in out
    ]


def study(
    seed: int,
    day_hours: float = 24.0,
    policies: Sequence[str] = POLICIES,
    opt_in: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Run]:
    return [simulate(tr, p, seed) for tr in traces(seed, day_hours, opt_in) for p in policies]


def spread(per_seed: Mapping[int, Sequence[Mapping[str, Any]]]) -> str:
    """Markdown table of min-max over seeds: is a ranking a property of the policy or luck?"""
    keys = ("wait_p50_s", "wait_p95_s", "replica_seconds", "max_replicas")
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for rows in per_seed.values():
        for r in rows:
            groups.setdefault((r["trace"], r["policy"]), []).append(r)
    lines = [
        f"| trace | policy | {' | '.join(k.removesuffix('_s') for k in keys)} |",
        "|" + "---|" * (2 + len(keys)),
    ]
    for (trace, policy), rows in groups.items():
        cells = []
        for k in keys:
            values = [r[k] for r in rows if r[k] is not None]
            cells.append(f"{min(values):,}-{max(values):,}" if values else "-")
        lines.append(f"| {trace} | {policy} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _opt_in(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """TRACE:FIELD=VALUE (VALUE as JSON) -> {trace: {field: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        trace, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if not trace or not key or not value:
            raise SystemExit(f"--opt-in wants TRACE:FIELD=VALUE, got {item!r}")
        out.setdefault(trace, {})[key] = json.loads(value)
    return out


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the summaries (pasteable into docs/autoscaling.md)."""
    head = (
        "| trace | policy | tasks | wait p50 | wait p95 | wait max | replica-s | GPU-s "
        "| max replicas | pods started |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        gpu = "-" if r["gpu_seconds"] is None else f"{r['gpu_seconds']:,}"
        lines.append(
            f"| {r['trace']} | {r['policy']} | {r['tasks']:,} | {r['wait_p50_s']} s "
            f"| {r['wait_p95_s']} s | {r['wait_max_s']} s | {r['replica_seconds']:,} | {gpu} "
            f"| {r['max_replicas']} | {r['pods_started']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--day-hours", type=float, default=24.0, help="simulated hours of the daily-ramp day"
    )
    parser.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help=f"comma-separated, of {', '.join((*POLICIES, *ABLATIONS))}",
    )
    parser.add_argument(
        "--opt-in",
        action="append",
        default=[],
        metavar="TRACE:FIELD=VALUE",
        help="override an age+rate field on one trace: gpu-llm:targetBacklogAgeSeconds=180",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="also run seeds seed+1 .. seed+N-1: min-max table"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/sim_autoscaling.json"))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    policies = [p for p in args.policies.split(",") if p]
    opt_in = _opt_in(args.opt_in)
    runs = study(args.seed, args.day_hours, policies, opt_in)
    rows = [r.summary() for r in runs]
    print(table(rows))
    per_seed = {args.seed: rows}
    for seed in range(args.seed + 1, args.seed + args.seeds):
        per_seed[seed] = [r.summary() for r in study(seed, args.day_hours, policies, opt_in)]
    if args.seeds > 1:
        print(f"\nmin-max over seeds {args.seed}..{args.seed + args.seeds - 1}:")
        print(spread(per_seed))
    elapsed = time.perf_counter() - began
    print(f"\nseed {args.seed}, {elapsed:.1f} s", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    by_name = {r.trace.name: r.trace for r in runs}
    args.out.write_text(
        json.dumps(
            {
                "seed": args.seed,
                "day_hours": args.day_hours,
                "opt_in_overrides": opt_in,
                "command": "python -m bench.sim_autoscaling " + " ".join(sys.argv[1:]),
                "elapsed_s": round(elapsed, 2),
                "traces": {
                    name: {
                        "about": tr.about,
                        "tasks": len(tr.tasks),
                        "horizon_s": tr.horizon,
                        "pool": {
                            "slots": tr.pool.slots,
                            "startup_s": list(tr.pool.startup),
                            "gpus": tr.pool.gpus,
                            "autoscaling": dict(tr.pool.autoscaling),
                            "age_rate_adds": dict(tr.pool.opt_in),
                        },
                    }
                    for name, tr in by_name.items()
                },
                "model": {
                    "server_stats_cache_s": SERVER_STATS_CACHE_SECONDS,
                    "rate_window_s": RATE_WINDOW,
                    "builtin_poll_s": poll_period(5),
                    "running_count_max_age_s": COUNT_MAX_AGE_SECONDS,
                    "keda_polling_interval_s": KEDA_POLLING_INTERVAL,
                    "keda_cooldown_s": KEDA_COOLDOWN,
                    "hpa_sync_s": HPA_SYNC_PERIOD,
                    "hpa_tolerance": HPA_TOLERANCE,
                    "hpa_scale_down_window_s": HPA_DOWN_WINDOW,
                    "hpa_scale_up": f"max(+{HPA_UP_PODS} pods, +{HPA_UP_PERCENT}%) per 15 s",
                },
                "results": rows,
                "seeds": {str(k): v for k, v in per_seed.items()} if args.seeds > 1 else None,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
