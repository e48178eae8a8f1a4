"""A versioned pool's part of the plan, pure: its build Deployments (the routing pass of
versioning/pool.py, or only the target build while Temporal cannot be read), when to look
again, and what Ready means for it (the target build current and available)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from worker_runtime.contract import env_var
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.api.versioning import VersionStatus
from workerpool_operator.kinds import DEPLOYMENT, child
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.diff import up_to_date, with_hash
from workerpool_operator.reconcile.model import (
    ChildWrite,
    Observed,
    Plan,
    Revocation,
    controlled_by,
    pod_template_extras,
)
from workerpool_operator.reconcile.status import ConditionSpec
from workerpool_operator.render.autoscaling import (
    BuildScaler,
    render_build_scaler,
    render_trigger_authentication,
)
from workerpool_operator.render.deployment import render_deployment
from workerpool_operator.render.versioned import (
    render_build_deployment,
    target_build_id,
    with_connection,
)
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.build_id import deployment_name as build_deployment_name
from workerpool_operator.versioning.model import LIMIT_CONDITION as LIMIT
from workerpool_operator.versioning.model import ROLLOUT_CONDITION as ROLLOUT
from workerpool_operator.versioning.model import VersionPlan
from workerpool_operator.versioning.pool import plan_pass

# Versioned pools are looked at again this often: while a rollout moves (a build waiting for
# its first poll, a gate running), while a build drains (its last pinned workflow ending is no
# Kubernetes event: the exact count is read again) and at rest (routing changed by others).
ROLLOUT_POLL_SECONDS = 1.0
# What only a versioned pool's status carries: a pass that no longer sets one (a ramp ended,
# the pool left versioning) must write the status even when the rest is unchanged, so that
# server-side apply removes it.
STATUS_FIELDS = frozenset(
    {
        "versions",
        "workerDeploymentName",
        "currentBuildId",
        "targetBuildId",
        "rampPercentage",
        "releaseGroup",
    }
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


def scaler_owned(pool: api.TemporalWorkerPool) -> bool:
    """A versioned pool whose builds' replicas KEDA or an HPA owns (one per build)."""
    spec = pool.spec.autoscaling
    return pool.spec.versioning is not None and spec is not None and spec.engine != "Builtin"


def scalers_writable(pool: api.TemporalWorkerPool, keda_installed: bool) -> bool:
    """Whether the pool's per-build scalers can be written (KEDA's CRDs served, or HPA)."""
    spec = pool.spec.autoscaling
    return spec is not None and (spec.engine == "HPA" or keda_installed)


def _floor(pool: api.TemporalWorkerPool) -> int:
    spec = pool.spec.autoscaling
    assert spec is not None
    return spec.min_replicas


def build_scalers(
    pool: api.TemporalWorkerPool,
    versions: Sequence[VersionPlan],
    target: str,
    serving: Collection[str | None],
) -> list[BuildScaler]:
    """Which builds get a ScaledObject or HPA, and the fewest replicas each may be scaled to.

    - The target, until it is current: at least 1 (a version exists only after a worker of it
      polls; its gate and first share of work need workers). Once current: minReplicas.
    - Any other current build (the one a ramp moves work from): minReplicas.
    - A ramping build, or one this pass's calls demote (the calls may be refused): at least 1.
    - A Draining build, which has open pinned workflows by the exact count (or an unreadable
      count): at least 1. Its backlog can be 0 while its workers run long pinned workflows,
      and a backlog-only scaler would take them away.
    - Every other build (Drained, Inactive, superseded before it registered, retiring) has
      none: the routing pass scales it down and retires it after its sunset, as under Builtin.
    """
    floor = _floor(pool)
    out = []
    for v in versions:
        if v.delete:
            continue
        if v.state == "Current":
            least = floor
        elif v.build_id == target or v.state in ("Ramping", "Draining") or v.build_id in serving:
            least = max(1, floor)
        else:
            continue
        out.append(BuildScaler(v.build_id, v.deployment, least))
    return out


