"""A versioned pool's part of the plan, pure: its build Deployments (the routing pass of
versioning/pool.py, or only the target build while Temporal cannot be read), when to look
again, and what Ready means for it (the target build current and available)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from worker_runtime.contract import env_var
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.api.versioning import VersionStatus
from workerpool_operator.kinds import DEPLOYMENT
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.diff import up_to_date, with_hash
from workerpool_operator.reconcile.model import (
    ChildWrite,
    Observed,
    Plan,
    controlled_by,
    pod_template_extras,
)
from workerpool_operator.reconcile.status import ConditionSpec
from workerpool_operator.render.deployment import render_deployment
from workerpool_operator.render.versioned import (
    render_build_deployment,
    target_build_id,
    with_connection,
)
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.model import LIMIT_CONDITION as LIMIT
from workerpool_operator.versioning.model import ROLLOUT_CONDITION as ROLLOUT
from workerpool_operator.versioning.pool import plan_pass

# Versioned pools are looked at again this often: while a rollout moves (a build waiting for
# its first poll, a gate running), while a build drains (its last pinned workflow ending is no
# Kubernetes event: the exact count is read again) and at rest (routing changed by others).
ROLLOUT_POLL_SECONDS = 1.0
# What only a versioned pool's status carries: a pass that no longer sets one (a ramp ended,
# the pool left versioning) must write the status even when the rest is unchanged, so that
# server-side apply removes it.
STATUS_FIELDS = frozenset(
    {"versions", "workerDeploymentName", "currentBuildId", "targetBuildId", "rampPercentage"}
)
STATUS_CONDITIONS = frozenset({ROLLOUT, LIMIT})
DRAIN_POLL_SECONDS = 3.0
STEADY_POLL_SECONDS = 30.0


def leaving(pool_body: Mapping[str, Any], builds: Sequence[Mapping[str, Any]]) -> str | None:
    """A pool whose spec.versioning was removed while builds of it still run or are tracked:
    the Worker Deployment they registered in (status, else a build's own env, else the
    default name). None for every other pool."""
    if (pool_body.get("spec") or {}).get("versioning") is not None:
        return None
    status = pool_body.get("status") or {}
    if not status.get("versions"):
        return None
    name = status.get("workerDeploymentName")
    if name:
        return str(name)
    for build in builds:
        containers = build.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
        for c in containers or []:
            for e in c.get("env") or []:
                if e.get("name") == env_var("worker_deployment_name") and e.get("value"):
                    return str(e["value"])
    meta = pool_body.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


def build_deployments(pool: api.TemporalWorkerPool, observed: Observed) -> list[Mapping[str, Any]]:
    """The pool's per-build Deployments that it controls (a foreign one is never touched)."""
    return [b for b in observed.builds if controlled_by(b, pool.uid)]


def keeps_unversioned(pool_body: Mapping[str, Any], observed: Observed) -> bool:
    """Migration to versioning: the pool's unversioned Deployment keeps running until a build is
    current (its workers serve the unversioned work meanwhile), then it is pruned."""
    status = pool_body.get("status") or {}
    current = status.get("currentBuildId")
    vo = observed.versioning
    if vo is not None and vo.observation is not None:
        current = vo.observation.temporal.current_build
    return not current


def desired_replicas(pool: api.TemporalWorkerPool, pool_body: Mapping[str, Any]) -> int:
    """What the pool asks for new work: spec.replicas, or the Builtin scaler's decision."""
    autoscaling = pool.spec.autoscaling
    if autoscaling is None:
        return 1 if pool.spec.replicas is None else pool.spec.replicas
    decided = (pool_body.get("status") or {}).get("desiredReplicas")
    if decided is not None:
        return int(decided)
    return max(1, autoscaling.min_replicas)


