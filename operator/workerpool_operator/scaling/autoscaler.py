"""The Builtin engine: poll backlog, decide, write Deployment replicas and the pool's status.

`step` is one iteration for one pool; `run_autoscaler` loops it for a kopf daemon. The
Kubernetes client is blocking, so every `Kube` call runs in a thread (`asyncio.to_thread`).
Everything written here uses its own field manager (`workerpool-autoscaler`): the Deployment's
`spec.replicas` (the reconciler never applies it for autoscaled pools) and the status fields
`desiredReplicas`, `backlog`, `lastScaleTime` and the conditions AutoscalingReady,
BacklogAvailable and GPUCapacityAvailable (server-side apply keeps each manager's entries apart).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from worker_runtime import contract
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kube import Kube
from workerpool_operator.render.common import selector_string
from workerpool_operator.scaling.backlog import (
    MIN_POLL_SECONDS,
    BacklogPoller,
    Connection,
    Reading,
    poll_period,
)
from workerpool_operator.scaling.decide import Decision, History, Observation, Policy, decide
from workerpool_operator.status import ConditionSpec, merge_conditions

log = logging.getLogger(__name__)

MANAGER = "workerpool-autoscaler"
# Rewrite an unchanged status (only backlog age/observedAt moved) at most this often.
STATUS_REFRESH_SECONDS = 60.0

BACKLOG = Gauge(
    "workerpool_backlog", "Task-queue backlog the autoscaler last saw.", ["namespace", "pool"]
)
DESIRED = Gauge(
    "workerpool_desired_replicas", "Replicas the autoscaler asks for.", ["namespace", "pool"]
)
DECISIONS = Counter(
    "workerpool_scale_decisions_total",
    "Autoscaler decisions by direction (up, down, none).",
    ["namespace", "pool", "direction"],
)


class Stopped(Protocol):
    """kopf's `stopped` flag (DaemonStopped) or an asyncio.Event."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[Any]: ...


class CredentialsError(Exception):
    """A Secret the connection needs is missing or lacks a key."""


@dataclass
class PoolState:
    """What one pool's loop remembers between steps."""

    history: History = field(default_factory=History)
    last_core: dict[str, Any] | None = None
    last_status_at: float = -1e9
    last_scale_time: str | None = None


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_value(kube: Kube, namespace: str, name: str, key: str) -> bytes | None:
    secret = kube.get("v1", "Secret", namespace, name)
    if secret is None:
        raise CredentialsError(f"Secret {namespace}/{name} not found")
    raw = (secret.get("data") or {}).get(key)
    return None if raw is None else base64.b64decode(raw)


def connection_for(kube: Kube, pool: api.TemporalWorkerPool) -> Connection:
    """The pool's Temporal connection with TLS material and API key read from its Secrets."""
    conn = pool.spec.connection
    ca = cert = key = None
    server_name = None
    if conn.tls is not None:
        server_name = conn.tls.server_name
        if conn.tls.secret_name:
            ns, name = pool.namespace, conn.tls.secret_name
            ca = _secret_value(kube, ns, name, contract.TLS_CA_FILE)
            cert = _secret_value(kube, ns, name, contract.TLS_CERT_FILE)
            key = _secret_value(kube, ns, name, contract.TLS_KEY_FILE)
    api_key = None
    if conn.api_key_secret_ref is not None:
        ref = conn.api_key_secret_ref
        value = _secret_value(kube, pool.namespace, ref.name, ref.key)
        if value is None:
            raise CredentialsError(f"Secret {pool.namespace}/{ref.name} has no key {ref.key}")
        api_key = value.decode().strip()
    return Connection(
        address=conn.address,
        namespace=conn.namespace,
        tls=conn.tls is not None,
        server_root_ca=ca,
        client_cert=cert,
        client_key=key,
        server_name=server_name,
        api_key=api_key,
    )


def unschedulable_gpu_pods(pods: list[dict[str, Any]], resource: str) -> tuple[int, str]:
    """Pods Pending because no node has free `resource`, and one scheduler message."""
    count, message = 0, ""
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
                and resource in (cond.get("message") or "")
            ):
                count += 1
                message = message or str(cond.get("message"))
    return count, message