def plan_build_scalers(
    out: Plan,
    pool: api.TemporalWorkerPool,
    observed: Observed,
    wanted: Sequence[BuildScaler],
    *,
    only_missing: bool = False,
) -> None:
    """Write the wanted builds' scalers that differ from the cache and delete, by UID, the
    pool's other per-build scalers (`only_missing`: write only absent ones, delete none)."""
    live = {
        (str(o.get("kind")), str(o["metadata"]["name"])): o
        for o in observed.build_scalers
        if controlled_by(o, pool.uid)
    }
    authenticated = render_trigger_authentication(pool) is not None
    keep = set()
    for build in wanted:
        manifest = with_hash(render_build_scaler(pool, build, authenticated=authenticated))
        kind = child(manifest["apiVersion"], manifest["kind"])
        key = (kind.kind, build.deployment)
        keep.add(key)
        have = live.get(key)
        if only_missing and have is not None:
            continue
        if not up_to_date(manifest, have):
            out.writes.append(ChildWrite(kind, manifest, known=have is not None))
    if only_missing:
        return
    for key, obj in live.items():
        if key not in keep:
            meta = obj["metadata"]
            kind = child(str(obj.get("apiVersion")), key[0])
            out.drop.append(Revocation(kind, key[1], str(meta.get("uid") or "")))


def _without_replicas(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in manifest["spec"].items() if k != "replicas"}
    return {**manifest, "spec": spec}


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
    *,
    keda_installed: bool = False,
) -> Mapping[str, Any] | None:
    """A versioned pool's Deployments: the routing pass (versioning/pool.py) when Temporal was
    read, else only the target build's Deployment made sure of (nothing scaled or deleted
    blind). Under KEDA or HPA, one scaler per live build (`build_scalers`), which then owns
    that build's replicas. Returns the target build's live Deployment (Ready and Progressing
    describe it)."""
    leaving_to = leaving(pool_body, observed.builds)
    vo = observed.versioning
    group = vo.group if vo is not None and leaving_to is None else None
    target = ""
    if leaving_to is None:
        target = group.build_id if group is not None else target_build_id(pool)
    builds = build_deployments(pool, observed)
    by_build = {str(b["metadata"]["labels"][BUILD_ID_LABEL]): b for b in builds}
    by_name = {str(b["metadata"]["name"]): b for b in builds}
    desired = desired_replicas(pool, pool_body)
    scaled = scaler_owned(pool)
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
            replicas = None if scaled else max(1, desired)
            manifest = render_build_deployment(pool, target, replicas=replicas)
            _add_build_write(out, pool, manifest, None, digest)
        if scaled and target and scalers_writable(pool, keda_installed):
            # The target's scaler only made sure of, at least one replica (it must register):
            # nothing is changed or deleted blind.
            least = max(1, _floor(pool))
            name = build_deployment_name(pool.name, target)
            plan_build_scalers(
                out, pool, observed, [BuildScaler(target, name, least)], only_missing=True
            )
        kept = ("currentBuildId", "rampPercentage", "workerDeploymentName", "versions",
                "releaseGroup")  # fmt: skip
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
        group=group,
    )
    wanted: list[BuildScaler] = []
    if scaled and scalers_writable(pool, keda_installed):
        t = vo.observation.temporal
        wanted = build_scalers(
            pool, vp.routing.versions, target, {t.current_build, t.ramping_build}
        )
    # Every live build scaler that is not wanted goes (a drained or retired build, the pool
    # left versioning or KEDA/HPA): the routing pass owns those builds' replicas again.
    plan_build_scalers(out, pool, observed, wanted)
    if scaled:
        # KEDA or the HPA owns the replicas of every build it scales; the target's Deployment
        # is applied without them (created at Kubernetes' default of 1, enough to register).
        owned = {b.deployment for b in wanted}
        vp = replace(
            vp,
            apply=[_without_replicas(m) for m in vp.apply],
            scale={k: v for k, v in vp.scale.items() if k not in owned},
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
    following = routing.conditions[0].reason == Reason.RELEASE_GROUP_FOLLOWING
    if routing.conditions[0].status != "True" and not following:
        poll = ROLLOUT_POLL_SECONDS
    elif following or any(v.state == "Draining" for v in routing.versions):
        # A release group's follower makes no routing call: it reads Temporal only for its own
        # status and drains, so the group's deployment is not read once a second per member.
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
    if routed.reason in (
        Reason.GATE_FAILED,
        Reason.ANALYSIS_FAILED,
        Reason.OWNED_ELSEWHERE,
        Reason.RELEASE_GROUP_INVALID,
    ):
        out.conditions[degraded] = ConditionSpec(degraded, "True", routed.reason, routed.message)
