"""The routing plan of a versioned pool (pure): which Temporal calls to make, how many replicas
each build's Deployment keeps, which Deployments and versions to retire, and what to report.

Everything is derived from what was observed this pass: the spec, one DescribeWorkerDeployment
(routing, conflict token, manager identity, version summaries), the exact count of open pinned
workflows per build, the build Deployments in Kubernetes, the gate workflow, the previous
status and the clock. A Progressive rollout keeps no step counter of its own: the step is the
ramp percentage Temporal holds and its pause runs from Temporal's
`ramping_version_percentage_changed_time`, so a restarted or newly elected operator resumes at
the same step, neither repeating nor skipping one. `execute.py` carries the plan out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from workerpool_operator.api.versioning import (
    AnalysisSpec,
    GateSpec,
    VersionState,
    VersionStatus,
)
from workerpool_operator.reasons import Reason
from workerpool_operator.versioning.build_id import deployment_name
from workerpool_operator.versioning.cap import limit_condition, retire_for_room
from workerpool_operator.versioning.model import (
    _RAMP_EPSILON,
    ROLLOUT_CONDITION,
    AnalysisObservation,
    BuildDeployment,
    Call,
    Condition,
    DeleteVersion,
    Event,
    RoutingInput,
    RoutingPlan,
    SetCurrent,
    SetManager,
    SetRamping,
    StartGate,
    VersionPlan,
    VersionSummary,
    gate_workflow_id,
)

# A routing change Temporal still reports as propagating is waited for this long; past it the
# next change goes ahead (the server takes changes while propagating, and on Server 1.32 the
# state was seen stuck IN_PROGRESS for minutes after a rollback).
ROUTING_PROPAGATION_S = 10.0

# A version whose exact pinned count first reads 0 is kept this long before the scaler's 0 may
# bring its sunset forward: visibility lags the workflows it counts (a workflow pinned to the
# version a moment ago may not be counted yet), and a worker stopped under it strands its work
# until the count catches up.
DRAINED_GRACE_S = 30.0

# --- planning ---------------------------------------------------------------------------------


@dataclass
class _Routing:
    """The routing decision being built (mutable scratch inside plan())."""

    calls: list[Call] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    reason: Reason = Reason.TARGET_CURRENT
    message: str = ""
    done: bool = False
    gate: StartGate | None = None
    step: int | None = None
    wait: float | None = None
    rejected: str | None = None  # analysis verdict against the target build this pass


def _seconds(later: datetime, earlier: datetime | None) -> float:
    return math.inf if earlier is None else (later - earlier).total_seconds()


def _route(inp: RoutingInput) -> _Routing:
    """What to change in Temporal's routing, and why (or why not)."""
    spec, t, target = inp.spec, inp.temporal, inp.target_build
    if not target:
        return _route_unversioned(inp)
    r = _Routing()
    summary = t.summary(target)
    if t.current_build == target and t.ramping_build is None:
        r.done, r.message = True, f"build {target} is current"
        return r
    if spec.strategy == "Manual":
        r.reason = Reason.MANUAL
        r.message = (
            f"strategy Manual: build {target} runs, routing is yours "
            f"(temporal worker deployment set-current-version --deployment-name {inp.deployment} "
            f"--build-id {target})"
        )
        return r
    if t.manager_identity and t.manager_identity != inp.identity:
        r.reason = Reason.OWNED_ELSEWHERE
        r.message = (
            f"routing of {inp.deployment} is managed by {t.manager_identity!r}, not this operator "
            f"({inp.identity!r}); not changing it. Unset the manager identity to hand it back"
        )
        return r
    if spec.paused:
        r.reason, r.message = Reason.PAUSED, "spec.versioning.paused: routing is held where it is"
        return r
    if _propagating(inp):
        r.reason = Reason.ROUTING_UPDATING
        r.message = "Temporal is still propagating the last routing change"
        r.wait = 2.0
        return r
    claim: list[Call] = [] if t.manager_identity == inp.identity else [SetManager()]
    if inp.abort and t.current_build != target:
        if t.ramping_build == target:
            r.calls = [*claim, SetRamping(None, 0.0)]
            r.events.append(Event(Reason.ABORTED, f"ramp of build {target} cleared ({inp.abort})"))
        r.reason = Reason.ABORTED
        r.message = (
            f"build {target} gets no new work ({inp.abort}); remove it, or apply another build"
        )
        return r
    if t.current_build == target:
        # A ramp left over from a build the spec no longer asks for (reverted mid-ramp).
        r.calls = [*claim, SetRamping(None, 0.0)]
        r.done, r.message = True, f"build {target} is current; ramp of {t.ramping_build} cleared"
        r.events.append(Event(Reason.TARGET_CURRENT, r.message))
        return r
    rejected = _rejected(inp)
    if rejected is not None:
        # Rolled back by analysis at this generation: not ramped again until the spec changes.
        if t.ramping_build == target:
            r.calls = [*claim, SetRamping(None, 0.0)]
        # The stored verdict says which check rolled it back (a step gate's starts "gate").
        failed_gate = rejected.startswith("gate ")
        r.reason = Reason.GATE_FAILED if failed_gate else Reason.ANALYSIS_FAILED
        r.message = (
            f"build {target} was rolled back: {rejected}. It is not ramped again until the spec "
            "changes; fix the build (a new build is judged afresh)"
        )
        return r
    if summary is None or summary.status == "Created":
        r.reason = Reason.WAITING_FOR_POLLERS
        r.message = f"waiting for a worker of build {target} to poll and register the version"
        return r
    if inp.promote:
        extra: list[Call] = [SetRamping(None, 0.0)] if t.ramping_build not in (None, target) else []
        r.calls = [*claim, *extra, SetCurrent(target)]
        r.reason, r.done = Reason.PROMOTED, True
        r.message = f"build {target} is current"
        r.events.append(Event(Reason.PROMOTED, f"build {target} made current ({inp.promote})"))
        return r

    clear_other_ramp: list[Call] = (
        [SetRamping(None, 0.0)] if t.ramping_build not in (None, target) else []
    )
    since_current = _seconds(inp.now, summary.last_current_at)
    if summary.last_current_at is not None and since_current <= spec.rollback_window_seconds:
        r.calls = [*claim, *clear_other_ramp, SetCurrent(target)]
        r.reason, r.done = Reason.ROLLED_BACK, True
        r.message = (
            f"build {target} was current {since_current:.0f}s ago (within "
            f"rollbackWindowSeconds {spec.rollback_window_seconds}): current again at once"
        )
        r.events.append(Event(Reason.ROLLED_BACK, r.message, warning=True))
        return r

    if spec.gate is not None and (inp.gate is None or inp.gate.state != "Succeeded"):
        state = inp.gate.state if inp.gate is not None else "NotStarted"
        gate = spec.gate
        if state == "Failed":
            r.reason = Reason.GATE_FAILED
            r.message = (
                f"gate workflow {gate.workflow_type} failed on build {target}: "
                f"{inp.gate.message if inp.gate else ''}; no traffic moves to it. Fix the build "
                "(a new build runs the gate again)"
            )
            return r
        r.reason = Reason.GATED
        r.message = f"gate workflow {gate.workflow_type} runs on build {target}"
        if state == "NotStarted":
            r.gate = _start_gate(inp, gate, gate_workflow_id(inp.deployment, target))
        return r

    if spec.strategy == "AllAtOnce" or (t.current_build is None and not inp.unversioned_pollers):
        # From unversioned with no unversioned worker left, a ramp would strand its share.
        r.calls = [*claim, *clear_other_ramp, SetCurrent(target)]
        r.reason, r.done = Reason.PROMOTED, True
        r.message = f"build {target} is current"
        r.events.append(Event(Reason.PROMOTED, f"build {target} made current ({spec.strategy})"))
        return r

    # Progressive: the step in force is the one whose percentage Temporal holds.
    steps = spec.steps
    held = t.ramp_percentage if t.ramping_build == target else None
    index = -1
    if held is not None:
        index = max(
            (i for i, s in enumerate(steps) if s.ramp_percentage <= held + _RAMP_EPSILON),
            default=-1,
        )
    exact = index >= 0 and held is not None and abs(steps[index].ramp_percentage - held) < 0.01
    verdict = _analysis(inp) if held is not None else None
    if verdict is not None:
        r.calls = [*claim, SetRamping(None, 0.0)]
        r.reason, r.rejected = Reason.ANALYSIS_FAILED, verdict
        r.message = (
            f"build {target} rolled back at {held:g}%: {verdict}; the current build "
            f"{t.current_build or '(unversioned)'} takes all new work"
        )
        r.events.append(Event(Reason.ANALYSIS_FAILED, r.message, warning=True))
        return r
    if index >= 0 and exact:
        elapsed = _seconds(inp.now, t.ramp_changed_at)
        pause = steps[index].pause_seconds
        if elapsed < pause:
            r.reason, r.step, r.wait = Reason.RAMPING, index, pause - elapsed
            r.message = (
                f"build {target} gets {held:g}% of new work (step {index + 1}/{len(steps)}), "
                f"next in {pause - elapsed:.0f}s"
            )
            return r
        index += 1
    elif held is None:
        index = 0
    # else: a percentage no step has (set by hand, or the steps changed): resume at the next
    # step above it, never below what already runs.
    else:
        index += 1
    if index >= len(steps):
        r.calls = [*claim, SetCurrent(target)]
        r.reason, r.done = Reason.PROMOTED, True
        r.message = f"build {target} is current"
        r.events.append(
            Event(Reason.PROMOTED, f"build {target} made current after {len(steps)} steps")
        )
        return r
    step_gate = steps[index].gate
    seen = inp.step_gate[1] if inp.step_gate and inp.step_gate[0] == index else None
    if step_gate is not None and (seen is None or seen.state != "Succeeded"):
        state = seen.state if seen is not None else "NotStarted"
        if state == "Failed":
            # A failed step gate rolls back: the ramp so far is cleared, as analysis does.
            r.calls = [*claim, SetRamping(None, 0.0)] if held is not None else []
            r.reason = Reason.GATE_FAILED
            r.rejected = (
                f"gate workflow {step_gate.workflow_type} of step {index + 1} failed "
                f"({seen.message if seen else ''})"
            )
            r.message = f"build {target} rolled back: {r.rejected}"
            r.events.append(Event(Reason.GATE_FAILED, r.message, warning=True))
            return r
        r.reason = Reason.GATED
        r.message = (
            f"gate workflow {step_gate.workflow_type} of step {index + 1} runs on build {target}"
        )
        if state == "NotStarted":
            r.gate = _start_gate(inp, step_gate, gate_workflow_id(inp.deployment, target, index))
        return r
    pct = float(steps[index].ramp_percentage)
    r.calls = [*claim, SetRamping(target, pct)]
    r.reason, r.step, r.wait = Reason.RAMPING, index, float(steps[index].pause_seconds)
    r.message = f"build {target} gets {pct:g}% of new work (step {index + 1}/{len(steps)})"
    r.events.append(Event(Reason.RAMPING, r.message))
    return r


