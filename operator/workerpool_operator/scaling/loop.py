"""The Builtin engine: observe -> decide -> report -> write, for every Builtin pool.

One operator-level loop (no per-pool kopf daemon, hence no finalizer on pools) polls each
Builtin pool at its own period. A step observes the pool, its Deployment, its opted-in Secrets
and its Pending GPU pods from the watch-fed caches (no GETs) and the backlog from Temporal
(coalesced per connection and queue), decides with the pure `decide`, and writes only what
changed, all under its own field manager (`workerpool-autoscaler`): the Deployment's
`spec.replicas` and the status fields `desiredReplicas`, `backlog`, `lastScaleTime` and the
conditions AutoscalingReady, BacklogAvailable and GPUCapacityAvailable (server-side apply keeps
each manager's entries apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Any

import aiohttp
from pydantic import ValidationError

from workerpool_operator import metrics, trust
from workerpool_operator.aio import sleep_or_stop
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.api.versioning import VersionStatus
from workerpool_operator.kinds import DEPLOYMENT, POOL, POOL_STATUS, Kind
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.errors import NotLeader
from workerpool_operator.names import MANAGERS
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import controlled_by
from workerpool_operator.reconcile.plan import engine_of
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.scaling.decide import (
    Backlog,
    Decision,
    History,
    Observation,
    Policy,
    Reading,
    decide,
)
from workerpool_operator.scaling.observe import (
    MIN_POLL_SECONDS,
    BacklogPoller,
    VersionPoller,
    poll_period,
    served_types,
)
from workerpool_operator.scaling.status import (
    STATUS_REFRESH_SECONDS,
    rfc3339,
    scaler_conditions,
    scaler_status,
    status_core,
    unschedulable_gpu_pods,
)
from workerpool_operator.scaling.versions import (
    NEW_WORK,
    VersionInput,
    decide_versions,
    described,
)
from workerpool_operator.temporal.connections import (
    Connection,
    CredentialsError,
    Resolved,
    Unresolved,
    connection_for,
)
from workerpool_operator.versioning.build_id import deployment_name

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25


@dataclass
class PoolState:
    """What one pool's loop remembers between steps."""

    history: History = field(default_factory=History)
    identity: tuple[str, str] | None = None  # (task queue, connection fingerprint)
    last_core: dict[str, Any] | None = None
    last_status_at: float = -1e9
    last_scale_time: str | None = None
    next_at: float = 0.0
    running: bool = False
    versions: dict[str, History] = field(default_factory=dict)  # versioned pools, by build
    at_zero: bool = False  # the last step left the pool at 0 replicas: the faster period

    def follow(self, identity: tuple[str, str]) -> None:
        """Another queue or server (renamed queue, other connection): forget the history, whose
        recommendations and last trusted backlog describe a different queue."""
        if self.identity is not None and self.identity != identity:
            self.history = History()
            self.versions = {}
        self.identity = identity


def versioned_target(
    view: ClusterView, key: tuple[str, str]
) -> tuple[dict[str, Any], Resolved, list[tuple[VersionStatus, dict[str, Any]]]] | None:
    """A versioned Builtin pool with a version of its own serving new work (Current or
    Ramping): its builds (status.versions with the pool's Deployment each) for per-version
    decisions. None otherwise (an unversioned pool, or a versioned one before its first build
    serves: the target build is then sized from the whole queue, `builtin_target`)."""
    found = builtin_target(view, key)
    if found is None:
        return None
    body, resolved, _ = found
    if resolved.pool.spec.versioning is None:
        return None
    builds: list[tuple[VersionStatus, dict[str, Any]]] = []
    for entry in (body.get("status") or {}).get("versions") or []:
        try:
            v = VersionStatus.model_validate(entry)
        except ValidationError:
            continue
        dep = view.store(DEPLOYMENT).get(key[0], v.deployment) if v.deployment else None
        if dep is not None and controlled_by(dep, resolved.pool.uid):
            builds.append((v, dep))
    if not any(v.state in NEW_WORK for v, _ in builds):
        return None
    return body, resolved, builds


