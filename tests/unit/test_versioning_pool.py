"""One pass of a versioned pool: the target's Deployment rendered in full, older builds only
scaled or deleted (never re-rendered from today's spec), and the status fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.builders import pool_model as pool
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.model import (
    DeploymentState,
    Observation,
    SetCurrent,
    SetManager,
    VersionSummary,
)
from workerpool_operator.versioning.pool import plan_pass

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ME = "op/cluster"


def live(name: str, build: str, replicas: int, ready: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {BUILD_ID_LABEL: build}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": "old"}]}}},
        "status": {"readyReplicas": ready},
    }


def observed(*versions: tuple[str, str], current: str | None, open_: dict[str, int]) -> Observation:
    return Observation(
        temporal=DeploymentState(
            exists=bool(versions),
            manager_identity=ME if versions else "",
            current_build=current,
            versions=tuple(VersionSummary(b, s) for b, s in versions),  # type: ignore[arg-type]
        ),
        pinned_open=dict(open_),
        gate=None,
        unversioned_pollers=False,
    )


def versioned(status: dict[str, Any] | None = None, **spec: Any) -> TemporalWorkerPool:
    p = pool({"versioning": {"sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 0}},
              "image": {"tag": "2.0"}, **spec}, name="orders")  # fmt: skip
    if status is not None:
        p = p.model_copy(update={"status": type(p).model_validate(
            {"metadata": {}, "spec": p.spec.dump(), "status": status}).status})  # fmt: skip
    return p


def test_a_new_versioned_pool_starts_its_target_build_with_one_replica() -> None:
    p = versioned()
    out = plan_pass(p, live=[], observed=observed(current=None, open_={}), identity=ME, now=NOW,
                    desired_replicas=0)  # fmt: skip
    target = target_build_id(p)
    assert [d["metadata"]["labels"][BUILD_ID_LABEL] for d in out.apply] == [target]
    assert out.apply[0]["spec"]["replicas"] == 1
    assert out.routing.calls == ()
    assert out.status["targetBuildId"] == target
    assert out.status["currentBuildId"] is None
    assert out.status["versions"] == [
        {
            "buildId": target,
            "state": "NotRegistered",
            "deployment": out.apply[0]["metadata"]["name"],
        }
    ]


def test_old_builds_are_only_scaled_never_re_rendered() -> None:
    p = versioned()
    target = target_build_id(p)
    obs = observed(("old", "Current"), (target, "Inactive"), current="old",
                   open_={"old": 2, target: 0})  # fmt: skip
    old = live("orders-old", "old", 0)
    new = live("orders-new", target, 3, 3)
    out = plan_pass(p, live=[old, new], observed=obs, identity=ME, now=NOW, desired_replicas=3)
    assert out.routing.calls == (SetCurrent(target),)
    assert [d["metadata"]["labels"][BUILD_ID_LABEL] for d in out.apply] == [target]
    # Demoted by this very pass: kept at the pool's scale, with its own template, until a later
    # pass sees it demoted (the promotion may still be refused).
    assert out.scale == {"orders-old": 3}
    assert out.delete == []
    states = {v["buildId"]: v["state"] for v in out.status["versions"]}
    assert states == {"old": "Draining", target: "Current"}
    assert out.status["currentBuildId"] == target


def test_a_drained_build_past_its_sunset_is_deleted() -> None:
    seen = {"buildId": "old", "state": "Drained", "drainedSince": "2026-12-06T11:00:00Z"}
    p = versioned(status={"versions": [seen]})
    target = target_build_id(p)
    obs = observed(("old", "Drained"), (target, "Current"), current=target,
                   open_={"old": 0, target: 0})  # fmt: skip
    out = plan_pass(p, live=[live("orders-old", "old", 1), live("orders-new", target, 3)],
                    observed=obs, identity=ME, now=NOW, desired_replicas=3)  # fmt: skip
    assert out.delete == ["orders-old"]
    assert out.routing.calls == ()
    assert out.scale == {}


def test_first_routing_change_claims_the_deployment() -> None:
    p = versioned()
    target = target_build_id(p)
    obs = observed((target, "Inactive"), current=None, open_={target: 0})
    obs = Observation(
        temporal=DeploymentState(
            exists=True, current_build=None, versions=obs.temporal.versions, manager_identity=""
        ),
        pinned_open=obs.pinned_open,
        gate=None,
        unversioned_pollers=False,
    )
    out = plan_pass(p, live=[live("orders-new", target, 1)], observed=obs, identity=ME, now=NOW,
                    desired_replicas=2)  # fmt: skip
    assert out.routing.calls == (SetManager(), SetCurrent(target))
    assert out.apply[0]["spec"]["replicas"] == 2


def test_a_manual_action_acts_only_on_the_build_it_names() -> None:
    """spec.versioning.promote / abort and their annotations name a build: a stale one (an
    earlier build) never promotes or aborts the build the spec asks for now."""
    from workerpool_operator.versioning.pool import _asked

    p = versioned()
    target = target_build_id(p)
    assert _asked(p, target, "workerpools.io/promote", target) == "spec.versioning.promote"
    assert _asked(p, "older-build", "workerpools.io/promote", target) == ""
    p.metadata["annotations"] = {"workerpools.io/abort": target}
    assert _asked(p, None, "workerpools.io/abort", target) == "annotation workerpools.io/abort"
    p.metadata["annotations"] = {"workerpools.io/abort": "older-build"}
    assert _asked(p, None, "workerpools.io/abort", target) == ""
