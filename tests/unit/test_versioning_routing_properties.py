"""Safety rules of the routing plan, as properties over arbitrary observed states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workerpool_operator.api.versioning import VersioningSpec, VersionStatus
from workerpool_operator.versioning.model import (
    BuildDeployment,
    DeleteVersion,
    DeploymentState,
    GateObservation,
    RoutingInput,
    SetCurrent,
    SetManager,
    SetRamping,
    VersionSummary,
)
from workerpool_operator.versioning.routing import ROUTING_PROPAGATION_S, plan

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ME = "op/c1"
BUILDS = ["a", "b", "c", "d"]
STATUSES = ["Inactive", "Created", "Current", "Ramping", "Draining", "Drained"]

specs = st.builds(
    lambda strategy, paused, gate, retention, down, extra, window: VersioningSpec.model_validate(
        {
            "strategy": strategy,
            "paused": paused,
            "retention": retention,
            "rollbackWindowSeconds": window,
            "sunset": {"scaleDownDelaySeconds": down, "deleteDelaySeconds": down + extra},
            **(
                {
                    "steps": [
                        {"rampPercentage": 10, "pauseSeconds": 30},
                        {"rampPercentage": 60, "pauseSeconds": 30},
                    ]
                }
                if strategy == "Progressive"
                else {}
            ),
            **({"gate": {"workflowType": "Smoke"}} if gate and strategy != "Manual" else {}),
        }
    ),
    st.sampled_from(["AllAtOnce", "Progressive", "Manual"]),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
    st.integers(0, 600),
    st.integers(0, 600),
    st.integers(0, 3600),
)


@st.composite
def inputs(draw: st.DrawFn) -> RoutingInput:
    present = draw(st.lists(st.sampled_from(BUILDS), unique=True, max_size=4))
    versions = tuple(
        VersionSummary(
            b,
            draw(st.sampled_from(STATUSES)),
            created_at=NOW - timedelta(seconds=draw(st.integers(0, 10_000))),
            last_current_at=draw(
                st.none() | st.integers(0, 10_000).map(lambda s: NOW - timedelta(seconds=s))
            ),
        )
        for b in present
    )
    current = draw(st.none() | st.sampled_from(present)) if present else None
    ramping = draw(st.none() | st.sampled_from(present)) if present else None
    if ramping == current:
        ramping = None
    temporal = DeploymentState(
        exists=bool(present),
        conflict_token=b"t",
        manager_identity=draw(st.sampled_from(["", ME, "alice"])),
        current_build=current,
        ramping_build=ramping,
        ramp_percentage=draw(st.sampled_from([0.0, 10.0, 30.0, 60.0])) if ramping else 0.0,
        ramp_changed_at=NOW - timedelta(seconds=draw(st.integers(0, 100))),
        routing_updating=draw(st.booleans()),
        routing_changed_at=NOW - timedelta(seconds=draw(st.integers(0, 30))),
        versions=versions,
    )
    kube = {
        b: BuildDeployment(f"p-{b}", draw(st.integers(0, 5)))
        for b in draw(st.lists(st.sampled_from(BUILDS), unique=True, max_size=4))
    }
    counts: dict[str, int | None] = {
        b: draw(st.none() | st.integers(0, 3)) for b in {*present, *kube}
    }
    previous = [
        VersionStatus(
            build_id=b,
            state=draw(st.sampled_from(["NotRegistered", "Inactive", "Draining", "Drained"])),
            drained_since=(NOW - timedelta(seconds=draw(st.integers(0, 2000)))).isoformat(),
        )
        for b in draw(st.lists(st.sampled_from(BUILDS), unique=True, max_size=4))
    ]
    return RoutingInput(
        spec=draw(specs),
        pool="p",
        deployment="ns/p",
        target_build=draw(st.sampled_from(BUILDS)),
        task_queue="q",
        identity=ME,
        temporal=temporal,
        now=NOW,
        desired_replicas=draw(st.integers(0, 4)),
        pinned_open=counts,
        build_deployments=kube,
        previous=previous,
        gate=draw(
            st.none()
            | st.sampled_from(["NotStarted", "Running", "Succeeded", "Failed"]).map(
                GateObservation  # type: ignore[arg-type]
            )
        ),
        unversioned_pollers=draw(st.booleans()),
    )


ROUTING = (SetCurrent, SetRamping, SetManager)


@settings(max_examples=150, deadline=None)
@given(inp=inputs())
def test_safety_rules_hold_in_every_state(inp: RoutingInput) -> None:
    p = plan(inp)
    t, spec = inp.temporal, inp.spec
    by_build: dict[str, Any] = {v.build_id: v for v in p.versions}
    # Open (or uncounted) pinned work on a demoted build always keeps a worker and its
    # Deployment (the current build runs at the pool's own scale: spec.replicas or the scaler).
    for build, count in inp.pinned_open.items():
        v = by_build.get(build)
        if v is not None and count != 0 and build != inp.target_build and v.state != "Current":
            assert v.replicas >= 1 or v.state == "NotRegistered", v
            assert not v.delete or v.state == "NotRegistered", v
    # The target keeps at least one replica until it is registered (and, here, always).
    target = by_build[inp.target_build]
    assert target.replicas >= 1 or target.state in ("Current",)
    assert not target.delete
    # Current and ramping builds are never deleted, locally or in Temporal.
    live_routing = {t.current_build, t.ramping_build, p.current_build} - {None}
    for build in sorted(b for b in live_routing if b is not None):
        assert build not in {c.build_id for c in p.calls if isinstance(c, DeleteVersion)}
        if build in by_build:
            assert not by_build[build].delete
    # No routing change under Manual, paused, another manager or an update in flight.
    changes = [c for c in p.calls if isinstance(c, ROUTING)]
    propagating = (
        t.routing_updating
        and t.routing_changed_at is not None
        and ((NOW - t.routing_changed_at).total_seconds() < ROUTING_PROPAGATION_S)
    )
    if spec.strategy == "Manual" or spec.paused or propagating or (
        t.manager_identity not in ("", ME)
    ):  # fmt: skip
        assert changes == [], p
    # The manager is claimed before (never after) the first routing change.
    if changes and t.manager_identity != ME:
        assert isinstance(p.calls[0], SetManager)
    # Paused deletes nothing.
    if spec.paused:
        assert not any(v.delete for v in p.versions)
        assert not any(isinstance(c, DeleteVersion) for c in p.calls)
    # Nothing moves to a build that has not registered.
    target_summary = t.summary(inp.target_build)
    if target_summary is None or target_summary.status == "Created":
        assert not any(
            isinstance(c, SetCurrent | SetRamping) and c.build_id == inp.target_build
            for c in p.calls
        )
    # A plan is a function of its input.
    assert plan(inp) == p
