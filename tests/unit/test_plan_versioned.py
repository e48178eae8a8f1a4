"""A versioned pool through the whole planner (reconcile/plan.py): one Deployment per build
instead of the pool's own, nothing scaled or deleted blind while Temporal cannot be read, the
unversioned Deployment kept until a build is current, and Ready meaning "the target build is
current and available"."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tests import builders
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import DEPLOYMENT
from workerpool_operator.names import CREDENTIALS_HASH_ANNOTATION
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import Observed, Outcome, VersioningObserved
from workerpool_operator.reconcile.plan import finish, plan
from workerpool_operator.reconcile.versioned import DRAIN_POLL_SECONDS
from workerpool_operator.render import Capabilities
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL, deployment_name
from workerpool_operator.versioning.group import Group
from workerpool_operator.versioning.model import (
    DeleteVersion,
    DeploymentState,
    Observation,
    SetCurrent,
    SetManager,
    TemporalStatus,
    VersionSummary,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
UID = "0000-pool-uid"


def body(**spec: Any) -> dict[str, Any]:
    doc = builders.pool("orders", "shop", connection={"address": "temporal:7233"},
                        workflows=("app:Wf",), **spec)  # fmt: skip
    doc["metadata"].update(uid=UID, generation=3)
    return doc


ME = "workerpool-operator@test"


def versioned_body(**versioning: Any) -> dict[str, Any]:
    return body(replicas=2, versioning={"sunset": {"scaleDownDelaySeconds": 0,
                "deleteDelaySeconds": 0}, **versioning})  # fmt: skip


def temporal(
    *versions: tuple[str, str], current: str | None = None, open_: dict[str, int] | None = None
) -> VersioningObserved:
    state = DeploymentState(
        exists=bool(versions),
        manager_identity=ME if current else "",
        current_build=current,
        versions=tuple(VersionSummary(b, s) for b, s in versions),  # type: ignore[arg-type]
    )
    observation = Observation(state, dict(open_ or {}), gate=None, unversioned_pollers=False)
    return VersioningObserved(now=NOW, identity=ME, observation=observation)


def built(manifest: dict[str, Any], ready: int) -> dict[str, Any]:
    """The Deployment as the API server holds it once its pods are up."""
    obj = copy.deepcopy(manifest)
    obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
    obj["metadata"]["generation"] = 1
    replicas = obj["spec"]["replicas"]
    obj["status"] = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                     "readyReplicas": ready, "availableReplicas": ready}  # fmt: skip
    return obj


def target_of(b: dict[str, Any]) -> str:
    return target_build_id(api.TemporalWorkerPool.from_body(b))


def test_a_versioned_pool_runs_a_deployment_per_build_not_its_own() -> None:
    b = versioned_body()
    p = plan(b, Capabilities(), Observed(versioning=temporal()))
    deployments = [w.manifest for w in p.writes if w.kind is DEPLOYMENT]
    assert len(deployments) == 1
    (dep,) = deployments
    target = target_of(b)
    assert dep["metadata"]["name"] == deployment_name("orders", target)
    assert dep["metadata"]["labels"][BUILD_ID_LABEL] == target
    assert dep["spec"]["replicas"] == 2
    ready = p.conditions[api.CONDITION_READY]
    assert (ready.status, ready.reason) == ("False", Reason.REPLICAS_NOT_READY)
    rollout = p.conditions["VersionRollout"]
    assert (rollout.status, rollout.reason) == ("False", Reason.WAITING_FOR_POLLERS)
    assert p.fields["targetBuildId"] == target
    assert p.requeue_after is not None
    assert p.requeue_after <= 5  # a rollout is looked at again within seconds


def test_temporal_unreadable_holds_every_build() -> None:
    """No observation: the target build is made sure of, nothing else is scaled or deleted,
    and the status says why instead of guessing."""
    b = versioned_body()
    old = built(
        {"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                      "ownerReferences": [{"controller": True, "uid": UID}]},
         "spec": {"replicas": 3}}, ready=3)  # fmt: skip
    down = VersioningObserved(now=NOW, identity=ME, error="UNAVAILABLE: connection refused")
    p = plan(b, Capabilities(), Observed(builds=(old,), versioning=down))
    assert p.versioned is None
    assert p.retire == []
    assert [w.manifest["metadata"]["name"] for w in p.writes if w.kind is DEPLOYMENT] == [
        deployment_name("orders", target_of(b))
    ]
    rollout = p.conditions["VersionRollout"]
    assert (rollout.status, rollout.reason) == ("Unknown", Reason.TEMPORAL_UNAVAILABLE)
    assert "connection refused" in rollout.message


def test_a_registered_build_is_made_current_and_the_pool_gets_ready() -> None:
    b = versioned_body()
    target = target_of(b)
    first = plan(b, Capabilities(), Observed(versioning=temporal()))
    live = built(next(w.manifest for w in first.writes if w.kind is DEPLOYMENT), ready=2)
    registered = temporal((target, "Inactive"), open_={target: 0})
    p = plan(b, Capabilities(), Observed(builds=(live,), versioning=registered))
    assert p.versioned is not None
    assert p.versioned.routing.calls == (SetManager(), SetCurrent(target))
    assert p.fields["currentBuildId"] == target
    assert not [w for w in p.writes if w.kind is DEPLOYMENT]  # already as wanted
    # Once Temporal has it current, Ready is True and the rollout says so.
    done = plan(b, Capabilities(), Observed(builds=(live,),
                versioning=temporal((target, "Current"), current=target)))  # fmt: skip
    ready = done.conditions[api.CONDITION_READY]
    assert (ready.status, done.conditions["VersionRollout"].reason) == (
        "True",
        Reason.TARGET_CURRENT,
    )


def old_and_new(b: dict[str, Any], old_replicas: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The pool's target build, and two live build Deployments with their pods up: build `old`
    (with `old_replicas`) and the target's, as the first pass rendered it."""
    owner = [{"controller": True, "uid": UID}]
    old = built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                 "ownerReferences": owner}, "spec": {"replicas": old_replicas}},
                ready=old_replicas)  # fmt: skip
    first = plan(b, Capabilities(), Observed(versioning=temporal()))
    new = built(next(w.manifest for w in first.writes if w.kind is DEPLOYMENT), ready=2)
    return target_of(b), old, new


