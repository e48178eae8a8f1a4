"""The routing plan, table-driven: what a versioned pool's operator does in each observed state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workerpool_operator.api.versioning import AnalysisSpec, VersioningSpec, VersionStatus
from workerpool_operator.reasons import Reason
from workerpool_operator.versioning.group import Group, standing_verdicts
from workerpool_operator.versioning.model import (
    AnalysisObservation,
    BuildDeployment,
    DeleteVersion,
    DeploymentState,
    GateObservation,
    RoutingInput,
    RoutingPlan,
    SetCurrent,
    SetManager,
    SetRamping,
    TaskCounts,
    VersionSummary,
    gate_workflow_id,
)
from workerpool_operator.versioning.routing import (
    DRAINED_GRACE_S,
    analysis_verdict,
    plan,
    status_versions,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ME = "workerpool-operator/cluster-1"
DEP = "team/orders"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def spec(**kw: Any) -> VersioningSpec:
    return VersioningSpec.model_validate(kw)


PROGRESSIVE = spec(
    strategy="Progressive",
    steps=[{"rampPercentage": 10, "pauseSeconds": 60}, {"rampPercentage": 50, "pauseSeconds": 120}],
)


def temporal(
    *versions: tuple[str, str], current: str | None = "A", ramping: str | None = None,
    pct: float = 0.0, ramp_at: datetime | None = None, manager: str = ME,
    last_current: dict[str, datetime] | None = None, updating: bool = False,
) -> DeploymentState:  # fmt: skip
    return DeploymentState(
        exists=True,
        conflict_token=b"t",
        manager_identity=manager,
        current_build=current,
        ramping_build=ramping,
        ramp_percentage=pct,
        ramp_changed_at=ramp_at,
        routing_updating=updating,
        routing_changed_at=ago(2) if updating else None,
        versions=tuple(
            VersionSummary(
                b,
                s,  # type: ignore[arg-type]
                created_at=ago(10_000 - i),
                last_current_at=(last_current or {}).get(b),
            )
            for i, (b, s) in enumerate(versions)
        ),
    )


def inp(t: DeploymentState, **kw: Any) -> RoutingInput:
    base: dict[str, Any] = {
        "spec": spec(),
        "pool": "orders",
        "deployment": DEP,
        "target_build": "B",
        "task_queue": "orders-q",
        "identity": ME,
        "temporal": t,
        "now": NOW,
        "desired_replicas": 3,
        "pinned_open": {"A": 0, "B": 0},
        "build_deployments": {
            "A": BuildDeployment("orders-a", 3, 3),
            "B": BuildDeployment("orders-b", 1, 0),
        },
    }
    base.update(kw)
    return RoutingInput(**base)


def version(p: RoutingPlan, build: str) -> Any:
    return next(v for v in p.versions if v.build_id == build)


def rollout(p: RoutingPlan) -> Any:
    return p.conditions[0]


# --- routing decisions ------------------------------------------------------------------------

ROUTING = [
    # (case, input, calls, reason)
    (
        "target not registered: wait, no call",
        inp(temporal(("A", "Current"))),
        [],
        Reason.WAITING_FOR_POLLERS,
    ),
    (
        "AllAtOnce claims routing first, then promotes",
        inp(temporal(("A", "Current"), ("B", "Inactive"), manager="")),
        [SetManager(), SetCurrent("B")],
        Reason.PROMOTED,
    ),
    (
        "AllAtOnce, already the manager",
        inp(temporal(("A", "Current"), ("B", "Inactive"))),
        [SetCurrent("B")],
        Reason.PROMOTED,
    ),
    (
        "someone else manages routing: report, do not fight",
        inp(temporal(("A", "Current"), ("B", "Inactive"), manager="alice")),
        [],
        Reason.OWNED_ELSEWHERE,
    ),
    (
        "Manual never changes routing",
        inp(temporal(("A", "Current"), ("B", "Inactive")), spec=spec(strategy="Manual")),
        [],
        Reason.MANUAL,
    ),
    (
        "paused holds routing",
        inp(temporal(("A", "Current"), ("B", "Inactive")), spec=spec(paused=True)),
        [],
        Reason.PAUSED,
    ),
    (
        "routing update still propagating",
        inp(temporal(("A", "Current"), ("B", "Inactive"), updating=True)),
        [],
        Reason.ROUTING_UPDATING,
    ),
    (
        "Progressive starts at the first step",
        inp(temporal(("A", "Current"), ("B", "Inactive")), spec=PROGRESSIVE),
        [SetRamping("B", 10.0)],
        Reason.RAMPING,
    ),
    (
        "Progressive holds a step for its pause",
        inp(
            temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10, ramp_at=ago(30)),
            spec=PROGRESSIVE,
        ),
        [],
        Reason.RAMPING,
    ),
    (
        "Progressive moves on once the pause is over",
        inp(
            temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10, ramp_at=ago(61)),
            spec=PROGRESSIVE,
        ),
        [SetRamping("B", 50.0)],
        Reason.RAMPING,
    ),
    (
        "Progressive promotes after the last step's pause",
        inp(
            temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=50, ramp_at=ago(121)),
            spec=PROGRESSIVE,
        ),
        [SetCurrent("B")],
        Reason.PROMOTED,
    ),
    (
        "a percentage set by hand resumes at the next step above it",
        inp(
            temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=30, ramp_at=ago(1)),
            spec=PROGRESSIVE,
        ),
        [SetRamping("B", 50.0)],
        Reason.RAMPING,
    ),
    (
        "Progressive from unversioned with no unversioned pollers goes current at once",
        inp(temporal(("B", "Inactive"), current=None), spec=PROGRESSIVE),
        [SetCurrent("B")],
        Reason.PROMOTED,
    ),
    (
        "Progressive from unversioned ramps while unversioned workers poll",
        inp(temporal(("B", "Inactive"), current=None), spec=PROGRESSIVE, unversioned_pollers=True),
        [SetRamping("B", 10.0)],
        Reason.RAMPING,
    ),
    (
        "a new target replaces the build that was ramping",
        inp(
            temporal(
                ("A", "Current"),
                ("B", "Ramping"),
                ("C", "Inactive"),
                ramping="B",
                pct=50,
                ramp_at=ago(1),
            ),
            spec=PROGRESSIVE,
            target_build="C",
        ),
        [SetRamping("C", 10.0)],
        Reason.RAMPING,
    ),
    (
        "reverted mid-ramp: the left-over ramp is cleared",
        inp(
            temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10, ramp_at=ago(1)),
            target_build="A",
        ),
        [SetRamping(None, 0.0)],
        Reason.TARGET_CURRENT,
    ),
    (
        "rollback: a build current within the window comes back at once, past gate and steps",
        inp(
            temporal(
                ("A", "Current"),
                ("B", "Draining"),
                ("C", "Ramping"),
                ramping="C",
                pct=10,
                ramp_at=ago(1),
                last_current={"B": ago(600)},
            ),
            spec=spec(
                strategy="Progressive",
                steps=[{"rampPercentage": 10}],
                gate={"workflowType": "Smoke"},
            ),
        ),
        [SetRamping(None, 0.0), SetCurrent("B")],
        Reason.ROLLED_BACK,
    ),
    (
        "outside the rollback window it is a normal rollout",
        inp(
            temporal(("A", "Current"), ("B", "Drained"), last_current={"B": ago(7200)}),
            spec=PROGRESSIVE,
        ),
        [SetRamping("B", 10.0)],
        Reason.RAMPING,
    ),
    (
        "target current: nothing to do",
        inp(temporal(("A", "Draining"), ("B", "Current"), current="B")),
        [],
        Reason.TARGET_CURRENT,
    ),
]


@pytest.mark.parametrize(("case", "given", "calls", "reason"), ROUTING, ids=[c[0] for c in ROUTING])
def test_routing(case: str, given: RoutingInput, calls: list[Any], reason: Reason) -> None:
    p = plan(given)
    assert list(p.calls) == calls, case
    assert rollout(p).reason == reason, rollout(p).message
    assert (rollout(p).status == "True") == (reason in (Reason.PROMOTED, Reason.TARGET_CURRENT,
                                                        Reason.ROLLED_BACK))  # fmt: skip
    assert rollout(p).message


def test_a_restarted_operator_resumes_at_the_same_step() -> None:
    """The step is read from Temporal: the same observation yields the same (empty) plan, and the
    pause counts from Temporal's timestamp, so a restart neither repeats nor skips a step."""
    mid = inp(
        temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=50, ramp_at=ago(100)),
        spec=PROGRESSIVE,
    )
    first, again = plan(mid), plan(mid)
    assert first == again
    assert first.calls == ()
    assert first.step == 1
    assert first.requeue_after == pytest.approx(20)
    assert first.ramp_percentage == 50


