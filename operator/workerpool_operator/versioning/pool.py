"""One pass of a versioned pool, pure: routing plan + per-build Deployments + status fields.

Composes `routing.plan()` with `render/versioned.py`: the target build's Deployment is rendered
in full from the spec; every other build's Deployment keeps the template it was created with and
only has its replicas set (re-rendering it from today's spec would run today's code under an old
build's name), or is deleted once its sunset is due.

For the executor: `scale` must not be server-side applied as a replicas-only manifest under the
field manager that applied the full Deployment (the apply would drop that manager's template
fields); use the scale subresource or a manager of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.api.versioning import (
    ReleaseGroupStatus,
    SunsetSpec,
    VersioningSpec,
    VersionStatus,
)
from workerpool_operator.names import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from workerpool_operator.render.common import Manifest
from workerpool_operator.render.versioned import render_build_deployment, target_build_id
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.group import Group
from workerpool_operator.versioning.group import state as group_state
from workerpool_operator.versioning.model import (
    DEFAULT_VERSION_CAP,
    BuildDeployment,
    Observation,
    RoutingInput,
    RoutingPlan,
)
from workerpool_operator.versioning.routing import (
    plan,
    status_versions,
)


@dataclass(frozen=True)
class VersionedPass:
    routing: RoutingPlan
    deployment: str  # the Temporal Worker Deployment the calls go to
    apply: list[Manifest] = field(default_factory=list)  # the target build's Deployment
    scale: dict[str, int] = field(default_factory=dict)  # other builds: Deployment -> replicas
    delete: list[str] = field(default_factory=list)  # Deployment names
    status: dict[str, Any] = field(default_factory=dict)  # status fields (camelCase)
    # The routing fields as Temporal left them when it refuses this pass's calls: the status
    # never names a build current (or a ramp) that Temporal did not take.
    status_if_refused: dict[str, Any] = field(default_factory=dict)
    left: bool = False  # the pool left versioning and its last build is retired everywhere


def build_deployments(live: Iterable[Mapping[str, Any]]) -> dict[str, BuildDeployment]:
    """The pool's per-build Deployments by build ID (from their build-id label): the replicas
    they are asked for and the ready ones."""
    out: dict[str, BuildDeployment] = {}
    for obj in live:
        meta = obj.get("metadata") or {}
        build = (meta.get("labels") or {}).get(BUILD_ID_LABEL)
        if not build:
            continue
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        out[str(build)] = BuildDeployment(
            name=str(meta.get("name")),
            replicas=int(spec.get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
        )
    return out


# A pool whose spec.versioning was removed: new work goes back to unversioned workers at once
# (once they poll), and each build is retired as soon as its last pinned workflow ends; the
# spec's own sunset settings left with it, and nothing is kept for a rollback to.
LEAVING = VersioningSpec(
    strategy="AllAtOnce",
    rollback_window_seconds=0,
    sunset=SunsetSpec(scale_down_delay_seconds=0, delete_delay_seconds=0),
    retention=0,
)


def _asked(
    pool: TemporalWorkerPool,
    field: str | None,
    annotation: str,
    target: str,
    group: Group | None = None,
) -> str:
    """Where a manual action for the target build comes from (spec field or annotation), or
    "" when none names it (an action naming another build is stale and ignored). In a release
    group, the annotation on any member counts."""
    name = annotation.removeprefix("workerpools.io/")
    if target and field == target:
        return f"spec.versioning.{name}"
    annotations = pool.metadata.get("annotations") or {}
    if target and annotations.get(annotation) == target:
        return f"annotation {annotation}"
    for key, member, value in group.annotations if group is not None else ():
        if target and key == annotation and value == target:
            return f"annotation {annotation} on pool {member}"
    return ""


def plan_pass(
    pool: TemporalWorkerPool,
    *,
    live: Iterable[Mapping[str, Any]],
    observed: Observation,
    identity: str,
    now: datetime,
    desired_replicas: int,
    version_replicas: Mapping[str, int] | None = None,
    previous: Sequence[VersionStatus] | None = None,
    leaving: str | None = None,
    version_cap: int = DEFAULT_VERSION_CAP,
    group: Group | None = None,
) -> VersionedPass:
    """Everything one pass of a versioned pool does: see the module docstring. `previous` is
    the stored status.versions (drainedSince counts sunset delays from there); default: the
    pool model's status. `leaving`: the Worker Deployment of a pool that left versioning (its
    builds drain to the unversioned Deployment, which the caller renders). `group`: the release
    group the pool is a member of (its build is the group's)."""
    if leaving is not None:
        versioning, target, deployment, group = LEAVING, "", leaving, None
    else:
        assert pool.spec.versioning is not None, "only versioned pools come here"
        versioning = pool.spec.versioning
        target = group.build_id if group is not None else target_build_id(pool)
        deployment = versioning.effective_deployment_name(pool.namespace, pool.name)
    deployments = build_deployments(live)
    if previous is None:
        previous = pool.status.versions if pool.status and pool.status.versions else []
    routing = plan(
        RoutingInput(
            spec=versioning,
            pool=pool.name,
            deployment=deployment,
            target_build=target,
            task_queue=pool.spec.task_queue,
            identity=identity,
            temporal=observed.temporal,
            now=now,
            desired_replicas=desired_replicas,
            version_replicas=version_replicas or {},
            pinned_open=observed.pinned_open,
            build_deployments=deployments,
            previous=previous,
            gate=observed.gate,
            unversioned_pollers=observed.unversioned_pollers,
            analysis=observed.analysis,
            step_gate=observed.step_gate,
            generation=int(pool.metadata.get("generation") or 0),
            promote=_asked(pool, versioning.promote, PROMOTE_ANNOTATION, target, group),
            abort=_asked(pool, versioning.abort, ABORT_ANNOTATION, target, group),
            version_cap=version_cap,
            group=group,
            polled=observed.polled,
        )
    )
    out = VersionedPass(routing=routing, deployment=deployment)
    for v in routing.versions:
        kube = deployments.get(v.build_id)
        if v.delete:
            out.delete.append(v.deployment)
        elif v.build_id == target:
            out.apply.append(render_build_deployment(pool, target, replicas=v.replicas))
        elif kube is not None and kube.replicas != v.replicas:
            out.scale[kube.name] = v.replicas
    if leaving is not None and not routing.versions:
        # Nothing left of any build, here or in Temporal: the versioning status goes too.
        return VersionedPass(routing=routing, deployment=deployment, left=True)
    out.status.update(
        workerDeploymentName=deployment,
        targetBuildId=target or None,
        **routing_status(routing, deployments, group, observed.polled),
    )
    if routing.routing_changed:
        out.status_if_refused.update(
            routing_status(routing.as_read(), deployments, group, observed.polled)
        )
    return out


def routing_status(
    routing: RoutingPlan,
    deployments: Mapping[str, BuildDeployment],
    group: Group | None,
    polled: frozenset[str] | None,
) -> dict[str, Any]:
    """The status fields that follow Temporal's routing (None: the field is left out)."""
    return {
        "currentBuildId": routing.current_build,
        "rampPercentage": routing.ramp_percentage,
        "versions": [s.dump() for s in status_versions(routing, deployments)],
        "releaseGroup": None if group is None else group_status(group, routing, polled),
    }


def group_status(
    group: Group, routing: RoutingPlan, polled: frozenset[str] | None
) -> dict[str, Any]:
    """status.releaseGroup: the same words on every member (same cache, same Temporal)."""
    ramping = next((v.build_id for v in routing.versions if v.state == "Ramping"), None)
    current = routing.current_build
    done = current == group.build_id and ramping is None
    held = "" if done or group.problem else group.holder(polled)
    return ReleaseGroupStatus(
        deployment_name=group.deployment,
        members=list(group.members),
        driver=group.driver,
        build_id=group.build_id,
        state=group_state(group, held, current, ramping),
        held_by=held or None,
    ).dump()