def test_a_drained_old_build_is_retired() -> None:
    b = versioned_body()
    target, old, new = old_and_new(b, old_replicas=1)
    obs = temporal(("old", "Drained"), (target, "Current"), current=target,
                   open_={"old": 0, target: 0})  # fmt: skip
    p = plan(b, Capabilities(), Observed(builds=(old, new), versioning=obs))
    assert p.retire == [("orders-old", "uid-orders-old")]
    # Still open pinned work on it: never scaled to zero, never deleted.
    busy = temporal(("old", "Draining"), (target, "Current"), current=target,
                    open_={"old": 4, target: 0})  # fmt: skip
    p = plan(b, Capabilities(), Observed(builds=(old, new), versioning=busy))
    assert p.retire == []
    assert p.versioned is not None
    assert "orders-old" not in p.versioned.scale


def test_a_foreign_build_deployment_is_never_touched() -> None:
    b = versioned_body()
    foreign = built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"}},
                     "spec": {"replicas": 1}}, ready=1)  # fmt: skip
    obs = temporal(("old", "Drained"), current=None, open_={"old": 0})
    p = plan(b, Capabilities(), Observed(builds=(foreign,), versioning=obs))
    assert p.retire == []
    assert p.versioned is not None
    assert p.versioned.scale == {}


def test_migration_keeps_the_unversioned_deployment_until_a_build_is_current() -> None:
    unversioned = plan(body(replicas=2), Capabilities(), Observed())
    live = built(next(w.manifest for w in unversioned.writes if w.kind is DEPLOYMENT), ready=2)
    b = versioned_body()
    target = target_of(b)
    waiting = plan(b, Capabilities(), Observed(children={DEPLOYMENT: live},
                   versioning=temporal((target, "Inactive"))))  # fmt: skip
    assert waiting.prune == []
    done = plan(b, Capabilities(), Observed(children={DEPLOYMENT: live},
                versioning=temporal((target, "Current"), current=target)))  # fmt: skip
    assert done.prune == [(DEPLOYMENT, "uid-orders")]