def _with_reading(v: VersionInput, reading: Reading | None) -> VersionInput:
    """The version with its backlog read (pollers: its ready pods, which the version answer does
    not carry; 0 pollers would make `decide` distrust a backlog that fell to 0)."""
    if reading is None:
        return v
    if reading.backlog is None:
        return replace(v, error=reading.error or "no backlog reading")
    return replace(v, backlog=replace(reading.backlog, pollers=v.ready_replicas or 0))


def _total_reading(inputs: list[VersionInput], failed: str | None) -> Reading:
    """The new-work versions' backlogs as one reading, for BacklogAvailable and status.backlog."""
    wall = time.time()
    if failed is not None:
        return Reading(None, failed, wall, 0.0)
    polled = [v.backlog for v in inputs if v.state in NEW_WORK and v.backlog is not None]
    backlog = Backlog(
        count=sum(b.count for b in polled),
        age_seconds=max((b.age_seconds for b in polled), default=0.0),
        pollers=sum(b.pollers for b in polled),
    )
    return Reading(backlog, None, wall, 0.0)


def builtin_target(
    view: ClusterView, key: tuple[str, str]
) -> tuple[dict[str, Any], Resolved, dict[str, Any]] | None:
    """(pool body, resolved pool, Deployment) of a Builtin pool the scaler may act on now;
    None while the reconciler has something to say first (invalid spec, no connection, no
    Deployment yet) or the namespace is going away."""
    body = view.pool(key)
    if body is None or view.namespace_terminating(key[0]):
        return None
    try:
        pool = api.TemporalWorkerPool.from_body(body)
    except ValidationError:
        return None  # the reconciler reports InvalidSpec
    if pool.spec.autoscaling is None or engine_of(pool) != "Builtin":
        return None
    resolved = view.resolve(pool, body)
    if isinstance(resolved, Unresolved):
        return None  # the reconciler reports ConnectionNotFound / ConnectionNotAllowed
    if trust.address_not_allowed(resolved.pool, view.caps.grants, resolved.source):
        return None  # the reconciler reports AddressNotAllowed; nothing is dialled
    name = key[1]
    if pool.spec.versioning is not None:
        # A versioned pool: size the target build (the reconciler applies the decision to it,
        # and keeps draining builds up for their pinned work).
        target = (body.get("status") or {}).get("targetBuildId")
        if not target:
            return None
        name = deployment_name(pool.name, str(target))
    deployment = view.store(DEPLOYMENT).get(key[0], name)
    if deployment is None or not controlled_by(deployment, pool.uid):
        # Not created yet, or someone else's Deployment with the pool's name (an orphan of a
        # deleted pool, another team's): its replicas are never written.
        return None
    return body, resolved, deployment