def _conditions(
    pool: api.TemporalWorkerPool,
    reading: Reading | None,
    decision: Decision,
    *,
    problem: tuple[str, str] | None,
    gpu: tuple[int, str] | None,
) -> list[ConditionSpec]:
    out: list[ConditionSpec] = []
    if problem is not None:
        reason, message = problem
        out.append(ConditionSpec(api.CONDITION_AUTOSCALING, "False", reason, message))
        out.append(ConditionSpec(api.CONDITION_BACKLOG, "Unknown", reason, message))
    elif reading is None or reading.backlog is None:
        message = f"holding {decision.replicas} replicas: {reading.error if reading else '?'}"
        out.append(
            ConditionSpec(api.CONDITION_AUTOSCALING, "False", "TemporalUnavailable", message)
        )
        out.append(ConditionSpec(api.CONDITION_BACKLOG, "False", "TemporalUnavailable", message))
    else:
        b = reading.backlog
        wf = reading.workflow.backlog if reading.workflow else 0
        act = reading.activity.backlog if reading.activity else 0
        out.append(
            ConditionSpec(api.CONDITION_AUTOSCALING, "True", "BacklogPolled", decision.message)
        )
        out.append(
            ConditionSpec(
                api.CONDITION_BACKLOG,
                "True",
                "BacklogPolled",
                f"backlog {b.count} (workflow {wf}, activity {act}), {b.pollers} pollers",
            )
        )
    if pool.spec.gpu is not None and gpu is not None:
        pending, message = gpu
        if pending:
            out.append(
                ConditionSpec(
                    api.CONDITION_GPU_CAPACITY,
                    "False",
                    "InsufficientGPU",
                    f"{pending} pods Pending for lack of {pool.spec.gpu.resource_name}; not "
                    f"scaling up further: {message}",
                )
            )
        else:
            out.append(ConditionSpec(api.CONDITION_GPU_CAPACITY, "True", "GPUsScheduled"))
    return out