def test_rollback_is_reported_once_not_every_pass() -> None:
    after = inp(temporal(("A", "Draining"), ("B", "Current"), current="B",
                         last_current={"B": ago(1)}))  # fmt: skip
    assert plan(after).events == ()


def test_gate_runs_pinned_to_the_new_build_before_traffic_moves() -> None:
    gated = spec(gate={"workflowType": "Smoke", "input": {"n": 1}, "timeoutSeconds": 30})
    t = temporal(("A", "Current"), ("B", "Inactive"))
    first = plan(inp(t, spec=gated))
    assert first.calls == ()
    assert rollout(first).reason == Reason.GATED
    assert first.start_gate is not None
    assert first.start_gate.workflow_id == gate_workflow_id(DEP, "B")
    assert (first.start_gate.task_queue, first.start_gate.build_id) == ("orders-q", "B")
    assert (first.start_gate.input, first.start_gate.timeout_seconds) == ({"n": 1}, 30)

    running = plan(inp(t, spec=gated, gate=GateObservation("Running")))
    assert running.start_gate is None
    assert running.calls == ()

    failed = plan(inp(t, spec=gated, gate=GateObservation("Failed", "TIMED_OUT")))
    assert failed.calls == ()
    assert rollout(failed).reason == Reason.GATE_FAILED
    assert "TIMED_OUT" in rollout(failed).message

    passed = plan(inp(t, spec=gated, gate=GateObservation("Succeeded")))
    assert passed.calls == (SetCurrent("B"),)


