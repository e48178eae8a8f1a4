"""Versioned pools under KEDA and HPA (issue 19): one ScaledObject or HPA per live build,
targeting that build's Deployment, written with the build and removed with it, through the
whole planner (reconcile/plan.py with reconcile/versioned.py) and the renderer
(render/autoscaling.py)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests import builders
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import DEPLOYMENT, HPA, REPLICAS_OWNERS, SCALED_OBJECT, TRIGGER_AUTH
from workerpool_operator.names import MANAGERS
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import (
    Handover,
    Observed,
    Plan,
    Revocation,
    VersioningObserved,
)
from workerpool_operator.reconcile.plan import plan
from workerpool_operator.reconcile.revoke import revocations
from workerpool_operator.render import Capabilities
from workerpool_operator.render.autoscaling import BuildScaler, render_build_scaler, render_hpa
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL, deployment_name
from workerpool_operator.versioning.model import DeploymentState, Observation, VersionSummary

KEDA = Capabilities(keda=True)
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
UID = "0000-pool-uid"
ME = "workerpool-operator@test"
OWNER = [{"apiVersion": api.API_VERSION, "kind": api.KIND, "name": "orders", "uid": UID,
          "controller": True}]  # fmt: skip


def scaled_body(engine: str = "KEDA", **autoscaling: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"engine": engine, "minReplicas": 0, "maxReplicas": 8, **autoscaling}
    if engine == "HPA":
        spec.setdefault("cpuUtilization", 70)
        spec["minReplicas"] = max(1, spec["minReplicas"])
    doc = builders.pool("orders", "shop", connection={"address": "temporal:7233"},
                        workflows=("app:Wf",), autoscaling=spec,
                        resources={"requests": {"cpu": "100m"}},
                        versioning={"sunset": {"scaleDownDelaySeconds": 0,
                                               "deleteDelaySeconds": 0}})  # fmt: skip
    doc["metadata"].update(uid=UID, generation=3)
    return doc


def temporal(
    *versions: tuple[str, str], current: str | None = None, open_: dict[str, int] | None = None
) -> VersioningObserved:
    """What Temporal says: the versions with their status, the current one, the exact counts."""
    state = DeploymentState(
        exists=bool(versions),
        manager_identity=ME if current else "",
        current_build=current,
        versions=tuple(VersionSummary(b, s) for b, s in versions),  # type: ignore[arg-type]
    )
    observation = Observation(state, dict(open_ or {}), gate=None, unversioned_pollers=False)
    return VersioningObserved(now=NOW, identity=ME, observation=observation)


def built(manifest: dict[str, Any], ready: int) -> dict[str, Any]:
    """A build's Deployment as the API server holds it once its pods are up."""
    obj = copy.deepcopy(manifest)
    obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
    replicas = obj["spec"].get("replicas", 1)
    obj["status"] = {"replicas": replicas, "readyReplicas": ready}
    return obj


def target_of(b: dict[str, Any]) -> str:
    return target_build_id(api.TemporalWorkerPool.from_body(b))


def scalers(p: Plan) -> dict[str, dict[str, Any]]:
    """The per-build ScaledObjects and HPAs the plan writes, by name."""
    return {
        w.manifest["metadata"]["name"]: w.manifest
        for w in p.writes
        if w.kind in (SCALED_OBJECT, HPA)
    }


def live(manifest: dict[str, Any]) -> dict[str, Any]:
    """A written scaler as the cache holds it."""
    obj = copy.deepcopy(manifest)
    obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
    return obj


def old_build(replicas: int = 3) -> dict[str, Any]:
    return built({"metadata": {"name": "orders-old", "labels": {BUILD_ID_LABEL: "old"},
                  "ownerReferences": OWNER}, "spec": {"replicas": replicas}},
                 ready=replicas)  # fmt: skip


def old_scaler(b: dict[str, Any]) -> dict[str, Any]:
    pool = api.TemporalWorkerPool.from_body(b)
    manifest = render_build_scaler(pool, BuildScaler("old", "orders-old", 0), authenticated=False)
    return live(manifest)


def test_keda_first_pass_writes_one_scaled_object_for_the_new_build() -> None:
    b = scaled_body()
    target = target_of(b)
    p = plan(b, KEDA, Observed(versioning=temporal()))
    name = deployment_name("orders", target)
    assert list(scalers(p)) == [name]  # no pool-named ScaledObject
    so = scalers(p)[name]
    assert so["kind"] == "ScaledObject"
    assert so["metadata"]["labels"][BUILD_ID_LABEL] == target
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": name}  # fmt: skip
    meta = so["spec"]["triggers"][0]["metadata"]
    assert meta["workerDeploymentName"] == "shop/orders"
    assert meta["workerDeploymentBuildId"] == target
    assert meta["taskQueue"] == "orders"
    # Not registered yet: it must keep a worker to poll, whatever minReplicas says.
    assert so["spec"]["minReplicaCount"] == 1
    assert so["spec"]["maxReplicaCount"] == 8
    (dep,) = [w.manifest for w in p.writes if w.kind is DEPLOYMENT]
    assert "replicas" not in dep["spec"]  # KEDA owns them (created at Kubernetes' 1)
    cond = p.conditions[api.CONDITION_AUTOSCALING]
    assert (cond.status, cond.reason) == ("True", Reason.CREATED)
    assert "per live build" in cond.message