def _propagating(inp: RoutingInput) -> bool:
    """Temporal still applies the last routing change (waited for at most
    ROUTING_PROPAGATION_S)."""
    t = inp.temporal
    return t.routing_updating and _seconds(inp.now, t.routing_changed_at) < ROUTING_PROPAGATION_S


def _start_gate(inp: RoutingInput, gate: GateSpec, workflow_id: str) -> StartGate:
    """The gate workflow (the spec's, or a step's) to start pinned to the target build."""
    return StartGate(
        workflow_id=workflow_id,
        workflow_type=gate.workflow_type,
        task_queue=gate.task_queue or inp.task_queue,
        build_id=inp.target_build,
        input=gate.input,
        timeout_seconds=gate.timeout_seconds,
    )


def _route_unversioned(inp: RoutingInput) -> _Routing:
    """The pool left versioning (spec.versioning removed): new work goes back to its
    unversioned workers, once they poll; every build then drains and is retired."""
    t = inp.temporal
    r = _Routing()
    if t.current_build is None and t.ramping_build is None:
        r.done = True
        r.message = "spec.versioning removed: unversioned workers get new work; builds drain"
        return r
    if t.manager_identity and t.manager_identity != inp.identity:
        r.reason = Reason.OWNED_ELSEWHERE
        r.message = (
            f"routing of {inp.deployment} is managed by {t.manager_identity!r}, not this operator "
            f"({inp.identity!r}); new work stays on build {t.current_build}. Unset the manager "
            "identity to hand it back"
        )
        return r
    if _propagating(inp):
        r.reason = Reason.ROUTING_UPDATING
        r.message = "Temporal is still propagating the last routing change"
        r.wait = 2.0
        return r
    if not inp.unversioned_pollers:
        r.reason = Reason.WAITING_FOR_POLLERS
        r.message = (
            "spec.versioning removed: waiting for the pool's unversioned workers to poll "
            f"{inp.task_queue} before new work leaves build {t.current_build}"
        )
        return r
    claim: list[Call] = [] if t.manager_identity == inp.identity else [SetManager()]
    clear_ramp: list[Call] = [SetRamping(None, 0.0)] if t.ramping_build is not None else []
    current: list[Call] = [SetCurrent(None)] if t.current_build is not None else []
    r.calls = [*claim, *clear_ramp, *current]
    r.reason, r.done = Reason.PROMOTED, True
    r.message = "spec.versioning removed: unversioned workers get new work; builds drain"
    r.events.append(Event(Reason.PROMOTED, "unversioned workers made current (versioning left)"))
    return r