# --- replicas and sunset ----------------------------------------------------------------------


def test_new_target_gets_a_replica_until_it_registers_whatever_the_scaler_says() -> None:
    p = plan(inp(temporal(("A", "Current")), desired_replicas=0))
    assert version(p, "B").replicas == 1
    assert version(p, "B").state == "NotRegistered"
    assert version(p, "A").replicas == 0  # current: what the scaler asks


def test_demoted_version_with_open_pinned_work_is_never_scaled_to_zero() -> None:
    t = temporal(("A", "Current"), ("B", "Inactive"))
    p = plan(inp(t, pinned_open={"A": 2, "B": 0}, desired_replicas=0))
    a = version(p, "A")
    assert (a.state, a.open_pinned, a.replicas) == ("Draining", 2, 3)
    assert version(p, "B").state == "Current"


def test_an_uncounted_version_counts_as_open() -> None:
    t = temporal(("A", "Drained"), ("B", "Current"), current="B")
    p = plan(inp(t, pinned_open={"B": 0}, spec=spec(sunset={"scaleDownDelaySeconds": 0})))
    assert version(p, "A").state == "Draining"
    assert version(p, "A").replicas == 3


def test_drained_version_sunset_counts_from_first_seen_drained() -> None:
    t = temporal(("A", "Draining"), ("B", "Current"), current="B")  # server still says Draining
    sunset = spec(sunset={"scaleDownDelaySeconds": 60, "deleteDelaySeconds": 300})
    fresh = plan(inp(t, spec=sunset))
    a = version(fresh, "A")
    assert (a.state, a.replicas, a.delete, a.drained_since) == ("Drained", 3, False, NOW)
    assert fresh.requeue_after == pytest.approx(60)

    seen = [VersionStatus(build_id="A", state="Drained", drained_since="2026-12-06T11:58:00Z")]
    later = version(plan(inp(t, spec=sunset, previous=seen)), "A")
    assert (later.replicas, later.delete) == (0, False)

    seen = [VersionStatus(build_id="A", state="Drained", drained_since="2026-12-06T11:50:00Z")]
    gone = plan(inp(t, spec=sunset, previous=seen))
    assert version(gone, "A").delete
    assert gone.calls == ()  # the Temporal version only once the Deployment is gone

    no_deploy = {"B": BuildDeployment("orders-b", 3, 3)}
    last = plan(inp(t, spec=sunset, previous=seen, build_deployments=no_deploy))
    assert last.calls == (DeleteVersion("A"),)

    t_gone = temporal(("B", "Current"), current="B")
    done = plan(inp(t_gone, spec=sunset, previous=seen, build_deployments=no_deploy))
    assert [v.build_id for v in done.versions] == ["B"]