def test_keda_scaled_object_follows_the_build_through_a_rollout() -> None:
    """Old build current -> new build current while the old one drains pinned work -> the old
    one drained: its ScaledObject goes, and the routing pass owns its replicas again."""
    b = scaled_body()
    target = target_of(b)
    new_name = deployment_name("orders", target)
    first = plan(b, KEDA, Observed(versioning=temporal()))
    new_dep = next(w.manifest for w in first.writes if w.kind is DEPLOYMENT)
    new_dep = built({**new_dep, "spec": {**new_dep["spec"], "replicas": 2}}, ready=2)
    new_so = live(scalers(first)[new_name])
    old, old_so = old_build(), old_scaler(b)
    cached = Observed(builds=(old, new_dep), build_scalers=(old_so, new_so), versioning=None)

    # The new build has registered, the old one is still current: both keep a scaler.
    obs = temporal(("old", "Current"), (target, "Inactive"), current="old",
                   open_={"old": 2, target: 0})  # fmt: skip
    p = plan(b, KEDA, Observed(**{**cached.__dict__, "versioning": obs}))
    assert p.drop == []
    assert p.versioned is not None
    assert p.versioned.scale == {}  # KEDA sizes both builds, the operator writes no replicas

    # Promoted: the old build drains 2 pinned workflows; its backlog can be 0 while they run.
    obs = temporal(("old", "Draining"), (target, "Current"), current=target,
                   open_={"old": 2, target: 0})  # fmt: skip
    p = plan(b, KEDA, Observed(**{**cached.__dict__, "versioning": obs}))
    written = scalers(p)
    assert written["orders-old"]["spec"]["minReplicaCount"] == 1  # kept up for pinned work
    assert written[new_name]["spec"]["minReplicaCount"] == 0  # current: the spec's minimum
    assert p.drop == []
    assert p.retire == []

    # Drained (exact count 0): the ScaledObject goes in the pass that retires the build.
    obs = temporal(("old", "Drained"), (target, "Current"), current=target,
                   open_={"old": 0, target: 0})  # fmt: skip
    p = plan(b, KEDA, Observed(**{**cached.__dict__, "versioning": obs}))
    assert p.drop == [Revocation(SCALED_OBJECT, "orders-old", "uid-orders-old")]
    assert p.retire == [("orders-old", "uid-orders-old")]
    assert "orders-old" not in scalers(p)


def test_a_drained_build_under_a_sunset_delay_loses_its_scaler_and_is_scaled_down() -> None:
    b = scaled_body()
    b["spec"]["versioning"]["sunset"] = {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 3600}
    target = target_of(b)
    old, old_so = old_build(replicas=2), old_scaler(b)
    obs = temporal(("old", "Drained"), (target, "Current"), current=target,
                   open_={"old": 0, target: 0})  # fmt: skip
    p = plan(b, KEDA, Observed(builds=(old,), build_scalers=(old_so,), versioning=obs))
    assert p.drop == [Revocation(SCALED_OBJECT, "orders-old", "uid-orders-old")]
    assert p.retire == []
    assert p.versioned is not None
    assert p.versioned.scale == {"orders-old": 0}  # no scaler left to fight the operator


def test_a_ramping_build_and_the_current_build_each_get_one() -> None:
    b = scaled_body()
    b["spec"]["versioning"].update(
        strategy="Progressive", steps=[{"rampPercentage": 25, "pauseSeconds": 300}]
    )
    target = target_of(b)
    old = old_build()
    obs = temporal(("old", "Current"), (target, "Ramping"), current="old",
                   open_={"old": 1, target: 0})  # fmt: skip
    state = obs.observation
    assert state is not None
    # 25 % since just now: the step's 300 s pause holds the ramp.
    ramping = replace(state.temporal, ramping_build=target, ramp_percentage=25.0,
                      ramp_changed_at=NOW, manager_identity=obs.identity)  # fmt: skip
    ramp = replace(obs, observation=replace(state, temporal=ramping))
    p = plan(b, KEDA, Observed(builds=(old,), versioning=ramp))
    assert p.versioned is not None
    assert p.versioned.routing.calls == ()
    written = scalers(p)
    assert written["orders-old"]["spec"]["minReplicaCount"] == 0
    assert written[deployment_name("orders", target)]["spec"]["minReplicaCount"] == 1
    ids = {n: s["spec"]["triggers"][0]["metadata"]["workerDeploymentBuildId"]
           for n, s in written.items()}  # fmt: skip
    assert ids == {"orders-old": "old", deployment_name("orders", target): target}