def _rejected(inp: RoutingInput) -> str | None:
    """Why analysis or a gate rolled the target back at this generation (stored in status), if
    it did; in a release group, the group's verdict (any member's standing record)."""
    for v in inp.previous:
        if (
            v.build_id == inp.target_build
            and v.rejected
            and v.rejected_generation is not None
            and v.rejected_generation >= inp.generation
        ):
            return v.rejected
    if inp.group is not None:
        return inp.group.rejected.get(inp.target_build)
    return None


def _analysis(inp: RoutingInput) -> str | None:
    """The verdict on the ramping target: why it fails spec.versioning.analysis, or None."""
    rule, seen = inp.spec.analysis, inp.analysis
    if rule is None or seen is None:
        return None
    return analysis_verdict(rule, seen)


def analysis_verdict(rule: AnalysisSpec, seen: AnalysisObservation) -> str | None:
    """The first rule of `rule` the build's observed work breaks (closed workflows, then
    workflow tasks, then activities), with its counts and threshold; None while every rule
    holds, has too small a sample, or was not observed."""
    field = "spec.versioning.analysis"
    closed, failed = seen.closed, seen.failed
    if (
        closed is not None
        and failed is not None
        and closed >= rule.min_closed_workflows
        and failed * 100 > rule.max_failed_percent * closed
    ):
        return (
            f"{failed} of its {closed} closed workflows failed or timed out "
            f"({100.0 * failed / closed:.0f}%, {field}.maxFailedPercent {rule.max_failed_percent})"
        )
    tasks = seen.tasks
    if tasks is None:
        return None
    judged = (
        (
            "workflow tasks",
            tasks.workflow_processed,
            tasks.workflow_failed,
            rule.max_workflow_task_failure_percent,
            "maxWorkflowTaskFailurePercent",
        ),
        (
            "activity tasks",
            tasks.activity_processed,
            tasks.activity_failed,
            rule.max_activity_failure_percent,
            "maxActivityFailurePercent",
        ),
    )
    for what, processed, bad, limit, name in judged:
        if limit is None or processed < rule.min_tasks:
            continue
        bad = min(bad, processed)  # failed ones are counted among the processed ones
        if bad * 100 > limit * processed:
            return (
                f"{bad} of the {processed} {what} its workers processed failed "
                f"({100.0 * bad / processed:.0f}%, {field}.{name} {limit}; from the heartbeats "
                f"of its {tasks.workers} worker{'' if tasks.workers == 1 else 's'})"
            )
    return None