def test_a_refused_routing_change_is_reported() -> None:
    b = versioned_body()
    p = plan(b, Capabilities(), Observed(versioning=temporal()))
    status = finish(p, Outcome(routing_refused="SetCurrentVersion x refused: stale token"), {},
                    generation=3, now="2026-12-06T12:00:00Z")  # fmt: skip
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["VersionRollout"]["reason"] == Reason.PROMOTION_REFUSED
    assert by_type["Ready"]["status"] == "False"
    assert "stale token" in by_type["Ready"]["message"]


def test_a_refused_promotion_leaves_the_status_on_the_build_temporal_has_current() -> None:
    """Temporal refuses SetCurrentVersion while the new build's workers have not polled every
    task queue: the status names the build Temporal still routes to, not the one the call
    meant to make current (the next pass reads Temporal afresh)."""
    b = versioned_body()
    target, old, new = old_and_new(b, old_replicas=2)
    obs = temporal(("old", "Current"), (target, "Inactive"), current="old",
                   open_={"old": 0, target: 0})  # fmt: skip
    p = plan(b, Capabilities(), Observed(builds=(old, new), versioning=obs))
    assert p.versioned is not None
    assert SetCurrent(target) in p.versioned.routing.calls

    def states(status: dict[str, Any]) -> dict[str, str]:
        return {v["buildId"]: v["state"] for v in status["versions"]}

    now = "2026-12-06T12:00:00Z"
    taken = finish(p, Outcome(), {}, generation=3, now=now)
    assert taken["currentBuildId"] == target
    assert states(taken) == {target: "Current", "old": "Drained"}
    refused = finish(p, Outcome(routing_refused="SetCurrentVersion refused: no pollers"), {},
                     generation=3, now=now)  # fmt: skip
    assert refused["currentBuildId"] == "old"
    assert states(refused) == {target: "Inactive", "old": "Current"}
    assert refused["targetBuildId"] == target  # what the pool rolls out is unchanged
    ready = next(c for c in refused["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == Reason.PROMOTION_REFUSED


def test_status_never_carries_a_null() -> None:
    """The API server refuses null for a typed status field (rampPercentage: number)."""
    p = plan(versioned_body(), Capabilities(), Observed(versioning=temporal()))
    status = finish(p, Outcome(), {}, generation=3, now="2026-12-06T12:00:00Z")
    assert None not in status.values()
    assert "rampPercentage" not in status
    assert "currentBuildId" not in status


def test_sunset_counts_from_the_stored_drained_since() -> None:
    """The delay runs from status.versions[].drainedSince as the last pass wrote it: a pass
    that forgot it would restart the clock and never retire the build."""
    b = body(replicas=1, versioning={"sunset": {"scaleDownDelaySeconds": 0,
             "deleteDelaySeconds": 60}})  # fmt: skip
    target = target_of(b)
    owner = [{"controller": True, "uid": UID}]
    old = built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                 "ownerReferences": owner}, "spec": {"replicas": 0}}, ready=0)  # fmt: skip
    obs = temporal(("old", "Drained"), (target, "Current"), current=target,
                   open_={"old": 0, target: 0})  # fmt: skip
    fresh = plan(b, Capabilities(), Observed(builds=(old,), versioning=obs))
    assert fresh.retire == []  # first seen drained now: 60 s to go
    b["status"] = {"versions": [{"buildId": "old", "state": "Drained",
                                 "drainedSince": "2026-12-06T11:58:00Z"}]}  # fmt: skip
    later = plan(b, Capabilities(), Observed(builds=(old,), versioning=obs))
    assert later.retire == [("orders-old", "uid-orders-old")]  # 120 s ago