async def step(
    kube: Kube,
    body: Mapping[str, Any],
    poller: BacklogPoller,
    state: PoolState,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Decision | None:
    """One autoscaling iteration for one pool; None when the pool is not on the Builtin engine."""
    try:
        pool = api.TemporalWorkerPool.from_body(body)
    except ValidationError:
        return None  # the reconciler reports InvalidSpec
    spec = pool.spec.autoscaling
    if spec is None or spec.engine != "Builtin":
        return None
    ns, name = pool.namespace, pool.name
    deployment = await asyncio.to_thread(kube.get, "apps/v1", "Deployment", ns, name)
    if deployment is None:
        return None  # the reconciler has not created it yet
    dep_spec = deployment.get("spec") or {}
    current = int(dep_spec["replicas"]) if dep_spec.get("replicas") is not None else 1
    policy = Policy.from_spec(spec)

    gpu: tuple[int, str] | None = None
    if pool.spec.gpu is not None:
        pods = await asyncio.to_thread(kube.list, "v1", "Pod", ns, selector_string(pool))
        gpu = unschedulable_gpu_pods(pods, pool.spec.gpu.resource_name)

    problem: tuple[str, str] | None = None
    reading: Reading | None = None
    try:
        conn = await asyncio.to_thread(connection_for, kube, pool)
    except CredentialsError as exc:
        problem = ("CredentialsUnavailable", f"holding {current} replicas: {exc}")
        observation = Observation(current, None, error=str(exc))
    else:
        reading = await poller.observe(
            conn,
            pool.spec.task_queue,
            max_age=poll_period(spec.poll_interval_seconds),
            # the guard's count only matters on the way to zero (visibility is rate limited)
            count_running=policy.min_replicas == 0 and current > 0 and bool(pool.spec.workflows),
        )
        observation = Observation(
            current,
            reading.backlog,
            error=reading.error,
            replica_ceiling=current if gpu and gpu[0] else None,
        )
    decision = decide(observation, state.history, policy, clock())
    state.history = decision.history

    DECISIONS.labels(ns, name, decision.direction).inc()
    DESIRED.labels(ns, name).set(decision.replicas)
    if decision.backlog is not None:
        BACKLOG.labels(ns, name).set(decision.backlog)

    if decision.replicas != current:
        await asyncio.to_thread(
            kube.patch_replicas, "apps/v1", "Deployment", ns, name, decision.replicas, MANAGER
        )
        state.last_scale_time = _rfc3339(time.time())
        log.info("scaled %s/%s: %s", ns, name, decision.message)
        involved = {"apiVersion": api.API_VERSION, "kind": api.KIND, **body}
        with contextlib.suppress(Exception):  # an Event is best effort
            await asyncio.to_thread(
                kube.event,
                involved,
                reason="ScaledUp" if decision.replicas > current else "ScaledDown",
                message=decision.message,
            )

    await _write_status(kube, body, pool, state, reading, decision, problem, gpu, clock())
    return decision


async def _write_status(
    kube: Kube,
    body: Mapping[str, Any],
    pool: api.TemporalWorkerPool,
    state: PoolState,
    reading: Reading | None,
    decision: Decision,
    problem: tuple[str, str] | None,
    gpu: tuple[int, str] | None,
    now: float,
) -> None:
    live = dict(body.get("status") or {})
    conditions = _conditions(pool, reading, decision, problem=problem, gpu=gpu)
    core: dict[str, Any] = {
        "desiredReplicas": decision.replicas,
        "backlog": decision.backlog,
        "conditions": [(c.type, c.status, c.reason, c.message) for c in conditions],
        "lastScaleTime": state.last_scale_time,
    }
    if core == state.last_core and now - state.last_status_at < STATUS_REFRESH_SECONDS:
        return
    status: dict[str, Any] = {
        "desiredReplicas": decision.replicas,
        "conditions": merge_conditions(
            live.get("conditions") or [],
            conditions,
            generation=pool.generation,
            now=_rfc3339(time.time()),
        ),
    }
    if reading is not None and reading.backlog is not None and decision.backlog is not None:
        status["backlog"] = {
            "count": decision.backlog,
            "ageSeconds": round(reading.backlog.age_seconds, 1),
            "observedAt": _rfc3339(reading.observed_at),
        }
    elif live.get("backlog"):
        status["backlog"] = live["backlog"]  # keep the last known reading during an outage
    last_scale = state.last_scale_time or live.get("lastScaleTime")
    if last_scale:
        status["lastScaleTime"] = last_scale
    await asyncio.to_thread(
        kube.apply_status,
        api.API_VERSION,
        api.KIND,
        pool.namespace,
        pool.name,
        status,
        live,
        manager=MANAGER,
    )
    state.last_core, state.last_status_at = core, now


async def _sleep(stopped: Stopped, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.ensure_future(stopped.wait()), timeout=seconds)


async def run_autoscaler(
    kube: Kube,
    body_getter: Callable[[], Mapping[str, Any]],
    poller: BacklogPoller,
    stopped: Stopped,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Loop `step` every poll period until `stopped` is set (a kopf daemon's body).

    `body_getter` returns the pool's latest body (kopf's daemon `body` is kept current, so
    `lambda: body` works). Errors are logged and retried next period; they never end the loop.
    """
    state = PoolState()
    ns = name = ""
    try:
        while not stopped.is_set():
            body = body_getter()
            meta = body.get("metadata") or {}
            ns, name = str(meta.get("namespace")), str(meta.get("name"))
            period = MIN_POLL_SECONDS
            with contextlib.suppress(Exception):
                period = poll_period(body["spec"]["autoscaling"]["pollIntervalSeconds"])
            try:
                await step(kube, body, poller, state, clock=clock)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("autoscaler step failed for %s/%s", ns, name)
            await _sleep(stopped, period)
    finally:
        if name:
            for gauge in (BACKLOG, DESIRED):
                with contextlib.suppress(KeyError):
                    gauge.remove(ns, name)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(_release_if_switched, kube, body_getter())


def _release_if_switched(kube: Kube, body: Mapping[str, Any]) -> None:
    """The pool left the Builtin engine: drop our status fields and conditions.

    Applying an empty status with our field manager removes exactly what this manager owned.
    Not on operator shutdown or pool deletion: the status stays true until we run again.
    """
    meta = body.get("metadata") or {}
    if not meta.get("name") or meta.get("deletionTimestamp"):
        return
    autoscaling = (body.get("spec") or {}).get("autoscaling") or {}
    if autoscaling and autoscaling.get("engine", "Builtin") == "Builtin":
        return
    kube.apply_status(
        api.API_VERSION, api.KIND, meta["namespace"], meta["name"], {}, None, manager=MANAGER
    )