def test_hpa_one_per_build_with_the_unversioned_metrics() -> None:
    b = scaled_body("HPA", minReplicas=2)
    target = target_of(b)
    old = old_build()
    obs = temporal(("old", "Draining"), (target, "Current"), current=target,
                   open_={"old": 1, target: 0})  # fmt: skip
    p = plan(b, Capabilities(), Observed(builds=(old,), versioning=obs))
    written = scalers(p)
    assert set(written) == {"orders-old", deployment_name("orders", target)}
    pool = api.TemporalWorkerPool.from_body(b)
    unversioned = render_hpa(pool)
    for name, hpa in written.items():
        assert hpa["kind"] == "HorizontalPodAutoscaler"
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert hpa["spec"]["metrics"] == unversioned["spec"]["metrics"]
        assert hpa["spec"]["behavior"] == unversioned["spec"]["behavior"]
        assert hpa["spec"]["minReplicas"] == 2
        assert hpa["spec"]["maxReplicas"] == 8
    assert not [w for w in p.writes if w.kind is SCALED_OBJECT]


def test_without_keda_no_scaled_object_and_the_condition_says_why() -> None:
    b = scaled_body()
    p = plan(b, Capabilities(keda=False), Observed(versioning=temporal()))
    assert scalers(p) == {}
    cond = p.conditions[api.CONDITION_AUTOSCALING]
    assert (cond.status, cond.reason) == ("False", Reason.CRD_NOT_INSTALLED)


def test_a_pool_named_scaled_object_is_pruned_once_the_pool_is_versioned() -> None:
    b = scaled_body()
    meta = {"name": "orders", "uid": "uid-pool-so", "ownerReferences": OWNER}
    pool_so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta}
    p = plan(b, KEDA, Observed(children={SCALED_OBJECT: pool_so}, versioning=temporal()))
    assert (SCALED_OBJECT, "uid-pool-so") in p.prune


def test_trigger_authentication_is_shared_by_every_build() -> None:
    b = scaled_body()
    b["spec"]["connectionRef"] = {"kind": "TemporalConnection", "name": "prod"}
    del b["spec"]["connection"]
    conn = {"metadata": {"name": "prod", "namespace": "shop"},
            "spec": {"address": "prod.example:7233", "namespace": "payments", "tls": {},
                     "apiKeySecretRef": {"name": "k"}}}  # fmt: skip
    cached = Observed(connection=conn, secrets={"k": {"data": {}}})
    first = plan(b, KEDA, Observed(**{**cached.__dict__, "versioning": temporal()}))
    (dep,) = [w.manifest for w in first.writes if w.kind is DEPLOYMENT]
    target = dep["metadata"]["labels"][BUILD_ID_LABEL]
    obs = temporal(("old", "Draining"), (target, "Current"), current=target,
                   open_={"old": 1, target: 0})  # fmt: skip
    p = plan(b, KEDA, Observed(**{**cached.__dict__, "builds": (old_build(),),
                                  "versioning": obs}))  # fmt: skip
    auths = [w.manifest for w in p.writes if w.kind is TRIGGER_AUTH]
    assert [a["metadata"]["name"] for a in auths] == ["orders"]
    assert len(scalers(p)) == 2
    for so in scalers(p).values():
        trigger = so["spec"]["triggers"][0]
        assert trigger["authenticationRef"] == {"name": "orders"}
        assert trigger["metadata"]["endpoint"] == "prod.example:7233"
        assert trigger["metadata"]["namespace"] == "payments"


def test_temporal_unreadable_makes_sure_of_the_target_scaler_and_drops_nothing() -> None:
    b = scaled_body()
    old_so = old_scaler(b)
    down = VersioningObserved(now=NOW, identity="me", error="UNAVAILABLE")
    p = plan(b, KEDA, Observed(builds=(old_build(),), build_scalers=(old_so,), versioning=down))
    assert p.drop == []
    name = deployment_name("orders", target_of(b))
    assert list(scalers(p)) == [name]
    assert scalers(p)[name]["spec"]["minReplicaCount"] == 1
    (dep,) = [w.manifest for w in p.writes if w.kind is DEPLOYMENT]
    assert "replicas" not in dep["spec"]


def test_back_to_builtin_drops_every_build_scaler() -> None:
    b = scaled_body()
    old_so = old_scaler(b)
    b["spec"]["autoscaling"]["engine"] = "Builtin"
    obs = temporal(("old", "Current"), current="old", open_={"old": 0})
    p = plan(b, KEDA, Observed(builds=(old_build(),), build_scalers=(old_so,), versioning=obs))
    assert p.drop == [Revocation(SCALED_OBJECT, "orders-old", "uid-orders-old")]