def _left_versioning() -> tuple[dict[str, Any], dict[str, Any]]:
    """A pool whose spec.versioning was removed while build "old" is current, and that
    build's Deployment (its env names the Worker Deployment)."""
    b = body(replicas=2)
    b["status"] = {"workerDeploymentName": "shop/orders", "currentBuildId": "old",
                   "versions": [{"buildId": "old", "state": "Current"}]}  # fmt: skip
    old = built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                 "ownerReferences": [{"controller": True, "uid": UID}]},
                 "spec": {"replicas": 2}}, ready=2)  # fmt: skip
    return b, old


def leaving_obs(
    current: str | None, status: TemporalStatus, open_: int, pollers: bool
) -> VersioningObserved:
    state = DeploymentState(
        exists=True,
        manager_identity=ME,
        current_build=current,
        versions=(VersionSummary("old", status),),
    )
    observation = Observation(state, {"old": open_}, gate=None, unversioned_pollers=pollers)
    return VersioningObserved(now=NOW, identity=ME, observation=observation)


def test_leaving_versioning_waits_for_unversioned_workers_before_moving_new_work() -> None:
    b, old = _left_versioning()
    p = plan(b, Capabilities(), Observed(builds=(old,),
             versioning=leaving_obs("old", "Current", 3, pollers=False)))  # fmt: skip
    # The pool's own Deployment comes back; the build keeps running and routing is unchanged.
    (dep,) = [w.manifest for w in p.writes if w.kind is DEPLOYMENT]
    assert dep["metadata"]["name"] == "orders"
    assert p.versioned is not None
    assert p.versioned.routing.calls == ()
    assert p.retire == []
    assert p.versioned.scale == {}
    rollout = p.conditions["VersionRollout"]
    assert (rollout.status, rollout.reason) == ("False", Reason.WAITING_FOR_POLLERS)
    assert p.conditions[api.CONDITION_READY].status == "False"
    assert p.fields["workerDeploymentName"] == "shop/orders"
    assert "targetBuildId" not in p.fields


def test_leaving_versioning_routes_back_then_drains_and_retires_every_build() -> None:
    b, old = _left_versioning()
    p = plan(b, Capabilities(), Observed(builds=(old,),
             versioning=leaving_obs("old", "Current", 3, pollers=True)))  # fmt: skip
    assert p.versioned is not None
    assert p.versioned.routing.calls == (SetCurrent(None),)
    assert p.versioned.deployment == "shop/orders"
    assert p.retire == []
    assert p.versioned.scale == {}
    # Demoted with pinned work still open: it keeps its workers.
    p = plan(b, Capabilities(), Observed(builds=(old,),
             versioning=leaving_obs(None, "Draining", 3, pollers=True)))  # fmt: skip
    assert p.versioned is not None
    assert p.retire == []
    assert p.versioned.routing.calls == ()
    assert p.versioned.status["versions"][0]["state"] == "Draining"
    # The last pinned workflow ended: the build goes at once (nothing to roll back to).
    p = plan(b, Capabilities(), Observed(builds=(old,),
             versioning=leaving_obs(None, "Draining", 0, pollers=True)))  # fmt: skip
    assert p.retire == [("orders-old", "uid-orders-old")]
    # Deployment gone: its Temporal version is deleted; then nothing is left to track.
    p = plan(b, Capabilities(), Observed(builds=(),
             versioning=leaving_obs(None, "Drained", 0, pollers=True)))  # fmt: skip
    assert p.versioned is not None
    assert p.versioned.routing.calls == (DeleteVersion("old"),)
    gone = DeploymentState(exists=True, manager_identity=ME)
    empty = VersioningObserved(now=NOW, identity=ME, observation=Observation(gone, {}, None, True))
    p = plan(b, Capabilities(), Observed(versioning=empty))
    assert p.versioned is not None
    assert p.versioned.left
    # An unversioned pool again: no versioning status field or condition is left.
    assert not {"versions", "workerDeploymentName", "currentBuildId"} & set(p.fields)
    assert "VersionRollout" not in p.conditions