def version_replicas(pool: api.TemporalWorkerPool, pool_body: Mapping[str, Any]) -> dict[str, int]:
    """The Builtin scaler's per-build decisions (status.versionReplicas), for a Builtin pool."""
    if pool.spec.autoscaling is None or pool.spec.autoscaling.engine != "Builtin":
        return {}
    out: dict[str, int] = {}
    for entry in (pool_body.get("status") or {}).get("versionReplicas") or []:
        try:
            out[str(entry["buildId"])] = int(entry["desiredReplicas"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def plan_builds(
    out: Plan,
    pool: api.TemporalWorkerPool,
    pool_body: Mapping[str, Any],
    observed: Observed,
    digest: str,
) -> Mapping[str, Any] | None:
    """A versioned pool's Deployments: the routing pass (versioning/pool.py) when Temporal was
    read, else only the target build's Deployment made sure of (nothing scaled or deleted
    blind). Returns the target build's live Deployment (Ready and Progressing describe it)."""
    leaving_to = leaving(pool_body, observed.builds)
    target = "" if leaving_to is not None else target_build_id(pool)
    builds = build_deployments(pool, observed)
    by_build = {str(b["metadata"]["labels"][BUILD_ID_LABEL]): b for b in builds}
    by_name = {str(b["metadata"]["name"]): b for b in builds}
    desired = desired_replicas(pool, pool_body)
    vo = observed.versioning
    if vo is None or vo.observation is None:
        reason = vo.error if vo is not None else "not read yet"
        out.conditions[ROLLOUT] = ConditionSpec(
            ROLLOUT,
            "Unknown",
            Reason.TEMPORAL_UNAVAILABLE,
            f"cannot read the Worker Deployment from Temporal ({reason}); routing and every "
            "build's replicas are held where they are",
        )
        out.requeue_after = DRAIN_POLL_SECONDS * 5
        status = pool_body.get("status") or {}
        if target and target not in by_build:
            manifest = render_build_deployment(pool, target, replicas=max(1, desired))
            _add_build_write(out, pool, manifest, None, digest)
        kept = ("currentBuildId", "rampPercentage", "workerDeploymentName", "versions")
        out.fields.update({k: status[k] for k in kept if k in status})
        if target:
            out.fields["targetBuildId"] = target
        return by_build.get(target)
    vp = plan_pass(
        pool,
        live=builds,
        observed=vo.observation,
        identity=vo.identity,
        now=vo.now,
        desired_replicas=desired,
        version_replicas=version_replicas(pool, pool_body),
        previous=stored_versions(pool_body),
        leaving=leaving_to,
        version_cap=vo.version_cap,
    )
    out.versioned = vp
    for manifest in vp.apply:
        _add_build_write(out, pool, manifest, by_name.get(manifest["metadata"]["name"]), digest)
    # Every other live build keeps its code but takes today's connection and credentials, so a
    # rotation or a move rolls each build in place instead of stranding its pinned work.
    connection = pod_template_extras(render_deployment(pool, replicas=None), pool, digest)
    for build, dep in by_build.items():
        name = str(dep["metadata"]["name"])
        if build == target or name in vp.delete:
            continue
        replicas = vp.scale.get(name, int((dep.get("spec") or {}).get("replicas") or 0))
        refreshed = with_connection(dep, connection, replicas=replicas)
        if refreshed is not None:
            out.writes.append(ChildWrite(DEPLOYMENT, with_hash(refreshed), known=True))
    for name in vp.delete:
        live = by_name.get(name)
        if live is not None:
            out.retire.append((name, str(live["metadata"].get("uid") or "")))
    routing = vp.routing
    if routing.conditions[0].status != "True":
        poll = ROLLOUT_POLL_SECONDS
    elif any(v.state == "Draining" for v in routing.versions):
        poll = DRAIN_POLL_SECONDS
    else:
        poll = STEADY_POLL_SECONDS
    out.requeue_after = min(poll, routing.requeue_after or poll)
    return by_build.get(target)


def stored_versions(pool_body: Mapping[str, Any]) -> list[VersionStatus]:
    """status.versions as the last pass wrote it (an entry that no longer parses is dropped:
    its build is then judged afresh)."""
    out = []
    for entry in (pool_body.get("status") or {}).get("versions") or []:
        try:
            out.append(VersionStatus.model_validate(entry))
        except ValidationError:
            continue
    return out


def _add_build_write(
    out: Plan,
    pool: api.TemporalWorkerPool,
    manifest: dict[str, Any],
    live: Mapping[str, Any] | None,
    digest: str,
) -> None:
    desired = with_hash(pod_template_extras(manifest, pool, digest))
    if not up_to_date(desired, live):
        out.writes.append(ChildWrite(DEPLOYMENT, desired, known=live is not None))


def routing_conditions(out: Plan) -> None:
    """Ready means the target build is current and its Deployment available: until routing is
    done, Ready says what the rollout waits for; a failed gate or routing owned by someone else
    is Degraded as well. VersionRollout and VersionLimit carry the routing plan's own words."""
    ready, degraded = api.CONDITION_READY, api.CONDITION_DEGRADED
    if out.versioned is not None and out.versioned.left:
        return  # an unversioned pool again: no versioning conditions
    if out.versioned is None:
        rollout = out.conditions.get(ROLLOUT)
        if rollout is not None and out.conditions[ready].status == "True":
            out.conditions[ready] = ConditionSpec(ready, "Unknown", rollout.reason, rollout.message)
        return
    for cond in out.versioned.routing.conditions:
        out.conditions[cond.type] = ConditionSpec(cond.type, cond.status, cond.reason, cond.message)
    routed = out.versioned.routing.conditions[0]
    if routed.status != "True" and out.conditions[ready].status == "True":
        out.conditions[ready] = ConditionSpec(ready, "False", routed.reason, routed.message)
    if routed.reason in (Reason.GATE_FAILED, Reason.ANALYSIS_FAILED, Reason.OWNED_ELSEWHERE):
        out.conditions[degraded] = ConditionSpec(degraded, "True", routed.reason, routed.message)