def test_the_scalers_zero_for_a_drained_version_waits_out_visibility_lag() -> None:
    """A workflow pinned to the version a moment ago may not be counted yet: stopping the
    version's worker on the first 0 would strand it until the count catches up."""
    t = temporal(("A", "Draining"), ("B", "Current"), current="B")
    fresh = plan(inp(t, version_replicas={"A": 0, "B": 3}))
    assert (version(fresh, "A").state, version(fresh, "A").replicas) == ("Drained", 3)
    assert fresh.requeue_after == pytest.approx(DRAINED_GRACE_S)

    since = (NOW - timedelta(seconds=DRAINED_GRACE_S)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seen = [VersionStatus(build_id="A", state="Drained", drained_since=since)]
    later = plan(inp(t, version_replicas={"A": 0, "B": 3}, previous=seen))
    assert version(later, "A").replicas == 0  # long before sunset.scaleDownDelaySeconds


def test_paused_deletes_nothing() -> None:
    t = temporal(("A", "Drained"), ("B", "Current"), current="B")
    seen = [VersionStatus(build_id="A", state="Drained", drained_since="2026-12-01T00:00:00Z")]
    p = plan(inp(t, spec=spec(paused=True), previous=seen))
    assert not version(p, "A").delete
    assert p.calls == ()


def test_retention_retires_the_oldest_idle_versions_at_once() -> None:
    t = temporal(("X", "Drained"), ("Y", "Drained"), ("A", "Drained"), ("B", "Current"),
                 current="B")  # fmt: skip
    kube = {b: BuildDeployment(f"orders-{b.lower()}", 1, 1) for b in "XYAB"}
    p = plan(inp(t, spec=spec(retention=1), build_deployments=kube,
                 pinned_open={"X": 0, "Y": 0, "A": 0, "B": 0}))  # fmt: skip
    assert {v.build_id for v in p.versions if v.delete} == {"X", "Y"}
    assert not version(p, "A").delete  # the newest idle one is kept


def test_superseded_before_registering_is_removed() -> None:
    t = temporal(("A", "Current"))
    kube = {"A": BuildDeployment("orders-a", 3, 3), "B": BuildDeployment("orders-b", 1, 0),
            "C": BuildDeployment("orders-c", 1, 0)}  # fmt: skip
    p = plan(inp(t, target_build="C", build_deployments=kube))
    assert version(p, "B").delete
    assert version(p, "C").replicas == 3


def test_version_cap_near_counts_the_versions_that_hold_work() -> None:
    # 79 builds still draining (an unknown count keeps a build draining) + the current one.
    many = [(f"v{i}", "Drained") for i in range(79)] + [("A", "Current")]
    p = plan(inp(temporal(*many), version_cap=100))
    limit = p.conditions[1]
    assert (limit.status, limit.reason) == ("True", Reason.VERSION_LIMIT_NEAR)
    assert "matching.maxVersionsInDeployment" in limit.message
    assert "--version-cap" in limit.message
    few = plan(inp(temporal(("A", "Current"))))
    assert few.conditions[1].status == "False"


def cap_input(cap: int, target_registered: bool, **counts: int) -> RoutingInput:
    """Idle (count 0) or draining builds v1..vN, oldest first, A current, target B."""
    versions = [(b, "Drained") for b in counts] + [("A", "Current")]
    if target_registered:
        versions.append(("B", "Inactive"))
    kube = {b: BuildDeployment(f"orders-{b}", 1, 1) for b in counts}
    kube.update(A=BuildDeployment("orders-a", 3, 3), B=BuildDeployment("orders-b", 1, 0))
    return inp(
        temporal(*versions),
        spec=spec(retention=50),
        version_cap=cap,
        pinned_open={**counts, "A": 0, "B": 0},
        build_deployments=kube,
    )


def retired(p: RoutingPlan) -> list[str]:
    return sorted(v.build_id for v in p.versions if v.delete)


CAP_ROOM = [
    # (case, input, retired builds)
    ("far below the cap: sunset delays rule", cap_input(100, False, v1=0, v2=0, v3=0), []),
    # 4 registered, the target needs a slot and one stays free: keep 3 -> retire the oldest.
    ("target waits for a slot", cap_input(5, False, v1=0, v2=0, v3=0), ["v1"]),
    # 5 registered with the target: keep 4 (one slot free for the next build).
    ("target registered, one slot kept free", cap_input(5, True, v1=0, v2=0, v3=0), ["v1"]),
    ("room enough", cap_input(6, True, v1=0, v2=0, v3=0), []),
    # Builds with open pinned workflows are never retired, even at the cap.
    ("draining builds stay", cap_input(5, False, v1=2, v2=1, v3=0), ["v3"]),
    ("nothing idle to retire", cap_input(4, False, v1=2, v2=1, v3=1), []),
]


@pytest.mark.parametrize(("case", "given", "expected"), CAP_ROOM, ids=[c[0] for c in CAP_ROOM])
def test_idle_builds_are_retired_to_keep_a_slot_free(
    case: str, given: RoutingInput, expected: list[str]
) -> None:
    p = plan(given)
    assert retired(p) == expected, case
    for build in expected:
        assert version(p, build).replicas == 0
    assert not [v for v in p.versions if v.delete and (v.open_pinned or 0) > 0]


def test_a_build_retired_for_room_loses_its_temporal_version_once_its_deployment_is_gone() -> None:
    given = cap_input(5, False, v1=0, v2=0, v3=0)
    kube = dict(given.build_deployments)
    del kube["v1"]  # deleted in an earlier pass
    p = plan(replace(given, build_deployments=kube))
    assert DeleteVersion("v1") in p.calls
    assert DeleteVersion("v2") not in p.calls


def test_idle_builds_do_not_count_toward_the_limit() -> None:
    # cap 5 -> near at 4 versions holding work.
    idle = plan(cap_input(5, True, v1=0, v2=0, v3=0))
    assert (idle.conditions[1].status, idle.conditions[1].reason) == (
        "False",
        Reason.WITHIN_VERSION_LIMIT,
    )
    busy = plan(cap_input(5, True, v1=1, v2=1, v3=0))  # v1, v2, A, B hold work
    assert (busy.conditions[1].status, busy.conditions[1].reason) == (
        "True",
        Reason.VERSION_LIMIT_NEAR,
    )
    assert busy.conditions[1].message.startswith("4 of at most 5 versions")


def test_status_versions_are_sorted_and_carry_counts() -> None:
    t = temporal(("B", "Ramping"), ("A", "Current"), ramping="B", pct=10, ramp_at=ago(1))
    p = plan(replace(inp(t, spec=PROGRESSIVE), pinned_open={"A": 4, "B": 1}))
    rows = status_versions(p, inp(t).build_deployments)
    assert [(r.build_id, r.state, r.open_pinned_workflows) for r in rows] == [
        ("A", "Current", 4),
        ("B", "Ramping", 1),
    ]
    assert rows[1].ramp_percentage == 10
    assert rows[0].deployment == "orders-a"


def test_a_build_seen_registered_before_is_kept_when_temporal_no_longer_shows_it() -> None:
    """E.g. the connection now points at another Temporal namespace: its pinned work may still
    run where the operator no longer looks, so its Deployment is not deleted."""
    seen = [VersionStatus(build_id="A", state="Draining", openPinnedWorkflows=2)]
    p = plan(inp(DeploymentState(), previous=seen))
    a = version(p, "A")
    assert (a.state, a.replicas, a.delete) == ("NotRegistered", 3, False)


def test_a_propagation_stuck_for_long_does_not_hold_the_rollout() -> None:
    """Temporal was seen reporting IN_PROGRESS for minutes after a rollback: past
    ROUTING_PROPAGATION_S the next routing change goes ahead."""
    from dataclasses import replace

    stuck = replace(temporal(("A", "Current"), ("B", "Inactive"), updating=True),
                    routing_changed_at=ago(600))  # fmt: skip
    p = plan(inp(stuck))
    assert SetCurrent("B") in p.calls


# --- analysis (issue 19) ------------------------------------------------------------------------

ANALYZED = spec(
    strategy="Progressive",
    steps=[{"rampPercentage": 10, "pauseSeconds": 60}, {"rampPercentage": 50, "pauseSeconds": 120}],
    analysis={"maxFailedPercent": 20, "minClosedWorkflows": 5},
)
RAMPING_B = temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10.0, ramp_at=ago(5))


