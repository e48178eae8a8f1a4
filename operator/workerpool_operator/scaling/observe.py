"""Temporal task-queue backlog poller for the Builtin engine (Temporal I/O only, no Kubernetes).

One `temporalio.client.Client` per distinct connection (address, namespace, TLS material, API
key), and at most one round of calls per (address, namespace, task queue) per poll interval
however many pools share the queue: requesters inside the freshness window get the cached
reading, and concurrent requesters await the same in-flight fetch.

A round is `DescribeTaskQueue(report_stats=True)` for each task queue type the pool's workers
poll (in parallel): the workflow type when the pool registers workflows, the activity type when it
registers activities. A backlog of a type the pool does not poll is work its workers could never
take, so it is neither fetched nor scaled on (and a workflow-only pool costs one call per round,
not two; the single-call ENHANCED mode that KEDA uses is deprecated in Temporal's API). Plus,
only when a caller is about to consider scaling to zero (a pool above 0 at `minReplicas: 0`) and
the round's stats show no backlog, a visibility count of the running workflows on the queue (the
zero guard's signal, see docs/autoscaling.md), after the stats and at most once per
`COUNT_MAX_AGE_SECONDS`: visibility APIs have a low per-namespace rate limit (the dev server
answers "namespace rate limit exceeded" well before DescribeTaskQueue does) and cost the server
the most.
A failed count does not fail the reading: scale-up still works, and the guard treats the count
as unknown (busy).

The server recomputes task-queue stats at most every ~5 s and serves a cached copy in between,
so a change becomes visible 0-5 s after it happens however fast one polls. Polling at a period
p < 5 s sees fresh stats only every ceil(5 / p) * p seconds (p = 4 s: every 8 s), and polling at
exactly 5 s phase-locks with the cache and now and then sees a change a whole period late. So
the engine polls every max(pollIntervalSeconds, 5.25 s): every poll then gets freshly computed
stats, the fewest calls for the best latency (see bench/bench_autoscaling.py for the numbers).

From zero that period is the whole wait for the first worker, and the stats cannot be read any
fresher. So a pool at 0 replicas is polled twice as often (`poll_period(..., at_zero=True)`), and
each of its rounds also asks for the root partition's `task_queue_status.backlog_count_hint`
(same call, `include_task_queue_status`): the partition keeps that count live, uncached, and it
shows a new task within ~0.5 s, but only the tasks written to the root partition (the stats see
the others). Such a round's backlog is the larger of the two. Two half periods still exceed the
cache, so every other round also gets freshly computed stats.

Failures come back as a `Reading` with `error` set (the decision then keeps the replicas); the
queue is retried with exponential backoff, and as soon as a round through the same connection
succeeds (another queue's, or its own retry) every queue of that connection polls again at its
next step: a back-off that outlived the outage would hold replicas for up to
`BACKOFF_MAX_SECONDS` after Temporal is back (the Builtin engine's from-N tail, issue 21).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter as CallCounter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkerDeploymentVersionRequest,
    ListWorkersRequest,
)

from workerpool_operator import metrics
from workerpool_operator.scaling.decide import Backlog, Reading, TypeStats
from workerpool_operator.temporal.clients import CLIENT_IDLE_SECONDS, TemporalClients
from workerpool_operator.temporal.connections import Connection

log = logging.getLogger(__name__)

# The server recomputes task-queue stats at most this often (dev server: ~5 s).
SERVER_STATS_CACHE_SECONDS = 5.0
# Never poll faster: just above the server's cache, so every poll sees freshly computed stats.
MIN_POLL_SECONDS = SERVER_STATS_CACHE_SECONDS + 0.25
# The running-workflow count (zero guard) is refreshed at most this often per queue.
COUNT_MAX_AGE_SECONDS = 15.0
RPC_TIMEOUT_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 60.0

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
BOTH_TYPES: frozenset[TaskQueueType.ValueType] = frozenset({WORKFLOW, ACTIVITY})


def served_types(workflows: bool, activities: bool) -> frozenset[TaskQueueType.ValueType]:
    """The task queue types a pool's workers poll (a pool hosting nothing is refused at
    admission; both types is the safe answer for it anyway)."""
    types = {t for t, on in ((WORKFLOW, workflows), (ACTIVITY, activities)) if on}
    return frozenset(types) or BOTH_TYPES


def poll_period(interval_seconds: float, *, at_zero: bool = False) -> float:
    """Seconds between polls for a pool asking for `interval_seconds`; half that for a pool at
    0 replicas, whose rounds read the uncached root-partition hint (see module docstring)."""
    period = max(float(interval_seconds), MIN_POLL_SECONDS)
    return period / 2 if at_zero else period


class TemporalCallError(Exception):
    """One RPC failed; the message names it (which matters for rate limits)."""


QueueKey = tuple[str, str, str]


@dataclass
class _Entry:
    last: Reading | None = None
    inflight: asyncio.Task[Reading] | None = None
    failures: int = 0
    retry_at: float = 0.0
    count: int | None = None
    count_at: float = -1e9
    count_failed: bool = False


@dataclass
class _Cached:
    """A per-version (or per-queue heartbeat) reading and when its round started."""

    value: object = None
    at: float = -1e9
    inflight: asyncio.Task[object] | None = None


def _quote(value: str) -> str | None:
    """A visibility-query string literal, or None when the name cannot be quoted safely."""
    if "'" in value or "\\" in value:
        return None
    return f"'{value}'"


class BacklogPoller:
    """One per operator process (app.Operator makes it), shared by every pool."""

    def __init__(
        self,
        *,
        rpc_timeout: float = RPC_TIMEOUT_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        clients: TemporalClients | None = None,
    ) -> None:
        self._rpc_timeout = timedelta(seconds=rpc_timeout)
        self._backoff_max = backoff_max
        self._clock = clock
        self._wall = wall
        self.clients = clients or TemporalClients(clock=clock)
        # By (credentials fingerprint, task queue, types polled): tenants never see each other's
        # readings, and a reading of fewer types is never served to a pool that polls more.
        self._entries: dict[tuple[str, str, frozenset[int]], _Entry] = {}
        # By credentials fingerprint: when the latest round that succeeded through it started
        # (the server answers again; per fingerprint, so one tenant's good credentials never
        # cut another tenant's back-off short).
        self._ok_at: dict[str, float] = {}
        self.calls: CallCounter[QueueKey] = CallCounter()  # RPCs per queue (benchmarks read it)

    async def observe(
        self,
        conn: Connection,
        task_queue: str,
        *,
        max_age: float = MIN_POLL_SECONDS,
        count_running: bool = False,
        types: frozenset[TaskQueueType.ValueType] = BOTH_TYPES,
        hint: bool = False,
    ) -> Reading:
        """The backlog of `types` on the queue, fetched at most once per `max_age` across all
        callers; with `hint` (a pool at 0) a fetched round also reads the root partition's live
        backlog hint.

        A reading younger than `max_age` minus a small tolerance (so a caller looping at
        `max_age` does not just miss it) is returned from the cache.
        """
        key = (conn.address, conn.namespace, task_queue)
        entry = self._entries.setdefault(
            (conn.fingerprint(), task_queue, frozenset(int(t) for t in types)), _Entry()
        )
        self.clients.touch(conn)
        if entry.inflight is not None:
            return await asyncio.shield(entry.inflight)
        now = self._clock()
        last = entry.last
        want_count = count_running and now - entry.count_at >= COUNT_MAX_AGE_SECONDS
        if last is not None:
            tolerance = min(1.0, 0.2 * max_age)
            # A stale count only matters after a round that saw no backlog (see _fetch).
            empty = last.backlog is not None and last.backlog.count == 0
            if now - last.fetched_at < max_age - tolerance and not (want_count and empty):
                return last
            if last.error is not None and now < entry.retry_at and not self._back(conn, last):
                return last
        entry.inflight = asyncio.create_task(
            self._round(conn, task_queue, entry, key, want_count, types, hint)
        )
        return await asyncio.shield(entry.inflight)

    def _back(self, conn: Connection, failed: Reading) -> bool:
        """A round through `conn` succeeded since `failed` started: the server answers again."""
        return self._ok_at.get(conn.fingerprint(), -math.inf) > failed.fetched_at

    async def close(self) -> None:
        """Cancel in-flight rounds and forget every reading."""
        for entry in self._entries.values():
            if entry.inflight is not None:
                entry.inflight.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.inflight
        self._entries.clear()
        self._ok_at.clear()

    def evict_idle(self, idle_seconds: float = CLIENT_IDLE_SECONDS) -> int:
        """Drop the clients unused for `idle_seconds` and the readings made through them
        (rotated credentials, renamed queues and deleted pools leave them behind)."""
        stale = self.clients.evict_idle(idle_seconds)
        for conn in stale:
            fp = conn.fingerprint()
            self._ok_at.pop(fp, None)
            for key in [k for k in self._entries if k[0] == fp]:
                if self._entries[key].inflight is None:
                    del self._entries[key]
        return len(stale)

    async def _round(
        self,
        conn: Connection,
        task_queue: str,
        entry: _Entry,
        key: QueueKey,
        want_count: bool,
        types: frozenset[TaskQueueType.ValueType],
        hint: bool,
    ) -> Reading:
        started = self._clock()
        try:
            reading = await self._fetch(
                conn, task_queue, entry, want_count, key, started, types, hint
            )
        except asyncio.CancelledError:
            entry.inflight = None
            raise
        except Exception as exc:  # any failure becomes data: the decision holds replicas
            entry.failures += 1
            delay = min(MIN_POLL_SECONDS * 2 ** (entry.failures - 1), self._backoff_max)
            entry.retry_at = started + delay
            message = f"{type(exc).__name__}: {exc}".strip()
            if entry.failures == 1:
                log.warning("Temporal poll of %s failed: %s", key, message)
            reading = Reading(None, message[:500], self._wall(), started)
        else:
            if entry.failures:
                log.info("Temporal poll of %s recovered after %d failures", key, entry.failures)
            entry.failures = 0
            fp = conn.fingerprint()
            self._ok_at[fp] = max(self._ok_at.get(fp, -math.inf), started)
        entry.last = reading
        entry.inflight = None
        return reading

    async def _fetch(
        self,
        conn: Connection,
        task_queue: str,
        entry: _Entry,
        want_count: bool,
        key: QueueKey,
        started: float,
        types: frozenset[TaskQueueType.ValueType],
        hint: bool,
    ) -> Reading:
        client = await self.clients.get(conn)

        async def describe(kind: TaskQueueType.ValueType) -> TypeStats:
            self.calls[key] += 1
            try:
                resp = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=conn.namespace,
                        task_queue=TaskQueue(
                            name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                        ),
                        task_queue_type=kind,
                        report_stats=True,
                        include_task_queue_status=hint,
                    ),
                    timeout=self._rpc_timeout,
                )
            except Exception as exc:
                metrics.TEMPORAL_CALLS.labels("DescribeTaskQueue", "error").inc()
                raise TemporalCallError(f"DescribeTaskQueue: {exc}") from exc
            metrics.TEMPORAL_CALLS.labels("DescribeTaskQueue", "ok").inc()
            s = resp.stats
            live = int(resp.task_queue_status.backlog_count_hint) if hint else 0
            return TypeStats(
                backlog=max(int(s.approximate_backlog_count), live),
                age_seconds=s.approximate_backlog_age.ToTimedelta().total_seconds(),
                add_rate=float(s.tasks_add_rate),
                dispatch_rate=float(s.tasks_dispatch_rate),
                pollers=len(resp.pollers),
            )

        async def count() -> None:
            if not want_count:
                return
            quoted = _quote(task_queue)
            if quoted is None:  # cannot ask safely: unknown, so the zero guard assumes busy
                entry.count_failed = True
                return
            self.calls[key] += 1
            try:
                result = await client.count_workflows(
                    f"TaskQueue={quoted} AND ExecutionStatus='Running'",
                    rpc_timeout=self._rpc_timeout,
                )
            except Exception as exc:  # degrade: the guard treats the count as unknown
                metrics.TEMPORAL_CALLS.labels("CountWorkflowExecutions", "error").inc()
                log.warning("running-workflow count for %s failed: %s", key, exc)
                entry.count_failed = True
                return
            metrics.TEMPORAL_CALLS.labels("CountWorkflowExecutions", "ok").inc()
            entry.count, entry.count_at, entry.count_failed = int(result.count), started, False

        async def maybe(kind: TaskQueueType.ValueType) -> TypeStats | None:
            return await describe(kind) if kind in types else None

        wf, act = await asyncio.gather(maybe(WORKFLOW), maybe(ACTIVITY))
        polled = [s for s in (wf, act) if s is not None]
        if sum(s.backlog for s in polled) == 0:
            # Only a round with no backlog can lead to 0 replicas, the one decision the count
            # guards: with tasks waiting it is not asked. Visibility counts are the dev server's
            # costliest read (seconds each on SQLite with a few thousand workflows), and pools
            # sitting above 0 with a backlog asking every 15 s slowed every call to the server.
            await count()
        backlog = Backlog(
            count=sum(s.backlog for s in polled),
            age_seconds=max(s.age_seconds for s in polled),
            add_rate=sum(s.add_rate for s in polled),
            dispatch_rate=sum(s.dispatch_rate for s in polled),
            pollers=max(s.pollers for s in polled),
            running_workflows=entry.count,
            running_unknown=entry.count_failed,
        )
        return Reading(backlog, None, self._wall(), started, workflow=wf, activity=act)


@dataclass(frozen=True)
class WorkerUse:
    """One build's workers by their heartbeats: how many have a task slot in use, and the
    slots in use in all."""

    busy_workers: int
    used_slots: int


async def _once(
    cache: dict[tuple[str, ...], _Cached],
    key: tuple[str, ...],
    max_age: float,
    clock: Callable[[], float],
    fetch: Callable[[], Awaitable[object]],
) -> object:
    """`fetch()` at most once per `max_age` per key (less the same tolerance as `observe`);
    concurrent callers share the round in flight."""
    entry = cache.setdefault(key, _Cached())
    if entry.inflight is not None:
        return await asyncio.shield(entry.inflight)
    now = clock()
    if now - entry.at < max_age - min(1.0, 0.2 * max_age):
        return entry.value

    async def run() -> object:
        try:
            value = await fetch()
        finally:
            entry.inflight = None
        entry.value, entry.at = value, now
        return value

    entry.inflight = asyncio.create_task(run())
    return await asyncio.shield(entry.inflight)


class VersionPoller:
    """The Builtin engine's reads for versioned pools, through a `BacklogPoller`'s clients:
    one `DescribeWorkerDeploymentVersion(report_task_queue_stats)` per version per poll period
    (that version's backlog on the pool's queue), and, only when a version might scale down, one
    `ListWorkers` per queue per period (the workers' heartbeats: slot use per build)."""

    def __init__(self, backlog: BacklogPoller) -> None:
        self.backlog = backlog
        self._cache: dict[tuple[str, ...], _Cached] = {}

    def evict_idle(self, idle_seconds: float = CLIENT_IDLE_SECONDS) -> int:
        """Drop the readings nobody asked for in `idle_seconds` (retired builds, deleted pools)."""
        now = self.backlog._clock()
        stale = [
            k for k, e in self._cache.items() if e.inflight is None and now - e.at > idle_seconds
        ]
        for key in stale:
            del self._cache[key]
        return len(stale)

    async def version(
        self,
        conn: Connection,
        deployment: str,
        build: str,
        task_queue: str,
        *,
        max_age: float = MIN_POLL_SECONDS,
        types: frozenset[TaskQueueType.ValueType] = BOTH_TYPES,
    ) -> Reading:
        """The backlog of `types` on `task_queue` routed to one version; failures as data."""
        poller = self.backlog
        key = (conn.fingerprint(), deployment, build, task_queue, *sorted(str(t) for t in types))
        poller.clients.touch(conn)

        async def fetch() -> Reading:
            started = poller._clock()
            try:
                return await self._describe(conn, deployment, build, task_queue, types, started)
            except Exception as exc:  # the decision holds replicas
                message = f"{type(exc).__name__}: {exc}".strip()
                log.warning("Temporal poll of version %s:%s failed: %s", deployment, build, message)
                return Reading(None, message[:500], poller._wall(), started)

        value = await _once(self._cache, key, max_age, poller._clock, fetch)
        assert isinstance(value, Reading)
        return value

    async def _describe(
        self,
        conn: Connection,
        deployment: str,
        build: str,
        task_queue: str,
        types: frozenset[TaskQueueType.ValueType],
        started: float,
    ) -> Reading:
        poller = self.backlog
        client = await poller.clients.get(conn)
        poller.calls[(conn.address, conn.namespace, task_queue)] += 1
        try:
            resp = await client.workflow_service.describe_worker_deployment_version(
                DescribeWorkerDeploymentVersionRequest(
                    namespace=conn.namespace,
                    deployment_version=WorkerDeploymentVersion(
                        deployment_name=deployment, build_id=build
                    ),
                    report_task_queue_stats=True,
                ),
                timeout=poller._rpc_timeout,
            )
        except Exception as exc:
            metrics.TEMPORAL_CALLS.labels("DescribeWorkerDeploymentVersion", "error").inc()
            raise TemporalCallError(f"DescribeWorkerDeploymentVersion: {exc}") from exc
        metrics.TEMPORAL_CALLS.labels("DescribeWorkerDeploymentVersion", "ok").inc()
        by_type: dict[int, TypeStats] = {}
        for q in resp.version_task_queues:
            if q.name != task_queue or q.type not in types:
                continue
            st = q.stats
            by_type[int(q.type)] = TypeStats(
                backlog=int(st.approximate_backlog_count),
                age_seconds=st.approximate_backlog_age.ToTimedelta().total_seconds(),
                add_rate=float(st.tasks_add_rate),
                dispatch_rate=float(st.tasks_dispatch_rate),
                pollers=0,  # not in this answer: the caller uses the build's ready pods
            )
        wf, act = by_type.get(int(WORKFLOW)), by_type.get(int(ACTIVITY))
        polled = [s for s in (wf, act) if s is not None]
        backlog = Backlog(
            count=sum(s.backlog for s in polled),
            age_seconds=max((s.age_seconds for s in polled), default=0.0),
            add_rate=sum(s.add_rate for s in polled),
            dispatch_rate=sum(s.dispatch_rate for s in polled),
        )
        return Reading(backlog, None, poller._wall(), started, workflow=wf, activity=act)

    async def workers(
        self, conn: Connection, deployment: str, task_queue: str, *, max_age: float
    ) -> dict[str, WorkerUse] | None:
        """Slot use per build of `deployment` on `task_queue`, from the running workers'
        heartbeats (`ListWorkers`); None when the server did not answer (no floor then)."""
        poller = self.backlog
        quoted = _quote(task_queue)
        if quoted is None:
            return None
        # The answer is filtered to `deployment`: two deployments' pools on one queue must not
        # share it.
        key = (conn.fingerprint(), "workers", deployment, task_queue)

        async def fetch() -> dict[str, WorkerUse] | None:
            client = await poller.clients.get(conn)
            poller.calls[(conn.address, conn.namespace, task_queue)] += 1
            try:
                resp = await client.workflow_service.list_workers(
                    ListWorkersRequest(
                        namespace=conn.namespace, query=f"TaskQueue = {quoted}", page_size=1000
                    ),
                    timeout=poller._rpc_timeout,
                )
            except Exception as exc:
                metrics.TEMPORAL_CALLS.labels("ListWorkers", "error").inc()
                log.warning("ListWorkers for %s failed: %s", task_queue, exc)
                return None
            metrics.TEMPORAL_CALLS.labels("ListWorkers", "ok").inc()
            busy: dict[str, list[int]] = {}
            for info in resp.workers_info:
                hb = info.worker_heartbeat
                version = hb.deployment_version
                if (
                    hb.status != WorkerStatus.WORKER_STATUS_RUNNING
                    or version.deployment_name != deployment
                ):
                    continue
                used = sum(
                    s.current_used_slots
                    for s in (
                        hb.workflow_task_slots_info,
                        hb.activity_task_slots_info,
                        hb.local_activity_slots_info,
                    )
                )
                tally = busy.setdefault(version.build_id, [0, 0])
                tally[0] += 1 if used > 0 else 0
                tally[1] += used
            return {b: WorkerUse(t[0], t[1]) for b, t in busy.items()}

        value = await _once(self._cache, key, max_age, poller._clock, fetch)
        return value if isinstance(value, dict) else None