def _state(
    build: str, summary: VersionSummary | None, current: str | None, ramping: str | None,
    open_pinned: int | None,
) -> VersionState:  # fmt: skip
    """The version's state after this pass's routing, with drainage from the exact count."""
    if build == current:
        return "Current"
    if build == ramping:
        return "Ramping"
    if summary is None or summary.status == "Created":
        return "NotRegistered"
    if summary.status in ("Current", "Ramping", "Draining", "Drained"):
        # Demoted: drainage status lags by minutes (and flips back on reactivation); the exact
        # count says whether pinned work is still open. An unknown count keeps it Draining.
        return "Drained" if open_pinned == 0 else "Draining"
    return "Inactive" if open_pinned == 0 else "Draining"


def _grouped(inp: RoutingInput, r: _Routing) -> _Routing:
    """A release group's member (versioning/group.py): only the driver routes, and it moves no
    new work to the group's build while a member holds it; members that disagree route
    nothing."""
    g, target = inp.group, inp.target_build
    if g is None or not target:
        return r
    if g.problem:
        return _Routing(reason=Reason.RELEASE_GROUP_INVALID, message=g.problem)
    if inp.pool != g.driver:
        routed_by = f"release group {g.deployment}: routing is made by pool {g.driver}"
        t = inp.temporal
        if t.current_build == target and t.ramping_build is None:
            return _Routing(done=True, message=f"build {target} is current ({routed_by})")
        held = g.holder(inp.polled)
        return _Routing(
            reason=Reason.RELEASE_GROUP_FOLLOWING,
            message=f"{routed_by}, which rolls build {target} out"
            + (f"; held by {held}" if held else "")
            + " (its VersionRollout condition says where the rollout is)",
            wait=r.wait,
        )
    moves = any(isinstance(c, SetCurrent | SetRamping) and c.build_id == target for c in r.calls)
    held = g.holder(inp.polled) if moves else ""
    if held:
        return _Routing(
            reason=Reason.RELEASE_GROUP_HELD,
            message=(
                f"release group {g.deployment}: held by {held}; no new work moves to build "
                f"{target} before every pool of the group ({', '.join(g.members)}) runs it"
            ),
        )
    return r