def test_a_ramping_build_whose_workflows_fail_is_rolled_back_at_once() -> None:
    bad = AnalysisObservation(closed=10, failed=3)
    p = plan(inp(RAMPING_B, spec=ANALYZED, analysis=bad, generation=7))
    assert p.calls == (SetRamping(None, 0.0),)  # mid-pause, not at its end
    assert rollout(p).reason == Reason.ANALYSIS_FAILED
    assert "3 of its 10 closed workflows" in rollout(p).message
    assert [e.reason for e in p.events] == [Reason.ANALYSIS_FAILED]
    assert p.events[0].warning
    rejected = version(p, "B")
    assert (rejected.rejected_generation, rejected.replicas >= 1) == (7, True)
    assert p.current_build == "A"
    assert p.ramp_percentage is None


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        (AnalysisObservation(closed=4, failed=4), "too few closed to judge"),
        (AnalysisObservation(closed=10, failed=2), "20 % is allowed"),
        (None, "visibility did not answer"),
    ],
)
def test_no_verdict_keeps_the_ramp(seen: AnalysisObservation | None, why: str) -> None:
    p = plan(inp(RAMPING_B, spec=ANALYZED, analysis=seen, generation=7))
    assert rollout(p).reason == Reason.RAMPING, why
    assert p.calls == ()


TASK_RULES = AnalysisSpec.model_validate(
    {"maxFailedPercent": 20, "minClosedWorkflows": 5, "maxWorkflowTaskFailurePercent": 10,
     "maxActivityFailurePercent": 50, "minTasks": 20}
)  # fmt: skip


def tasks(wf: tuple[int, int] = (0, 0), act: tuple[int, int] = (0, 0)) -> TaskCounts:
    """(processed, failed) workflow and activity tasks of the build's 2 workers."""
    return TaskCounts(2, wf[0], wf[1], act[0], act[1])


@pytest.mark.parametrize(
    ("seen", "verdict"),
    [
        # Workflow tasks: non-determinism keeps the workflow Running, nothing closes.
        (
            AnalysisObservation(0, 0, tasks(wf=(20, 3))),
            "3 of the 20 workflow tasks its workers processed failed (15%, "
            "spec.versioning.analysis.maxWorkflowTaskFailurePercent 10; from the heartbeats of its "
            "2 workers)",
        ),
        (AnalysisObservation(0, 0, tasks(wf=(20, 2))), None),  # 10 % is allowed
        (AnalysisObservation(0, 0, tasks(wf=(19, 19))), None),  # too few tasks to judge
        # Activities: retried failures never close the workflow either.
        (
            AnalysisObservation(0, 0, tasks(act=(40, 21))),
            "21 of the 40 activity tasks its workers processed failed (52%, "
            "spec.versioning.analysis.maxActivityFailurePercent 50; from the heartbeats of its "
            "2 workers)",
        ),
        (AnalysisObservation(0, 0, tasks(act=(40, 20))), None),
        (AnalysisObservation(0, 0, tasks(act=(5, 5))), None),
        # The closed-workflow rule is judged first, then workflow tasks, then activities.
        (
            AnalysisObservation(10, 3, tasks(wf=(20, 20), act=(40, 40))),
            "3 of its 10 closed workflows failed or timed out (30%, "
            "spec.versioning.analysis.maxFailedPercent 20)",
        ),
        (AnalysisObservation(10, 0, tasks(wf=(20, 20), act=(40, 40))), "20 of the 20 workflow"),
        # Visibility did not answer: the task rules still judge; ListWorkers did not: they wait.
        (AnalysisObservation(None, None, tasks(act=(40, 40))), "40 of the 40 activity"),
        (AnalysisObservation(10, 3, None), "3 of its 10 closed"),
        (AnalysisObservation(3, 3, None), None),
        # A worker reporting more failed than processed tasks counts as all failed, no more.
        (AnalysisObservation(0, 0, tasks(wf=(20, 25))), "20 of the 20 workflow"),
    ],
)
def test_the_analysis_verdict_names_the_rule_its_counts_and_threshold(
    seen: AnalysisObservation, verdict: str | None
) -> None:
    got = analysis_verdict(TASK_RULES, seen)
    if verdict is None:
        assert got is None
    else:
        assert (got or "").startswith(verdict), got


