"""The Temporal side of a versioned pool's reconcile: read the Worker Deployment before the plan
(`observe`), carry the routing plan's calls out after it (`carry_out`).

Both go through the shared client of the pool's connection (`temporal.clients`), and neither
decides anything: `routing.plan` does. Errors become words for the pool's status, never a
traceback loop: the plan then holds every build where it is.

A reading serves every reconcile of the pool until the look its plan asked for (`hold`): a
child's status moving or the operator's own status write plans again from it, with the clock
moved on, instead of asking Temporal the same questions again. A spec change, another
connection, the target build's ready replicas changing (its workers polling register its
version), a routing call made (`carry_out`) or the look being due reads afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.service import RPCError

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kube.cache import Key
from workerpool_operator.names import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from workerpool_operator.reconcile.model import VersioningObserved
from workerpool_operator.reconcile.versioned import leaving
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.render.deployment import render_deployment
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import (
    Connection,
    CredentialsError,
    Unresolved,
    connection_for,
)
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL, template_hash
from workerpool_operator.versioning.execute import (
    Backoff,
    describe_call,
    execute,
    observe_pool,
    start_gate,
)
from workerpool_operator.versioning.group import Group, Member, form, standing_verdicts
from workerpool_operator.versioning.model import (
    DEFAULT_VERSION_CAP,
    Call,
    DeleteVersion,
    RoutingPlan,
    SetCurrent,
    SetRamping,
    gate_workflow_id,
)

log = logging.getLogger(__name__)

# One pass's reads and calls together; a hanging server must not hold a reconcile worker.
TEMPORAL_TIMEOUT_SECONDS = 15.0


class ConnectionUnresolved(Exception):
    """The pool's connection does not resolve (its TemporalConnection is missing, or does not
    admit the pool): Temporal is not asked, and the pool's status already says why."""


@dataclass
class Carried:
    """What became of a routing plan's calls."""

    done: list[Call] = field(default_factory=list)
    refused: str = ""  # Temporal's answer to the first refused call, or why nothing was tried


@dataclass(frozen=True)
class _Reading:
    """One pool's last reading, what it was taken for, and until when it serves."""

    observed: VersioningObserved
    basis: tuple[object, ...]  # generation, connection, names, target's ready replicas
    taken: float  # the driver's clock
    until: float  # reconciles before this plan from it; from this on, Temporal is read again