def test_leaving_versioning_holds_the_builds_while_temporal_is_unreadable() -> None:
    b, old = _left_versioning()
    down = VersioningObserved(now=NOW, identity=ME, error="UNAVAILABLE: connection refused")
    p = plan(b, Capabilities(), Observed(builds=(old,), versioning=down))
    assert p.retire == []
    assert p.versioned is None
    # status.versions is kept, so the next pass still knows which builds to retire.
    assert p.fields["versions"] == b["status"]["versions"]
    assert p.fields["currentBuildId"] == "old"
    assert p.conditions["VersionRollout"].reason == Reason.TEMPORAL_UNAVAILABLE


def test_a_status_that_drops_a_versioning_field_is_written() -> None:
    """Server-side apply removes a field only when the status is applied without it: a pass
    whose status is otherwise unchanged is still written once a versioning field goes."""
    from workerpool_operator.reconcile.report import _drops

    ready = {"type": "Ready", "status": "True"}
    rollout = {"type": "VersionRollout", "status": "True"}
    live = {"replicas": 1, "versions": [], "conditions": [ready, rollout]}
    assert _drops({"replicas": 1, "conditions": [ready, rollout]}, live)
    assert _drops({"replicas": 1, "versions": [], "conditions": [ready]}, live)
    assert not _drops({"replicas": 1, "versions": [], "conditions": [ready, rollout]}, live)
    # Fields other writers own (the Builtin scaler's) are not the reconciler's to drop.
    assert not _drops({"conditions": []}, {"backlog": {"count": 3}, "conditions": []})


def _two_builds(
    tls: dict[str, Any] | None, secrets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Observed]:
    """Build "old" (the pool as it was, another workflow list) draining beside the current
    target build, both as the API server holds them; with `tls`, the pool's connection is
    TemporalConnection prod whose TLS Secret is `tls`. Returns the pool, both Deployments and
    the observation with the builds' versions in Temporal."""
    where: dict[str, Any] = {"connection": {"address": "temporal:7233"}}
    conn = None
    if tls is not None:
        where = {"connection_ref": {"kind": "TemporalConnection", "name": "prod"}}
        conn = builders.connection("prod", "shop", tls=tls)

    def version(app: str, generation: int) -> dict[str, Any]:
        doc = builders.pool("orders", "shop", workflows=(app,), replicas=1, versioning={},
                            **where)  # fmt: skip
        doc["metadata"].update(uid=UID, generation=generation)
        return doc

    before, b = version("app:Old", 2), version("app:Wf", 3)
    old_id, target = target_of_with(before, conn), target_of_with(b, conn)
    obs = Observed(secrets=secrets, connection=conn, versioning=temporal(
        (old_id, "Draining"), (target, "Current"), current=target, open_={old_id: 2}))  # fmt: skip
    first = replace(obs, versioning=temporal())
    old_plan = plan(before, Capabilities(), first)
    old = built(next(w.manifest for w in old_plan.writes if w.kind is DEPLOYMENT), ready=1)
    new_plan = plan(b, Capabilities(), replace(obs, builds=(old,)))
    new = built(next(w.manifest for w in new_plan.writes if w.kind is DEPLOYMENT), ready=1)
    return b, old, new, replace(obs, builds=(old, new))


def target_of_with(b: dict[str, Any], conn: dict[str, Any] | None) -> str:
    """The target build of a pool whose connection may be a TemporalConnection."""
    secrets = {"tls": {"metadata": {"name": "tls"}, "data": {}}}
    p = plan(b, Capabilities(), Observed(connection=conn, secrets=secrets, versioning=temporal()))
    return str(p.fields["targetBuildId"])


def _env(dep: dict[str, Any], name: str) -> Any:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return next((e.get("value") for e in container["env"] if e["name"] == name), None)