def test_task_rules_are_off_unless_set() -> None:
    """An analysis written before the task rules keeps its meaning: only closed workflows."""
    old = AnalysisSpec.model_validate({"maxFailedPercent": 20})
    assert analysis_verdict(old, AnalysisObservation(0, 0, tasks((100, 100), (100, 100)))) is None


def test_a_build_whose_workflow_tasks_fail_is_rolled_back_at_once() -> None:
    judged = spec(
        strategy="Progressive",
        steps=[{"rampPercentage": 10, "pauseSeconds": 60}],
        analysis={"maxWorkflowTaskFailurePercent": 10, "minTasks": 5},
    )
    seen = AnalysisObservation(0, 0, TaskCounts(1, 8, 6, 0, 0))
    p = plan(inp(RAMPING_B, spec=judged, analysis=seen, generation=3))
    assert p.calls == (SetRamping(None, 0.0),)
    assert rollout(p).reason == Reason.ANALYSIS_FAILED
    assert "maxWorkflowTaskFailurePercent 10" in rollout(p).message
    assert [e.reason for e in p.events] == [Reason.ANALYSIS_FAILED]
    assert version(p, "B").rejected_generation == 3
    assert version(p, "B").rejected == (
        "6 of the 8 workflow tasks its workers processed failed (75%, spec.versioning.analysis."
        "maxWorkflowTaskFailurePercent 10; from the heartbeats of its 1 worker)"
    )


@pytest.mark.parametrize(
    ("analysis", "field"),
    [
        ({"maxWorkflowTaskFailurePercent": 101}, "maxWorkflowTaskFailurePercent"),
        ({"maxActivityFailurePercent": -1}, "maxActivityFailurePercent"),
        ({"minTasks": 0}, "minTasks"),
    ],
)
def test_task_rule_bounds(analysis: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AnalysisSpec.model_validate(analysis)


def test_a_rejected_build_is_not_ramped_again_until_the_spec_changes() -> None:
    after = temporal(("A", "Current"), ("B", "Draining"))
    stored = [VersionStatus(build_id="B", state="Draining", rejected="3 of 10 failed",
                            rejected_generation=7)]  # fmt: skip
    held = plan(inp(after, spec=ANALYZED, previous=stored, generation=7))
    assert held.calls == ()
    assert rollout(held).reason == Reason.ANALYSIS_FAILED
    assert version(held, "B").rejected == "3 of 10 failed"  # kept for the next pass
    # A spec change (a higher generation): judged afresh, the first step again.
    again = plan(inp(after, spec=ANALYZED, previous=stored, generation=8))
    assert again.calls == (SetRamping("B", 10.0),)
    assert version(again, "B").rejected is None


def test_analysis_needs_a_progressive_strategy() -> None:
    with pytest.raises(ValueError, match="Progressive"):
        spec(analysis={"maxFailedPercent": 5})


# --- manual promote and abort (issue 19) ---------------------------------------------------------


def test_promote_makes_the_target_current_mid_ramp() -> None:
    p = plan(inp(RAMPING_B, spec=ANALYZED, promote="annotation workerpools.io/promote"))
    assert p.calls == (SetCurrent("B"),)
    assert rollout(p).reason == Reason.PROMOTED
    assert "annotation workerpools.io/promote" in p.events[0].message


def test_promote_waits_for_the_build_to_register() -> None:
    unregistered = temporal(("A", "Current"))
    p = plan(inp(unregistered, spec=ANALYZED, promote="spec.versioning.promote"))
    assert p.calls == ()
    assert rollout(p).reason == Reason.WAITING_FOR_POLLERS


def test_abort_clears_the_ramp_and_holds_the_build() -> None:
    p = plan(inp(RAMPING_B, spec=ANALYZED, abort="spec.versioning.abort"))
    assert p.calls == (SetRamping(None, 0.0),)
    assert rollout(p).reason == Reason.ABORTED
    held = plan(inp(temporal(("A", "Current"), ("B", "Draining")), spec=ANALYZED,
                    abort="spec.versioning.abort"))  # fmt: skip
    assert held.calls == ()
    assert rollout(held).reason == Reason.ABORTED
    # Abort of a build that is already current changes nothing: revert the spec instead.
    current = plan(inp(temporal(("B", "Current"), current="B"), abort="spec.versioning.abort"))
    assert rollout(current).reason == Reason.TARGET_CURRENT


# --- per-step gates (issue 19) -------------------------------------------------------------------

STEP_GATED = spec(
    strategy="Progressive",
    steps=[{"rampPercentage": 10, "pauseSeconds": 60},
           {"rampPercentage": 50, "pauseSeconds": 60, "gate": {"workflowType": "Canary"}}],
)  # fmt: skip
PAUSE_OVER = temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10.0, ramp_at=ago(90))


