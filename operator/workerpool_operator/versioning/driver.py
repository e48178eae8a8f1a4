"""The Temporal side of a versioned pool's reconcile: read the Worker Deployment before the plan
(`observe`), carry the routing plan's calls out after it (`carry_out`).

Both go through the shared client of the pool's connection (`temporal.clients`), and neither
decides anything: `routing.plan` does. Errors become words for the pool's status, never a
traceback loop: the plan then holds every build where it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.reconcile.model import VersioningObserved
from workerpool_operator.reconcile.versioned import leaving
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import (
    CredentialsError,
    Unresolved,
    connection_for,
)
from workerpool_operator.versioning.execute import (
    Backoff,
    describe_call,
    execute,
    observe_pool,
    start_gate,
)
from workerpool_operator.versioning.model import (
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


@dataclass
class Carried:
    """What became of a routing plan's calls."""

    done: list[Call] = field(default_factory=list)
    refused: str = ""  # Temporal's answer to the first refused call, or why nothing was tried


class VersioningDriver:
    def __init__(self, view: ClusterView, clients: TemporalClients, identity: str) -> None:
        self.view = view
        self.clients = clients
        self.identity = identity

    async def _client(self, pool: api.TemporalWorkerPool, body: Mapping[str, Any]) -> Client:
        resolved = self.view.resolve(pool, body)
        if isinstance(resolved, Unresolved):
            raise CredentialsError(resolved.message)
        conn = connection_for(
            resolved.pool,
            self.view.secrets_in(resolved.secrets_namespace),
            resolved.secrets_namespace,
        )
        return await self.clients.get(conn)

    async def observe(self, body: Mapping[str, Any]) -> VersioningObserved | None:
        """The Worker Deployment as Temporal has it; None for an unversioned or invalid pool."""
        try:
            pool = api.TemporalWorkerPool.from_body(body)
        except ValidationError:
            return None
        versioning = pool.spec.versioning
        leaving_to = leaving(body, self.view.builds_of(pool.namespace, pool.name))
        if versioning is None and leaving_to is None:
            return None
        now = datetime.now(UTC)
        gate = None
        if versioning is not None:
            deployment = versioning.effective_deployment_name(pool.namespace, pool.name)
            target = target_build_id(pool)
            if versioning.gate is not None:
                gate = gate_workflow_id(deployment, target)
        else:
            assert leaving_to is not None
            deployment, target = leaving_to, ""  # builds drain to the unversioned workers
        try:
            client = await self._client(pool, body)
            observation = await asyncio.wait_for(
                observe_pool(
                    client,
                    deployment,
                    target,
                    pool.spec.task_queue,
                    gate,
                    analysis=versioning is not None and versioning.analysis is not None,
                    steps=[
                        (
                            s.ramp_percentage,
                            gate_workflow_id(deployment, target, i) if s.gate else None,
                        )
                        for i, s in enumerate(versioning.steps if versioning else ())
                    ],
                ),
                TEMPORAL_TIMEOUT_SECONDS,
            )
        except (RPCError, Backoff, CredentialsError, TimeoutError, OSError, RuntimeError) as exc:
            metrics.TEMPORAL_CALLS.labels("DescribeWorkerDeployment", "error").inc()
            log.warning("%s/%s: Worker Deployment not read: %s", *_key(pool), _words(exc))
            return VersioningObserved(now=now, identity=self.identity, error=_words(exc))
        # One Describe, one exact count per version, the gate and the unversioned pollers.
        calls = metrics.TEMPORAL_CALLS
        calls.labels("DescribeWorkerDeployment", "ok").inc()
        calls.labels("CountWorkflowExecutions", "ok").inc(len(observation.temporal.versions))
        if observation.gate is not None:
            calls.labels("DescribeWorkflowExecution", "ok").inc()
        if observation.step_gate is not None:
            calls.labels("DescribeWorkflowExecution", "ok").inc()
        if observation.analysis is not None:
            calls.labels("CountWorkflowExecutions", "ok").inc(2)
        if observation.temporal.current_build is None or not target:
            calls.labels("DescribeTaskQueue", "ok").inc()
        return VersioningObserved(now=now, identity=self.identity, observation=observation)

    async def carry_out(
        self,
        body: Mapping[str, Any],
        routing: RoutingPlan,
        conflict_token: bytes,
        deployment: str,
    ) -> Carried:
        """The plan's routing calls in order (with the observed conflict token), then its gate."""
        out = Carried()
        if not routing.calls and routing.start_gate is None:
            return out
        pool = api.TemporalWorkerPool.from_body(body)
        try:
            client = await self._client(pool, body)
            if routing.calls:
                done = await asyncio.wait_for(
                    execute(client, deployment, self.identity, conflict_token, routing.calls),
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
                    log.info("gate of %s/%s not started yet: %s", *_key(pool), problem)
        except (RPCError, Backoff, CredentialsError, TimeoutError, OSError, RuntimeError) as exc:
            out.refused = out.refused or f"routing change not made: {_words(exc)}"
        for call in out.done:
            log.info("%s/%s: %s", *_key(pool), describe_call(call))
        if out.refused:
            log.warning("%s/%s: %s", *_key(pool), out.refused)
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


def _key(pool: api.TemporalWorkerPool) -> tuple[str, str]:
    return pool.namespace, pool.name


def _words(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"Temporal did not answer within {TEMPORAL_TIMEOUT_SECONDS:g}s"
    if isinstance(exc, RPCError):
        return f"{exc.status.name}: {exc.message}"
    return str(exc) or type(exc).__name__