def test_leaving_versioning_drops_build_scalers_and_writes_the_pool_one() -> None:
    b = scaled_body()
    old_so = old_scaler(b)
    del b["spec"]["versioning"]
    b["status"] = {"versions": [{"buildId": "old", "state": "Current",
                                 "deployment": "orders-old"}],
                   "workerDeploymentName": "shop/orders"}  # fmt: skip
    obs = temporal(("old", "Draining"), current=None, open_={"old": 1})
    p = plan(b, KEDA, Observed(builds=(old_build(),), build_scalers=(old_so,), versioning=obs))
    assert p.drop == [Revocation(SCALED_OBJECT, "orders-old", "uid-orders-old")]
    assert list(scalers(p)) == ["orders"]


@pytest.mark.parametrize("engine", ["KEDA", "HPA"])
def test_revocation_deletes_every_build_scaler(engine: str) -> None:
    b = scaled_body(engine)
    pool = api.TemporalWorkerPool.from_body(b)
    so = live(render_build_scaler(pool, BuildScaler("old", "orders-old", 1), authenticated=False))
    gone = revocations(pool, Observed(builds=(old_build(),), build_scalers=(so,)))
    kind = SCALED_OBJECT if engine == "KEDA" else HPA
    assert gone == [Revocation(kind, "orders-old", "uid-orders-old"),
                    Revocation(DEPLOYMENT, "orders-old", "uid-orders-old")]  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "least", "field", "expected"),
    [
        ("KEDA", 0, "minReplicaCount", 0),  # a current build may scale to zero
        ("KEDA", 1, "minReplicaCount", 1),  # the target before it is current, a draining build
        ("KEDA", 3, "minReplicaCount", 3),
        ("HPA", 0, "minReplicas", 1),  # an HPA never goes below 1
        ("HPA", 2, "minReplicas", 2),
    ],
)
def test_render_build_scaler_table(engine: str, least: int, field: str, expected: int) -> None:
    pool = api.TemporalWorkerPool.from_body(scaled_body(engine))
    out = render_build_scaler(pool, BuildScaler("b-7", "orders-b-7", least), authenticated=False)
    assert out["metadata"]["name"] == "orders-b-7"
    assert out["metadata"]["labels"][BUILD_ID_LABEL] == "b-7"
    assert out["metadata"]["ownerReferences"][0]["uid"] == UID
    assert out["spec"]["scaleTargetRef"]["name"] == "orders-b-7"
    assert out["spec"][field] == expected
    if engine == "KEDA":
        meta = out["spec"]["triggers"][0]["metadata"]
        assert (meta["workerDeploymentName"], meta["workerDeploymentBuildId"]) == (
            "shop/orders",
            "b-7",
        )
        assert "authenticationRef" not in out["spec"]["triggers"][0]


@pytest.mark.parametrize("engine", ["KEDA", "HPA"])
def test_builtin_to_keda_or_hpa_hands_the_target_builds_replicas_over(engine: str) -> None:
    """A versioned Builtin pool's target build runs 5 replicas under the operator's apply.
    Switching to KEDA or HPA applies that Deployment without replicas from then on: without a
    handover, server-side apply would drop the field and Kubernetes reset it to 1. The count
    is handed over first, to the handover manager, as for an unversioned pool."""
    builtin = scaled_body("Builtin", minReplicas=1)
    target = target_of(builtin)
    name = deployment_name("orders", target)
    current = temporal((target, "Current"), current=target, open_={target: 0})
    first = plan(builtin, KEDA, Observed(versioning=current))
    dep = next(w.manifest for w in first.writes if w.kind is DEPLOYMENT)
    live_dep = built({**dep, "spec": {**dep["spec"], "replicas": 5}}, ready=5)
    live_dep[REPLICAS_OWNERS] = ["workerpool-operator/Apply"]
    assert first.handover is None  # Builtin: the operator applies the replicas itself

    switched = scaled_body(engine, minReplicas=1)
    assert target_of(switched) == target  # the engine is not part of the build
    p = plan(switched, KEDA, Observed(builds=(live_dep,), versioning=current))
    assert p.handover == Handover(5, MANAGERS.handover, deployment=name)
    written = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    assert written["metadata"]["name"] == name
    assert "replicas" not in written["spec"]  # the reconciler lets go of the field
    assert name in scalers(p)
    # Once the handover manager holds the field too, nothing more is handed over.
    live_dep[REPLICAS_OWNERS] = ["workerpool-operator/Apply", f"{MANAGERS.handover}/Apply"]
    again = plan(switched, KEDA, Observed(builds=(live_dep,), versioning=current))
    assert again.handover is None