def test_a_step_gate_runs_before_its_share_moves() -> None:
    p = plan(inp(PAUSE_OVER, spec=STEP_GATED))
    assert p.calls == ()
    assert rollout(p).reason == Reason.GATED
    assert p.start_gate is not None
    assert p.start_gate.workflow_id == f"{DEP}/gate/B/step-2"
    running = plan(inp(PAUSE_OVER, spec=STEP_GATED, step_gate=(1, GateObservation("Running"))))
    assert (running.calls, running.start_gate) == ((), None)
    # A gate of another step (a stale reading) is not this step's.
    other = plan(inp(PAUSE_OVER, spec=STEP_GATED, step_gate=(0, GateObservation("Succeeded"))))
    assert other.calls == ()
    passed = plan(inp(PAUSE_OVER, spec=STEP_GATED, step_gate=(1, GateObservation("Succeeded"))))
    assert passed.calls == (SetRamping("B", 50.0),)


def test_a_failed_step_gate_rolls_back_and_holds_the_build() -> None:
    failed = GateObservation("Failed", "FAILED")
    p = plan(inp(PAUSE_OVER, spec=STEP_GATED, step_gate=(1, failed), generation=4))
    assert p.calls == (SetRamping(None, 0.0),)
    assert rollout(p).reason == Reason.GATE_FAILED
    assert p.events[0].warning
    entry = version(p, "B")
    assert entry.rejected is not None
    assert entry.rejected.startswith("gate workflow Canary of step 2 failed")
    stored = [VersionStatus(build_id="B", state="Draining", rejected=entry.rejected,
                            rejected_generation=4)]  # fmt: skip
    after = temporal(("A", "Current"), ("B", "Draining"))
    held = plan(inp(after, spec=STEP_GATED, previous=stored, generation=4))
    assert held.calls == ()
    assert rollout(held).reason == Reason.GATE_FAILED


# --- routing of a group's members ---------------------------------------------------------------

REGISTERED = temporal(("A", "Current"), ("B", "Inactive"))


def grp(ready: dict[str, int] | None = None) -> Group:
    """A release group of two pools, `act` (its driver) and `orders`, with build B."""
    return Group(
        deployment=DEP,
        members=("act", "orders"),
        build_id="B",
        queues={"act": "act-q", "orders": "orders-q"},
        ready=ready if ready is not None else {"act": 1, "orders": 1},
    )


def test_the_driver_promotes_once_every_member_polls() -> None:
    g = replace(grp(), members=("orders", "zeta"), queues={"orders": "orders-q", "zeta": "z-q"},
                ready={"orders": 1, "zeta": 1})  # fmt: skip
    p = plan(inp(REGISTERED, group=g, polled=frozenset({"orders-q", "z-q"})))
    assert p.calls == (SetCurrent("B"),)
    assert rollout(p).reason == Reason.PROMOTED


def test_a_member_not_polling_holds_the_drivers_promotion() -> None:
    g = replace(grp(), members=("orders", "zeta"), queues={"orders": "orders-q", "zeta": "z-q"},
                ready={"orders": 1, "zeta": 1})  # fmt: skip
    p = plan(inp(REGISTERED, group=g, polled=frozenset({"orders-q"})))
    assert p.calls == ()
    assert rollout(p).reason == Reason.RELEASE_GROUP_HELD
    assert "pool zeta: no worker of build B has polled task queue z-q" in rollout(p).message
    assert rollout(p).status == "False"


def test_a_held_ramp_does_not_start() -> None:
    g = replace(grp(), members=("orders", "zeta"), ready={"orders": 1, "zeta": 0})
    p = plan(inp(REGISTERED, spec=PROGRESSIVE, group=g, polled=frozenset({"orders-q"})))
    assert not any(isinstance(c, SetRamping) for c in p.calls)
    assert rollout(p).reason == Reason.RELEASE_GROUP_HELD


def test_a_held_group_still_rolls_back_a_bad_ramp() -> None:
    """Clearing a ramp moves no work to the new build: the hold never stops it."""
    g = replace(grp(), members=("orders", "zeta"), ready={"orders": 1, "zeta": 0})
    judged = spec(
        strategy="Progressive",
        steps=[{"rampPercentage": 10, "pauseSeconds": 60}],
        analysis={"maxFailedPercent": 5, "minClosedWorkflows": 5},
    )
    t = temporal(("A", "Current"), ("B", "Ramping"), ramping="B", pct=10.0, ramp_at=ago(5))
    p = plan(inp(t, spec=judged, group=g, analysis=AnalysisObservation(closed=10, failed=10)))
    assert SetRamping(None, 0.0) in p.calls
    assert rollout(p).reason == Reason.ANALYSIS_FAILED


def test_a_follower_makes_no_call_and_names_the_driver() -> None:
    g = grp()  # act drives, orders follows
    unclaimed = temporal(("A", "Current"), ("B", "Inactive"), manager="")
    p = plan(inp(unclaimed, group=g, polled=frozenset({"act-q", "orders-q"})))
    assert p.calls == ()
    assert p.start_gate is None
    assert rollout(p).reason == Reason.RELEASE_GROUP_FOLLOWING
    assert "routing is made by pool act" in rollout(p).message