def _hash(dep: dict[str, Any]) -> str:
    return str(dep["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_HASH_ANNOTATION])


def _deployments(p: Any) -> dict[str, dict[str, Any]]:
    return {w.manifest["metadata"]["name"]: w.manifest for w in p.writes if w.kind is DEPLOYMENT}


def test_a_credential_rotation_rolls_every_live_build_in_place() -> None:
    """A rotated Secret changes every live build's credentials hash (its pods roll), not only
    the target's, and no build gets another's code or a new build ID."""
    secrets = {"tls": {"metadata": {"name": "tls"}, "data": {"tls.crt": "b2xk"}}}
    b, old, new, obs = _two_builds({"secretName": "tls"}, secrets)
    old_name, new_name = old["metadata"]["name"], new["metadata"]["name"]
    assert _deployments(plan(b, Capabilities(), obs)) == {}  # nothing to do at rest

    rotated = {"tls": {"metadata": {"name": "tls"}, "data": {"tls.crt": "bmV3"}}}
    p = plan(b, Capabilities(), replace(obs, secrets=rotated))
    written = _deployments(p)
    assert set(written) == {old_name, new_name}
    assert _hash(written[old_name]) == _hash(written[new_name]) != _hash(old)
    refreshed = written[old_name]
    # The old build keeps its own code, name, build ID, selector and replicas.
    assert _env(refreshed, "TWP_WORKFLOWS") == _env(old, "TWP_WORKFLOWS") == "app:Old"
    assert _env(refreshed, "TWP_WORKER_BUILD_ID") == old["metadata"]["labels"][BUILD_ID_LABEL]
    assert refreshed["spec"]["selector"] == old["spec"]["selector"]
    assert refreshed["spec"]["replicas"] == 1
    # Applied and read back: nothing more to write.
    applied = (built(refreshed, ready=1), built(written[new_name], ready=1))
    assert _deployments(plan(b, Capabilities(), replace(obs, secrets=rotated,
                                                        builds=applied))) == {}  # fmt: skip


def test_a_connection_move_reaches_every_live_build() -> None:
    b, old, new, obs = _two_builds(None, {})
    target = new["metadata"]["labels"][BUILD_ID_LABEL]
    b["spec"]["connection"]["address"] = "temporal-b:7233"
    assert target_of(b) == target  # where the workers connect is not part of the build
    written = _deployments(plan(b, Capabilities(), obs))
    for name in (old["metadata"]["name"], new["metadata"]["name"]):
        assert _env(written[name], "TWP_TEMPORAL_ADDRESS") == "temporal-b:7233"
    assert _env(written[old["metadata"]["name"]], "TWP_WORKFLOWS") == "app:Old"


def test_a_release_group_member_runs_the_groups_build_and_reports_the_group() -> None:
    """The follower renders its Deployment under the group's build (not its own), makes no
    routing call, and says in status.releaseGroup who holds the group."""
    b = versioned_body()
    group = Group(
        deployment="shop/orders",
        members=("acts", "orders"),
        build_id="group-build",
        queues={"acts": "acts", "orders": "orders"},
        ready={"acts": 0, "orders": 1},
    )
    read = replace(temporal(("old", "Current"), current="old", open_={"old": 0}), group=group)
    p = plan(b, Capabilities(), Observed(versioning=read))
    (dep,) = [w.manifest for w in p.writes if w.kind is DEPLOYMENT]
    assert dep["metadata"]["labels"][BUILD_ID_LABEL] == "group-build"
    assert target_of(b) != "group-build"
    assert p.versioned is not None
    assert p.versioned.routing.calls == ()
    assert p.conditions["VersionRollout"].reason == Reason.RELEASE_GROUP_FOLLOWING
    assert p.requeue_after == DRAIN_POLL_SECONDS  # the driver looks every second, not each member
    assert p.fields["releaseGroup"] == {
        "deploymentName": "shop/orders",
        "members": ["acts", "orders"],
        "driver": "acts",
        "buildId": "group-build",
        "state": "Held",
        "heldBy": "pool acts: its Deployment of build group-build has no ready pod yet",
    }


def test_the_group_driver_acts_on_an_abort_annotated_on_another_member() -> None:
    b = versioned_body()  # orders: the driver of ("orders", "zeta")
    group = Group(
        deployment="shop/orders",
        members=("orders", "zeta"),
        build_id="group-build",
        queues={"orders": "orders", "zeta": "zeta"},
        ready={"orders": 1, "zeta": 1},
        annotations=(("workerpools.io/abort", "zeta", "group-build"),),
    )
    read = temporal(("old", "Current"), ("group-build", "Inactive"), current="old",
                    open_={"old": 0, "group-build": 0})  # fmt: skip
    assert read.observation is not None
    observation = replace(read.observation, polled=frozenset({"orders", "zeta"}))
    p = plan(b, Capabilities(), Observed(versioning=replace(read, observation=observation,
                                                            group=group)))  # fmt: skip
    assert p.versioned is not None
    assert not any(isinstance(c, SetCurrent) for c in p.versioned.routing.calls)
    rollout = p.conditions["VersionRollout"]
    assert rollout.reason == Reason.ABORTED
    assert "annotation workerpools.io/abort on pool zeta" in rollout.message

    unannotated = replace(group, annotations=())
    p = plan(b, Capabilities(), Observed(versioning=replace(read, observation=observation,
                                                            group=unannotated)))  # fmt: skip
    assert p.versioned is not None
    assert SetCurrent("group-build") in p.versioned.routing.calls


# --- the Builtin scaler's per-version decisions (status.versionReplicas, issue 19) ------------
# Applied to each build's Deployment under the routing floors: the target keeps 1, a Draining
# build keeps 1 while pinned work is open.


def autoscaled(decided: dict[str, int], desired: int = 3) -> dict[str, Any]:
    b = body(autoscaling={"engine": "Builtin", "minReplicas": 0, "maxReplicas": 10},
             versioning={"sunset": {"scaleDownDelaySeconds": 600,
                                    "deleteDelaySeconds": 3600}})  # fmt: skip
    b["status"] = {
        "desiredReplicas": desired,
        "versionReplicas": [{"buildId": k, "desiredReplicas": n} for k, n in decided.items()],
    }
    return b


def replicas_of(b: dict[str, Any], old_replicas: int, state: str, open_old: int) -> dict[str, int]:
    target = target_of(b)
    owner = [{"controller": True, "uid": UID}]
    old = built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                 "ownerReferences": owner}, "spec": {"replicas": old_replicas}},
                ready=old_replicas)  # fmt: skip
    first = plan(b, Capabilities(), Observed(versioning=temporal()))
    new = built(next(w.manifest for w in first.writes if w.kind is DEPLOYMENT), ready=1)
    obs = temporal(("old", state), (target, "Current"), current=target,
                   open_={"old": open_old, target: 0})  # fmt: skip
    p = plan(b, Capabilities(), Observed(builds=(old, new), versioning=obs))
    assert p.versioned is not None
    out = {v.build_id: v.replicas for v in p.versioned.routing.versions}
    return {"target" if k == target else k: n for k, n in out.items()}