class VersioningDriver:
    def __init__(
        self,
        view: ClusterView,
        clients: TemporalClients,
        identity: str,
        version_cap: int = DEFAULT_VERSION_CAP,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = view
        self.clients = clients
        self.identity = identity
        self._clock = clock
        self._readings: dict[Key, _Reading] = {}
        self.version_cap = version_cap  # the server's matching.maxVersionsInDeployment

    def _resolve(
        self, pool: api.TemporalWorkerPool, body: Mapping[str, Any]
    ) -> tuple[api.TemporalWorkerPool, Connection]:
        """The pool with its connection filled in (what its build ID is rendered from) and the
        Temporal connection, credentials included."""
        resolved = self.view.resolve(pool, body)
        if isinstance(resolved, Unresolved):
            raise ConnectionUnresolved(resolved.message)
        conn = connection_for(
            resolved.pool,
            self.view.secrets_in(resolved.secrets_namespace),
            resolved.secrets_namespace,
        )
        return resolved.pool, conn

    async def observe(self, body: Mapping[str, Any]) -> VersioningObserved | None:
        """The Worker Deployment as Temporal has it; None for an unversioned or invalid pool.
        A reading still held for the pool (see `hold`) is handed out again, with `now` moved
        on, when it was taken for the same spec generation, connection, names and ready
        replicas of the target build."""
        try:
            pool = api.TemporalWorkerPool.from_body(body)
        except ValidationError:
            return None
        key = _key(pool)
        versioning = pool.spec.versioning
        leaving_to = leaving(body, self.view.builds_of(*key))
        if versioning is None and leaving_to is None:
            self.forget(key)
            return None
        now = datetime.now(UTC)
        if versioning is not None:
            deployment = versioning.effective_deployment_name(pool.namespace, pool.name)
        else:
            assert leaving_to is not None
            deployment = leaving_to  # builds drain to the unversioned workers
        base = VersioningObserved(
            now=now, identity=self.identity, deployment=deployment, version_cap=self.version_cap
        )
        try:
            pool, conn = self._resolve(pool, body)
        except (ConnectionUnresolved, CredentialsError) as exc:
            self.forget(key)
            log.warning("%s/%s: Worker Deployment not read: %s", *key, _words(exc))
            return replace(base, error=_words(exc))
        target, gate, group = "", None, None
        if versioning is not None:
            group = self.group(pool.namespace, deployment)
            base = replace(base, group=group)
            target = group.build_id if group is not None else target_build_id(pool)
            if versioning.gate is not None:
                gate = gate_workflow_id(deployment, target)
        generation = (body.get("metadata") or {}).get("generation")
        ready = self._ready(key, target)  # the target's workers coming up: registration is near
        basis = (generation, conn, deployment, target, pool.spec.task_queue, gate, ready, group)
        held = self._readings.get(key)
        if held is not None and held.basis == basis and self._clock() < held.until:
            return replace(held.observed, now=now)
        taken = self._clock()
        rules = versioning.analysis if versioning is not None else None
        analysis = rules is not None
        task_analysis = rules is not None and (
            rules.max_workflow_task_failure_percent is not None
            or rules.max_activity_failure_percent is not None
        )
        steps = [
            (s.ramp_percentage, gate_workflow_id(deployment, target, i) if s.gate else None)
            for i, s in enumerate(versioning.steps if versioning is not None else ())
        ]
        observed = await self._read(
            key,
            replace(base, connection=conn),
            pool,
            target,
            gate,
            analysis=analysis,
            steps=steps,
            grouped=group is not None,
            task_analysis=task_analysis,
        )
        self._readings[key] = _Reading(observed, basis, taken, until=taken)
        return observed

    def group(self, namespace: str, deployment: str) -> Group | None:
        """The release group of the pools in `namespace` naming `deployment`, from the cache
        (versioning/group.py decides); None for a pool alone."""
        members, elsewhere = [], []
        for body in self.view.pools_naming(deployment):
            meta = body.get("metadata") or {}
            name = str(meta.get("name"))
            if meta.get("namespace") != namespace:
                elsewhere.append(f"{meta.get('namespace')}/{name}")
                continue
            ready = {
                str(d["metadata"]["labels"][BUILD_ID_LABEL]): int(
                    (d.get("status") or {}).get("readyReplicas") or 0
                )
                for d in self.view.builds_of(namespace, name)
            }
            try:
                pool = api.TemporalWorkerPool.from_body(body)
            except ValidationError:
                continue  # an invalid pool is reported on its own and runs no build
            assert pool.spec.versioning is not None
            asked = {
                k: str(v)
                for k, v in (meta.get("annotations") or {}).items()
                if k in (PROMOTE_ANNOTATION, ABORT_ANNOTATION)
            }
            verdicts = standing_verdicts(
                (body.get("status") or {}).get("versions") or [], int(meta.get("generation") or 0)
            )
            member = Member(
                name,
                pool.spec.versioning,
                pool.spec.task_queue,
                ready=ready,
                annotations=asked,
                rejected=verdicts,
            )
            resolved = self.view.resolve(pool, body)
            if isinstance(resolved, Unresolved):
                members.append(replace(member, problem=resolved.message))
                continue
            template = render_deployment(resolved.pool, replicas=None)["spec"]["template"]
            image = resolved.pool.spec.image.reference
            members.append(replace(member, image=image, template_hash=template_hash(template)))
        return form(deployment, members, elsewhere)

    def _ready(self, key: Key, build: str) -> int:
        """Ready replicas of the build's Deployment in the cache (the runtime is ready once its
        worker polls, which is what registers the build's version in Temporal)."""
        for dep in self.view.builds_of(*key):
            if (dep.get("metadata") or {}).get("labels", {}).get(BUILD_ID_LABEL) == build:
                return int((dep.get("status") or {}).get("readyReplicas") or 0)
        return 0

    async def _read(
        self,
        key: Key,
        base: VersioningObserved,
        pool: api.TemporalWorkerPool,
        target: str,
        gate: str | None,
        *,
        analysis: bool,
        steps: Sequence[tuple[int, str | None]],
        grouped: bool = False,
        task_analysis: bool = False,
    ) -> VersioningObserved:
        assert base.connection is not None
        try:
            client = await self.clients.get(base.connection)
            observation = await asyncio.wait_for(
                observe_pool(
                    client,
                    base.deployment,
                    target,
                    pool.spec.task_queue,
                    gate,
                    analysis=analysis,
                    steps=steps,
                    grouped=grouped,
                    task_analysis=task_analysis,
                ),
                TEMPORAL_TIMEOUT_SECONDS,
            )
        except (RPCError, Backoff, TimeoutError, OSError, RuntimeError) as exc:
            metrics.TEMPORAL_CALLS.labels("DescribeWorkerDeployment", "error").inc()
            log.warning("%s/%s: Worker Deployment not read: %s", *key, _words(exc))
            return replace(base, error=_words(exc))
        # One Describe, one exact count per version, the gate and the unversioned pollers.
        calls = metrics.TEMPORAL_CALLS
        calls.labels("DescribeWorkerDeployment", "ok").inc()
        calls.labels("CountWorkflowExecutions", "ok").inc(len(observation.temporal.versions))
        if observation.gate is not None:
            calls.labels("DescribeWorkflowExecution", "ok").inc()
        if observation.step_gate is not None:
            calls.labels("DescribeWorkflowExecution", "ok").inc()
        judged = observation.analysis
        if judged is not None:
            if judged.closed is not None:
                calls.labels("CountWorkflowExecutions", "ok").inc(2)
            else:
                calls.labels("CountWorkflowExecutions", "error").inc()
            if task_analysis:
                calls.labels("ListWorkers", "ok" if judged.tasks is not None else "error").inc()
        if observation.temporal.current_build is None or not target:
            calls.labels("DescribeTaskQueue", "ok").inc()
        if observation.polled is not None:
            calls.labels("DescribeWorkerDeploymentVersion", "ok").inc()
        return replace(base, observation=observation)

    def hold(self, key: Key, seconds: float | None) -> None:
        """The plan made from the pool's reading looks again in `seconds` (None: never by
        itself): until then, the reading serves the pool's other reconciles. Counted from
        when it was read, so the look itself always reads afresh."""
        held = self._readings.get(key)
        if held is not None:
            until = held.taken + seconds if seconds is not None else held.taken
            self._readings[key] = replace(held, until=until)

    def forget(self, key: Key) -> None:
        """The next reconcile of the pool reads Temporal afresh."""
        self._readings.pop(key, None)

    def forget_all(self) -> None:
        """Leadership was (re)gained: what was read before may be stale by any amount."""
        self._readings.clear()

    async def carry_out(
        self, key: Key, observed: VersioningObserved, routing: RoutingPlan
    ) -> Carried:
        """The plan's routing calls in order (with the observed conflict token), then its gate,
        through the connection the observation was read with."""
        out = Carried()
        if not routing.calls and routing.start_gate is None:
            return out
        self.forget(key)  # Temporal's side changes now: the next pass reads what came of it
        if observed.observation is None or observed.connection is None:
            out.refused = "routing change not made: Temporal was not read"
            return out
        deployment = observed.deployment
        try:
            client = await self.clients.get(observed.connection)
            if routing.calls:
                token = observed.observation.temporal.conflict_token
                done = await asyncio.wait_for(
                    execute(client, deployment, self.identity, token, routing.calls),
                    TEMPORAL_TIMEOUT_SECONDS,
                )
                out.done = done.done
                for call in done.done:
                    metrics.TEMPORAL_CALLS.labels(rpc_name(call), "ok").inc()
                for call, _ in done.refused:
                    metrics.TEMPORAL_CALLS.labels(rpc_name(call), "error").inc()
                if done.refused:
                    call, why = done.refused[0]
                    out.refused = f"{describe_call(call)} refused by Temporal: {why}"
            if routing.start_gate is not None:
                problem = await asyncio.wait_for(
                    start_gate(client, deployment, routing.start_gate), TEMPORAL_TIMEOUT_SECONDS
                )
                result = "ok" if problem is None else "error"
                metrics.TEMPORAL_CALLS.labels("StartWorkflowExecution", result).inc()
                if problem is not None:
                    log.info("gate of %s/%s not started yet: %s", *key, problem)
        except (RPCError, Backoff, TimeoutError, OSError, RuntimeError) as exc:
            out.refused = out.refused or f"routing change not made: {_words(exc)}"
        for call in out.done:
            log.info("%s/%s: %s", *key, describe_call(call))
        if out.refused:
            log.warning("%s/%s: %s", *key, out.refused)
        return out


def rpc_name(call: Call) -> str:
    """The workflow-service RPC a call is made with (the metric's `method` label)."""
    if isinstance(call, SetCurrent):
        return "SetWorkerDeploymentCurrentVersion"
    if isinstance(call, SetRamping):
        return "SetWorkerDeploymentRampingVersion"
    if isinstance(call, DeleteVersion):
        return "DeleteWorkerDeploymentVersion"
    return "SetWorkerDeploymentManager"


def _key(pool: api.TemporalWorkerPool) -> Key:
    return pool.namespace, pool.name


def _words(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"Temporal did not answer within {TEMPORAL_TIMEOUT_SECONDS:g}s"
    if isinstance(exc, RPCError):
        return f"{exc.status.name}: {exc.message}"
    return str(exc) or type(exc).__name__