def test_a_follower_starts_no_gate_and_deletes_no_version() -> None:
    g = grp()
    gated = spec(deploymentName=DEP, gate={"workflowType": "Smoke"})
    t = temporal(("A", "Current"), ("B", "Inactive"), ("OLD", "Drained"))
    p = plan(inp(t, spec=gated, group=g, pinned_open={"A": 0, "B": 0, "OLD": 0},
                 previous=()))  # fmt: skip
    assert p.calls == ()
    assert p.start_gate is None


def test_a_follower_is_done_once_the_groups_build_is_current() -> None:
    p = plan(inp(temporal(("B", "Current"), current="B"), group=grp()))
    assert rollout(p).status == "True"
    assert "routing is made by pool act" in rollout(p).message


def test_an_invalid_group_routes_nothing() -> None:
    g = replace(grp(), members=("orders", "zeta"), problem="release group x: differs")
    p = plan(inp(REGISTERED, group=g, polled=frozenset({"orders-q", "zeta-q"})))
    assert not any(isinstance(c, SetCurrent | SetRamping | SetManager) for c in p.calls)
    assert rollout(p).reason == Reason.RELEASE_GROUP_INVALID


# --- a release group's verdict outlives its driver ------------------------------------------------

ROLLED_BACK = temporal(("A", "Current"), ("B", "Draining"))


def recorded(p: RoutingPlan, generation: int) -> dict[str, str]:
    """What the group reads from a member whose status.versions the plan `p` wrote."""
    rows = [v.model_dump(mode="json", by_alias=True, exclude_none=True)
            for v in status_versions(p, {})]  # fmt: skip
    return standing_verdicts(rows, generation)


def test_every_member_records_the_verdict_so_it_outlives_the_driver() -> None:
    """`act` drives and rolls B back; `orders` follows. Then `act` is deleted and `orders`,
    alone, drives: it must not ramp B again (the spec did not change)."""
    g = grp()
    judged = plan(inp(RAMPING_B, spec=ANALYZED, pool="act", group=g, generation=7,
                      analysis=AnalysisObservation(closed=10, failed=3)))  # fmt: skip
    assert judged.calls == (SetRamping(None, 0.0),)
    verdict = recorded(judged, 7)
    assert set(verdict) == {"B"}
    # The follower reads the driver's status and records the verdict at its own generation.
    followed = plan(inp(ROLLED_BACK, spec=ANALYZED, pool="orders", generation=4,
                        group=replace(g, rejected=verdict)))  # fmt: skip
    entry = version(followed, "B")
    assert (entry.rejected, entry.rejected_generation) == (verdict["B"], 4)
    # The driver is gone: `orders` alone, with only its own status.
    alone = plan(inp(ROLLED_BACK, spec=ANALYZED, generation=4,
                     previous=status_versions(followed, {})))  # fmt: skip
    assert alone.calls == ()
    assert rollout(alone).reason == Reason.ANALYSIS_FAILED
    assert version(alone, "B").rejected == verdict["B"]


def test_a_new_driver_reads_the_groups_verdict_from_the_other_members() -> None:
    """A pool with an earlier name joins (a fixed build ID keeps the group's build): it drives
    now, has no status of its own, and must not ramp the build the group rejected."""
    g = replace(grp(), members=("aaa", "act", "orders"), rejected={"B": "3 of 10 failed"},
                queues={"aaa": "aaa-q", "act": "act-q", "orders": "orders-q"},
                ready={"aaa": 1, "act": 1, "orders": 1})  # fmt: skip
    p = plan(inp(ROLLED_BACK, spec=ANALYZED, pool="aaa", group=g, generation=1, previous=(),
                 polled=frozenset({"aaa-q", "act-q", "orders-q"})))  # fmt: skip
    assert p.calls == ()
    assert rollout(p).reason == Reason.ANALYSIS_FAILED
    assert "3 of 10 failed" in rollout(p).message
    entry = version(p, "B")
    assert (entry.rejected, entry.rejected_generation) == ("3 of 10 failed", 1)


def test_the_groups_verdict_is_lifted_once_every_record_of_it_is() -> None:
    """A member whose spec changed keeps its lifted record as it is (it does not stamp the
    verdict afresh from the others); once no member's record stands, B is judged afresh."""
    mine = [VersionStatus(build_id="B", state="Draining", rejected="3 of 10 failed",
                          rejected_generation=7)]  # fmt: skip
    others = replace(grp(), rejected={"B": "3 of 10 failed"})
    held = plan(inp(ROLLED_BACK, spec=ANALYZED, pool="act", group=others, generation=8,
                    previous=mine, polled=frozenset({"act-q", "orders-q"})))  # fmt: skip
    assert held.calls == ()
    assert version(held, "B").rejected_generation == 7  # still lifted on this member's side
    assert recorded(held, 8) == {}
    lifted = plan(inp(ROLLED_BACK, spec=ANALYZED, pool="act", group=grp(), generation=8,
                      previous=mine, polled=frozenset({"act-q", "orders-q"})))  # fmt: skip
    assert lifted.calls == (SetRamping("B", 10.0),)
    assert version(lifted, "B").rejected is None