def test_each_build_gets_its_own_decision() -> None:
    b = autoscaled({"old": 2})
    b["status"]["versionReplicas"].append({"buildId": target_of(b), "desiredReplicas": 6})
    assert replicas_of(b, 4, "Draining", 3) == {"target": 6, "old": 2}


def test_floors_hold_against_the_scaler() -> None:
    """A Draining build with open pinned work keeps 1 and the target keeps 1, even at 0."""
    b = autoscaled({"old": 0})
    b["status"]["versionReplicas"].append({"buildId": target_of(b), "desiredReplicas": 0})
    assert replicas_of(b, 4, "Draining", 3) == {"target": 1, "old": 1}


def test_a_drained_build_goes_to_zero_before_its_sunset_delay() -> None:
    """Once its count has read 0 for longer than visibility lags (30 s), not at the first 0."""
    b = autoscaled({"old": 0})
    assert replicas_of(b, 2, "Drained", 0)["old"] == 2  # first seen drained now
    b["status"]["versions"] = [{"buildId": "old", "state": "Drained",
                                "drainedSince": "2026-12-06T11:59:00Z"}]  # fmt: skip
    assert replicas_of(b, 2, "Drained", 0)["old"] == 0  # 60 s ago, sunset delay 600 s
    # Without a decision the sunset delay keeps it (600 s here).
    assert replicas_of(autoscaled({}), 2, "Drained", 0)["old"] == 2


def test_a_build_without_a_decision_gets_desired_replicas() -> None:
    assert replicas_of(autoscaled({}, desired=5), 2, "Draining", 1) == {"target": 5, "old": 2}