def plan(inp: RoutingInput) -> RoutingPlan:
    """The whole plan of one pass; see the module docstring."""
    spec, t, target = inp.spec, inp.temporal, inp.target_build
    r = _grouped(inp, _route(inp))
    # A group's other members make no call at all: the driver routes and retires versions.
    follower = inp.group is not None and bool(target) and inp.pool != inp.group.driver

    # Routing as it will be after the calls.
    current, ramping, pct = t.current_build, t.ramping_build, t.ramp_percentage
    for call in r.calls:
        if isinstance(call, SetCurrent):
            current = call.build_id
            if ramping == call.build_id:
                ramping, pct = None, 0.0
        elif isinstance(call, SetRamping):
            ramping, pct = call.build_id, call.percentage
    if ramping is None:
        pct = 0.0

    previous = {v.build_id: v for v in inp.previous}
    builds = sorted(
        {target, *inp.build_deployments, *(v.build_id for v in t.versions), *previous} - {""},
    )
    # Builds that serve new work before this pass's calls: a demotion planned now may still be
    # refused, so they are neither scaled down nor retired until a later pass sees them demoted.
    serving = {t.current_build, t.ramping_build} - {None}
    keep_wait: list[float] = [r.wait] if r.wait is not None else []
    # Newest first among retired candidates, for spec.versioning.retention.
    idle: list[tuple[datetime, str]] = []
    states: dict[str, VersionState] = {}
    read_states: dict[str, VersionState] = {}  # before the calls, for a refused pass's status
    since: dict[str, datetime | None] = {}
    for build in builds:
        summary = t.summary(build)
        count = inp.pinned_open.get(build)
        state = _state(build, summary, current, ramping, count)
        states[build] = state
        read_states[build] = _state(build, summary, t.current_build, t.ramping_build, count)
        drained: datetime | None = None
        if state in ("Drained", "Inactive") and build != target and build not in serving:
            before = previous.get(build)
            drained = (
                _parse(before.drained_since)
                if before is not None and before.drained_since
                else inp.now
            )
            created = summary.created_at if summary and summary.created_at else drained
            idle.append((created, build))
        since[build] = drained
    idle.sort(reverse=True)
    over_retention = {b for _, b in idle[spec.retention :]}
    registered = [b for b in builds if t.summary(b) is not None]
    over_retention.update(  # the version cap: a free slot for the next build (versioning/cap.py)
        retire_for_room(
            inp.version_cap,
            len(registered),
            target in registered,
            [b for _, b in reversed(idle)],
        )
    )

    versions: list[VersionPlan] = []
    calls = list(r.calls)
    paused = spec.paused
    for build in builds:
        state = states[build]
        kube = inp.build_deployments.get(build)
        observed = kube.replicas if kube is not None else 0
        count = inp.pinned_open.get(build)
        name = kube.name if kube is not None else deployment_name(inp.pool, build)
        delete = False
        scaled = inp.version_replicas.get(build)
        if build == target or state in ("Current", "Ramping"):
            replicas = inp.desired_replicas if scaled is None else scaled
            if state == "Ramping" or build == target:
                # The target: a version exists only after its first poll. Ramping: it gets work.
                replicas = max(1, replicas)
        elif build in serving:
            # Demoted by this pass's calls: keep what it runs until a later pass sees it demoted.
            replicas = max(observed, inp.desired_replicas, 0 if count == 0 else 1)
        elif state == "NotRegistered":
            before = previous.get(build)
            if kube is not None and before is not None and before.state != "NotRegistered":
                # Seen registered before and gone now (another Temporal namespace after a
                # connection change, a deleted deployment): its work may live where we no
                # longer look, so keep it as it is rather than guess.
                replicas = observed
            else:
                # Superseded before it ever polled: nothing can be pinned to it.
                replicas, delete = 0, not paused
        elif state == "Draining":
            # Never 0 while pinned work is open (or uncounted); the scaler may size it.
            replicas = max(1, observed if scaled is None else scaled)
        else:  # Drained or Inactive, not the target: sunset
            drained = since[build]
            assert drained is not None
            age = _seconds(inp.now, drained)
            down, gone = spec.sunset.scale_down_delay_seconds, spec.sunset.delete_delay_seconds
            retire = build in over_retention
            # The scaler's 0 for a version with no pinned work brings its sunset forward, once
            # the count has read 0 for longer than visibility lags.
            replicas = observed
            if scaled is not None and age >= DRAINED_GRACE_S:
                replicas = min(observed, scaled)
            elif scaled is not None and scaled < observed and not paused:
                keep_wait.append(DRAINED_GRACE_S - age)
            if retire or age >= down:
                replicas = 0
            elif not paused:
                keep_wait.append(down - age)
            if (retire or age >= gone) and not paused:
                delete = True
            elif not paused:
                keep_wait.append(gone - age)
        if delete and kube is None and t.summary(build) is not None and count == 0:
            # Deployment gone (so no pollers soon): remove the Temporal version as well.
            calls.append(DeleteVersion(build))
        if delete and kube is None and t.summary(build) is None:
            continue  # nothing left of it anywhere
        rejected, rejected_at = None, None
        if build == target and r.rejected is not None:
            rejected, rejected_at = r.rejected, inp.generation
        elif build in previous and previous[build].rejected:
            rejected = previous[build].rejected
            rejected_at = previous[build].rejected_generation
            if build == target and _rejected(inp) is None:
                rejected, rejected_at = None, None  # the spec changed: judged afresh
        elif inp.group is not None and build in inp.group.rejected:
            # The group's verdict, recorded here too: it outlives any one member (the driver
            # included). A record of this pool's own, even one its newer spec lifted, is kept
            # as it is above, so a lifted member never stamps the verdict afresh.
            rejected, rejected_at = inp.group.rejected[build], inp.generation
        versions.append(
            VersionPlan(
                build_id=build,
                deployment=name,
                state=state,
                replicas=0 if delete else replicas,
                delete=delete and kube is not None,
                drained_since=since[build],
                open_pinned=count,
                rejected=rejected,
                rejected_generation=rejected_at,
                read_state=read_states[build],
            )
        )

    conditions = [
        Condition(
            ROLLOUT_CONDITION,
            "True" if r.done else "False",
            r.reason,
            r.message,
        ),
        limit_condition(
            inp.version_cap,
            len(registered),
            len(set(registered) - {b for _, b in idle}),
            inp.deployment,
        ),
    ]
    waits = [w for w in keep_wait if w > 0]
    return RoutingPlan(
        calls=() if follower else tuple(calls),
        versions=tuple(versions),
        conditions=tuple(conditions),
        events=tuple(r.events),
        start_gate=r.gate,
        step=r.step,
        requeue_after=min(waits) if waits else None,
        current_build=current,
        ramp_percentage=pct if ramping is not None else None,
        read_current_build=t.current_build,
        read_ramp_percentage=t.ramp_percentage if t.ramping_build is not None else None,
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def status_versions(
    p: RoutingPlan, deployments: Mapping[str, BuildDeployment]
) -> list[VersionStatus]:
    """status.versions for the plan: sorted by build ID so the status never churns on order."""
    out = []
    for v in sorted(p.versions, key=lambda v: v.build_id):
        kube = deployments.get(v.build_id)
        out.append(
            VersionStatus(
                build_id=v.build_id,
                state=v.state,
                deployment=None if v.delete else v.deployment,
                replicas=kube.replicas if kube else None,
                ready_replicas=kube.ready_replicas if kube else None,
                ramp_percentage=p.ramp_percentage if v.state == "Ramping" else None,
                open_pinned_workflows=v.open_pinned,
                drained_since=(
                    v.drained_since.isoformat().replace("+00:00", "Z") if v.drained_since else None
                ),
                rejected=v.rejected,
                rejected_generation=v.rejected_generation,
            )
        )
    return out