@dataclass(eq=False)
class Scaler:
    """Runs the Builtin engine for every Builtin pool in the pool cache; `cache_event` must be
    subscribed to the caches (it tracks which pools are Builtin)."""

    kube: Kube
    view: ClusterView
    poller: BacklogPoller
    _: KW_ONLY
    versions: VersionPoller = field(default=None)  # type: ignore[assignment]
    clock: Callable[[], float] = time.monotonic
    manager: str = MANAGERS.scaler
    states: dict[tuple[str, str], PoolState] = field(default_factory=dict, init=False)
    _builtin: set[tuple[str, str]] = field(default_factory=set, init=False)
    # metadata.generation of each Builtin pool as last seen: only a spec change (a new
    # generation) brings a pool's next step forward, not its status or metadata moving.
    _generation: dict[tuple[str, str], object] = field(default_factory=dict, init=False)
    _released: set[tuple[str, str]] = field(default_factory=set, init=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.versions is None:
            self.versions = VersionPoller(self.poller)
        for key in self.view.pool_keys():
            body = self.view.pool(key)
            if body is not None:
                self.pool_event(key, "ADDED", body)

    def cache_event(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        if kind is POOL:
            meta = obj.get("metadata") or {}
            self.pool_event((str(meta.get("namespace") or ""), str(meta.get("name"))), type_, obj)

    def pool_event(self, key: tuple[str, str], type_: str, body: Mapping[str, Any]) -> None:
        """Track which pools are Builtin (the informer calls this on every pool event)."""
        autoscaling = (body.get("spec") or {}).get("autoscaling")
        builtin = (
            type_ != "DELETED"
            and isinstance(autoscaling, Mapping)
            and autoscaling.get("engine", "Builtin") == "Builtin"
            and not (body.get("metadata") or {}).get("deletionTimestamp")
        )
        if builtin:
            self._builtin.add(key)
            self._released.discard(key)
            generation = (body.get("metadata") or {}).get("generation")
            changed = self._generation.get(key, generation) != generation
            self._generation[key] = generation
            state = self.states.get(key)
            if state is not None and type_ == "MODIFIED" and changed:
                # A spec change is looked at now, not a period later. A status write (the
                # scaler's own, the reconciler's) is not: an extra step would re-time the
                # pool's next poll from now, and a pool whose status moves every few seconds
                # would have its polls put off again and again.
                state.next_at = 0.0
        elif key in self._builtin:
            self._builtin.discard(key)
            self._generation.pop(key, None)
            self.states.pop(key, None)
            for gauge in (metrics.BACKLOG, metrics.DESIRED):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)
            if type_ != "DELETED":
                self._released.add(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: start a step for every Builtin pool whose period is due."""
        try:
            while not stop.is_set():
                now = self.clock()
                for key in list(self._builtin):
                    state = self.states.setdefault(key, PoolState())
                    if state.running or now < state.next_at:
                        continue
                    state.running = True
                    self._spawn(self._step_logged(key, state))
                for key in list(self._released):
                    self._released.discard(key)
                    self._spawn(self._release(key))
                self.poller.evict_idle()
                self.versions.evict_idle()
                await sleep_or_stop(stop, TICK_SECONDS)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _step_logged(self, key: tuple[str, str], state: PoolState) -> None:
        period = MIN_POLL_SECONDS
        try:
            await self.step(key, state)
        except NotLeader:
            pass
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("autoscaler step for %s/%s: API server unreachable: %s", *key, exc)
        except Exception:
            log.exception("autoscaler step failed for %s/%s", *key)
        finally:
            with contextlib.suppress(Exception):
                spec = (self.view.pool(key) or {})["spec"]["autoscaling"]
                period = poll_period(spec["pollIntervalSeconds"], at_zero=state.at_zero)
            state.next_at = self.clock() + period
            state.running = False

    async def step(self, key: tuple[str, str], state: PoolState) -> Decision | None:
        """One observe -> decide -> report -> write round for one pool."""
        ns, name = key
        state.at_zero = False
        per_version = versioned_target(self.view, key)
        if per_version is not None:
            return await self.step_versions(key, state, *per_version)
        found = builtin_target(self.view, key)
        if found is None:
            return None
        body, resolved, deployment = found
        pool = resolved.pool
        spec = pool.spec.autoscaling
        assert spec is not None
        dep_spec = deployment.get("spec") or {}
        current = int(dep_spec["replicas"]) if dep_spec.get("replicas") is not None else 1
        policy = Policy.from_spec(spec)

        gpu: tuple[int, str] | None = None
        if pool.spec.gpu is not None:
            gpu = unschedulable_gpu_pods(self.view.pods_of(ns, name), pool.spec.gpu.resource_name)

        problem: tuple[Reason, str] | None = None
        reading: Reading | None = None
        try:
            conn = connection_for(
                pool, self.view.secrets_in(resolved.secrets_namespace), resolved.secrets_namespace
            )
        except CredentialsError as exc:
            problem = (Reason.CREDENTIALS_UNAVAILABLE, f"holding {current} replicas: {exc}")
            observation = Observation(current, None, error=str(exc))
        else:
            state.follow((pool.spec.task_queue, conn.fingerprint()))
            reading = await self.poller.observe(
                conn,
                pool.spec.task_queue,
                max_age=poll_period(spec.poll_interval_seconds, at_zero=current == 0),
                # from 0 the first worker waits on this poll: read the live root-partition hint
                hint=current == 0,
                # the guard's count only matters on the way to zero (visibility is rate limited)
                count_running=policy.min_replicas == 0
                and current > 0
                and bool(pool.spec.workflows),
                types=served_types(bool(pool.spec.workflows), bool(pool.spec.activities)),
            )
            observation = Observation(
                current,
                reading.backlog,
                error=reading.error,
                replica_ceiling=current if gpu and gpu[0] else None,
                ready_replicas=int((deployment.get("status") or {}).get("readyReplicas") or 0),
            )
        decision = decide(observation, state.history, policy, self.clock())
        state.history = decision.history
        state.at_zero = decision.replicas == 0

        metrics.DECISIONS.labels(ns, name, decision.direction).inc()
        metrics.DESIRED.labels(ns, name).set(decision.replicas)
        if decision.backlog is not None:
            metrics.BACKLOG.labels(ns, name).set(decision.backlog)

        if decision.replicas != current:
            if pool.spec.versioning is None:  # a versioned pool's builds are the reconciler's
                await self.kube.apply_replicas(ns, name, decision.replicas, self.manager)
            state.last_scale_time = rfc3339(time.time())
            # How old the reading behind the write is (the bench's per-trial timeline).
            age = (
                f" (backlog read {time.time() - reading.observed_at:.2f}s before)"
                if reading
                else ""
            )
            log.info("scaled %s/%s: %s%s", ns, name, decision.message, age)
            await self.kube.try_event(
                {"apiVersion": api.API_VERSION, "kind": api.KIND, **body},
                reason=Reason.SCALED_UP if decision.replicas > current else Reason.SCALED_DOWN,
                message=decision.message,
            )

        await self._write_status(
            pool, body.get("status") or {}, state, reading, decision, problem, gpu, self.clock()
        )
        return decision

    async def _write_status(
        self,
        pool: api.TemporalWorkerPool,
        live: Mapping[str, Any],
        state: PoolState,
        reading: Reading | None,
        decision: Decision,
        problem: tuple[Reason, str] | None,
        gpu: tuple[int, str] | None,
        now: float,
        versions: list[dict[str, Any]] | None = None,
    ) -> None:
        conditions = scaler_conditions(pool, reading, decision, problem=problem, gpu=gpu)
        core = status_core(decision, conditions, state.last_scale_time)
        core["versionReplicas"] = versions
        if core == state.last_core and now - state.last_status_at < STATUS_REFRESH_SECONDS:
            return
        status = scaler_status(
            pool, live, reading, decision, conditions, state.last_scale_time, now=time.time()
        )
        if versions is not None:
            status["versionReplicas"] = versions
        await self.kube.apply_status(
            POOL_STATUS, pool.namespace, pool.name, status, manager=self.manager
        )
        state.last_core, state.last_status_at = core, now

    async def _release(self, key: tuple[str, str]) -> None:
        """The pool left the Builtin engine: drop our status fields and conditions.

        Applying an empty status with our field manager removes exactly what this manager owned.
        """
        with contextlib.suppress(Exception):
            await self.kube.apply_status(POOL_STATUS, key[0], key[1], {}, manager=self.manager)

    async def step_versions(
        self,
        key: tuple[str, str],
        state: PoolState,
        body: dict[str, Any],
        resolved: Resolved,
        builds: list[tuple[VersionStatus, dict[str, Any]]],
    ) -> Decision | None:
        """One round for a versioned pool with a version serving new work: one backlog read
        per live version, one decision per version (scaling/versions.py), heartbeats read only
        when a version would scale down; the reconciler applies each decision to its build."""
        ns, _ = key
        pool = resolved.pool
        spec = pool.spec.autoscaling
        assert spec is not None
        assert pool.spec.versioning is not None
        status = body.get("status") or {}
        deployment = str(
            status.get("workerDeploymentName")
            or pool.spec.versioning.effective_deployment_name(ns, pool.name)
        )
        target = str(status.get("targetBuildId") or "")
        policy = Policy.from_spec(spec)
        period = poll_period(spec.poll_interval_seconds)
        types = served_types(bool(pool.spec.workflows), bool(pool.spec.activities))
        inputs = [
            VersionInput(
                build_id=v.build_id,
                state=v.state,
                current_replicas=int((dep.get("spec") or {}).get("replicas") or 0),
                ready_replicas=int((dep.get("status") or {}).get("readyReplicas") or 0),
                ramp_percentage=v.ramp_percentage,
                open_pinned=v.open_pinned_workflows,
                target=v.build_id == target,
            )
            for v, dep in builds
        ]
        conn: Connection | None = None
        problem: tuple[Reason, str] | None = None
        try:
            found = connection_for(
                pool, self.view.secrets_in(resolved.secrets_namespace), resolved.secrets_namespace
            )
        except CredentialsError as exc:
            inputs = [replace(v, error=str(exc)) for v in inputs]
            problem = (Reason.CREDENTIALS_UNAVAILABLE, str(exc))
        else:
            conn = found
            state.follow((pool.spec.task_queue, found.fingerprint()))
            wanted = set(described(inputs))
            readings = await asyncio.gather(
                *(
                    self.versions.version(
                        found,
                        deployment,
                        v.build_id,
                        pool.spec.task_queue,
                        max_age=period,
                        types=types,
                    )
                    for v in inputs
                    if v.build_id in wanted
                )
            )
            asked = [v.build_id for v in inputs if v.build_id in wanted]
            by_build = dict(zip(asked, readings, strict=True))
            inputs = [_with_reading(v, by_build.get(v.build_id)) for v in inputs]
        now = self.clock()
        decisions = decide_versions(inputs, state.versions, policy, now)
        current = {v.build_id: v.current_replicas for v in inputs}
        if conn is not None and any(d.replicas < current[d.build_id] for d in decisions):
            # Slot use matters only on the way down: one ListWorkers, then decide again.
            use = await self.versions.workers(
                conn, deployment, pool.spec.task_queue, max_age=period
            )
            if use is not None:
                inputs = [
                    replace(
                        v, busy_workers=use[v.build_id].busy_workers if v.build_id in use else 0
                    )
                    for v in inputs
                ]
                decisions = decide_versions(inputs, state.versions, policy, now)
        state.versions = {d.build_id: d.history for d in decisions}

        new_work = [d for d in decisions if d.share is not None]
        total = sum(d.replicas for d in new_work)
        backlog = sum(d.backlog or 0 for d in new_work) if new_work else None
        failed = next((v.error for v in inputs if v.error), None)
        message = "; ".join(d.message for d in decisions)
        summary = Decision(
            total,
            message,
            History(),
            direction="none",
            backlog=None if failed else backlog,
        )
        reading = _total_reading(inputs, failed)
        metrics.DESIRED.labels(*key).set(total)
        if summary.backlog is not None:
            metrics.BACKLOG.labels(*key).set(summary.backlog)
        for d in decisions:
            was = current[d.build_id]
            if d.replicas == was:
                continue
            metrics.DECISIONS.labels(*key, "up" if d.replicas > was else "down").inc()
            state.last_scale_time = rfc3339(time.time())
            log.info("scaled %s/%s: %s", *key, d.message)
            await self.kube.try_event(
                {"apiVersion": api.API_VERSION, "kind": api.KIND, **body},
                reason=Reason.SCALED_UP if d.replicas > was else Reason.SCALED_DOWN,
                message=d.message,
            )
        entries = [
            {"buildId": d.build_id, "desiredReplicas": d.replicas}
            | ({"backlog": d.backlog} if d.backlog is not None else {})
            for d in sorted(decisions, key=lambda d: d.build_id)
        ]
        await self._write_status(
            pool, status, state, reading, summary, problem, None, self.clock(), entries
        )
        return summary
