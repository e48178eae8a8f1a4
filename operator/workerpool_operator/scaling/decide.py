"""The Builtin engine's replica decision: pure, so every rule is a table-driven unit test.

No I/O, no clock: the caller passes what Temporal said (`Observation`), what was decided before
(`History`), the pool's policy and `now` (seconds on any monotonic clock). The rules (1-7, in
order) and the opt-in signals are explained once, in docs/autoscaling.md ("The Builtin
engine"); each step of `decide` names its rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from workerpool_operator.api.v1alpha1 import AutoscalingSpec

Direction = Literal["up", "down", "none"]


@dataclass(frozen=True)
class Backlog:
    """One DescribeTaskQueue reading, workflow and activity task queues summed."""

    count: int
    age_seconds: float = 0.0
    add_rate: float = 0.0
    dispatch_rate: float = 0.0
    pollers: int = 0
    running_workflows: int | None = None  # visibility count; None when never asked
    running_unknown: bool = False  # the count was asked for and failed: assume busy


@dataclass(frozen=True)
class TypeStats:
    """Stats of one task queue type (workflow or activity)."""

    backlog: int
    age_seconds: float
    add_rate: float
    dispatch_rate: float
    pollers: int


@dataclass(frozen=True)
class Reading:
    """One poll round's result: either `backlog` or `error`."""

    backlog: Backlog | None
    error: str | None
    observed_at: float  # wall clock (epoch seconds) when the round finished
    fetched_at: float  # poller clock (monotonic) when the round started
    workflow: TypeStats | None = None
    activity: TypeStats | None = None


@dataclass(frozen=True)
class Observation:
    """Everything `decide` needs to know about the world at one instant."""

    current_replicas: int
    backlog: Backlog | None
    error: str | None = None
    in_flight: int | None = None  # tasks the workers report executing, when known
    replica_ceiling: int | None = None  # e.g. GPU capacity: do not ask for more than this
    ready_replicas: int | None = None  # the Deployment's ready replicas; None: as current
    busy_workers: int | None = None  # workers with a task slot in use (heartbeats); None: unknown


@dataclass(frozen=True)
class Policy:
    """The pool's autoscaling spec reduced to what the decision uses."""

    min_replicas: int = 0
    max_replicas: int = 10
    target_backlog_per_replica: int = 5
    activation_backlog: int = 0
    scale_up_window: float = 0.0
    scale_down_window: float = 300.0
    target_backlog_age: float | None = None  # seconds; None: age is not a signal
    scale_on_rates: bool = False
    poll_interval: float = 5.0  # the rate look-ahead horizon
    scale_down_only_when_idle: bool = False
    zero_idle_window: float = 0.0  # seconds idle before the last replica may go

    @classmethod
    def from_spec(cls, spec: AutoscalingSpec) -> Policy:
        return cls(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target_backlog_per_replica=spec.target_backlog_per_replica,
            activation_backlog=spec.activation_backlog,
            scale_up_window=float(spec.scale_up_stabilization_seconds),
            scale_down_window=float(spec.scale_down_stabilization_seconds),
            target_backlog_age=(
                None
                if spec.target_backlog_age_seconds is None
                else float(spec.target_backlog_age_seconds)
            ),
            scale_on_rates=spec.scale_on_rates,
            poll_interval=float(spec.poll_interval_seconds),
            scale_down_only_when_idle=spec.scale_down_only_when_idle,
            zero_idle_window=float(spec.scale_to_zero_after_idle_seconds),
        )


@dataclass(frozen=True)
class History:
    """Past recommendations (time, replicas) inside the longest window, and the trusted backlog."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_backlog: int | None = None
    idle_since: float | None = None  # when the queue last became idle (busy_reason None)


@dataclass(frozen=True)
class Decision:
    replicas: int
    message: str
    history: History
    direction: Direction = "none"
    recommendation: int | None = None  # before stabilization; None when held on error
    backlog: int | None = None  # the backlog the decision used (after idle-reset correction)
    guarded: bool = field(default=False)  # the zero guard kept a replica


def busy_reason(obs: Observation, backlog: Backlog) -> str | None:
    """Why the queue still has work in progress (None when it is idle)."""
    if backlog.count > 0:
        return f"backlog {backlog.count}"
    if obs.in_flight:
        return f"{obs.in_flight} tasks in flight on workers"
    if obs.busy_workers:
        return f"{obs.busy_workers} workers running tasks"
    if backlog.running_workflows:
        return f"{backlog.running_workflows} workflows running on the queue"
    if backlog.running_unknown:
        return "running-workflow count unavailable"
    if backlog.dispatch_rate > 0 or backlog.add_rate > 0:
        return (
            f"tasks still moving (add {backlog.add_rate:.2f}/s, "
            f"dispatch {backlog.dispatch_rate:.2f}/s)"
        )
    return None


def decide(observation: Observation, history: History, policy: Policy, now: float) -> Decision:
    """Replicas for the pool now, why, and the history to pass next time."""
    current = observation.current_replicas
    reading = observation.backlog
    if observation.error is not None or reading is None:
        why = observation.error or "no backlog reading"
        held = min(max(current, policy.min_replicas), policy.max_replicas)
        if held != current:
            return Decision(
                held,
                f"Temporal unavailable ({why}); {current} is outside "
                f"[{policy.min_replicas}, {policy.max_replicas}]: scaling to {held}",
                history,
                direction="up" if held > current else "down",
            )
        return Decision(current, f"Temporal unavailable ({why}); holding {current}", history)

    count = reading.count
    note = ""
    if count == 0 and history.last_backlog and reading.pollers == 0 and reading.dispatch_rate == 0:
        count = history.last_backlog
        note = f" (Temporal reports 0 with no poller dispatching; using last backlog {count})"
        reading = replace(reading, count=count)

    target = policy.target_backlog_per_replica
    raw = math.ceil(count / target)
    signals: list[str] = []
    ready = current if observation.ready_replicas is None else observation.ready_replicas
    for want, why in _extra_signals(current, min(ready, current), reading, count, policy):
        if want > raw:
            raw = want
            signals.append(why)
    rec = min(max(raw, policy.min_replicas), policy.max_replicas)
    if current == 0 and count <= policy.activation_backlog:
        rec = 0 if policy.min_replicas == 0 else rec
        if rec == 0:
            msg = f"backlog {count} not over activation {policy.activation_backlog}; staying at 0"
            return Decision(
                0,
                msg + note,
                _remember(history, now, 0, reading.count, policy),
                recommendation=0,
                backlog=count,
            )

    if not history.recommendations:
        # Like the HPA: the first decision (operator start, new pool) counts the current
        # replicas as a recommendation, so a restart never scales down before a full window.
        history = replace(history, recommendations=((now, current),))

    guarded = False
    busy = busy_reason(observation, reading)
    idle_since = (
        None
        if busy is not None
        else (history.idle_since if history.idle_since is not None else now)
    )
    history = replace(history, idle_since=idle_since)
    if rec == 0 and current > 0 and busy is not None:
        rec, guarded = 1, True
    busy_floor = ""
    workers = min(observation.busy_workers or 0, policy.max_replicas)
    if rec < workers:
        # Slot use (issue 19): a worker running a task is not scaled away for an empty backlog.
        rec, busy_floor = workers, f"{workers} workers running tasks"
    idle_wait = ""
    if rec == 0 and current > 0 and policy.zero_idle_window > 0 and idle_since is not None:
        idle_for = now - idle_since
        if idle_for < policy.zero_idle_window:
            rec = 1
            idle_wait = f"idle {idle_for:g}s of {policy.zero_idle_window:g}s before 0"
    held_busy = ""
    if policy.scale_down_only_when_idle and rec < current and busy is not None:
        rec = current
        held_busy = f"not scaling down while busy: {busy}"

    new_history = _remember(history, now, rec, reading.count, policy)
    up = _window(new_history, now, policy.scale_up_window)
    down = _window(new_history, now, policy.scale_down_window)
    final = current
    final = max(final, min(up))
    final = min(final, max(down))
    ceiling = observation.replica_ceiling
    capped = False
    if ceiling is not None and final > current and final > ceiling:
        final = max(current, ceiling)
        capped = True

    cmp = "over" if count > current * target else "under" if count < current * target else "at"
    msg = f"backlog {count} {cmp} {current} x {target}"
    if final > current:
        direction: Direction = "up"
        msg += f": scaling {current} -> {final}"
    elif final < current:
        direction = "down"
        msg += f": scaling {current} -> {final}"
    else:
        direction = "none"
        msg += f": keeping {current}"
    if capped:
        msg += f" (wants {rec}; capped at {ceiling}: pods wait for GPUs)"
    elif rec > final:
        msg += f" (wants {rec}; {policy.scale_up_window:g}s scale-up window)"
    elif rec < final:
        msg += f" (wants {rec}; {policy.scale_down_window:g}s scale-down window)"
    if signals:
        msg += "; " + ", ".join(signals)
    if guarded:
        msg += f"; not scaling to 0: {busy}"
    if busy_floor:
        msg += f"; not below {busy_floor}"
    if idle_wait:
        msg += f"; {idle_wait}"
    if held_busy:
        msg += f"; {held_busy}"
    return Decision(
        final,
        msg + note,
        new_history,
        direction=direction,
        recommendation=rec,
        backlog=count,
        guarded=guarded,
    )


def _remember(history: History, now: float, rec: int, backlog: int, policy: Policy) -> History:
    """Append `rec` and drop entries older than the longest window."""
    keep = max(policy.scale_up_window, policy.scale_down_window)
    recs = (*((t, r) for t, r in history.recommendations if now - t < keep), (now, rec))
    return History(recommendations=recs, last_backlog=backlog, idle_since=history.idle_since)


def _extra_signals(
    current: int, ready: int, reading: Backlog, count: int, policy: Policy
) -> list[tuple[int, str]]:
    """Replicas the opt-in age and rate signals ask for, each with its reason."""
    out: list[tuple[int, str]] = []
    # Each waiting task can use at most one more worker than the ready ones; replicas already
    # asked for (starting) are never asked for again.
    cap = max(current, ready + count)
    age_target = policy.target_backlog_age
    if age_target is not None and count > 0 and reading.age_seconds > age_target:
        ratio = math.ceil(max(ready, 1) * reading.age_seconds / age_target)
        want = max(1, min(ratio, cap))
        out.append((want, f"backlog age {reading.age_seconds:g}s over {age_target:g}s"))
    if policy.scale_on_rates and count > 0 and ready > 0 and reading.dispatch_rate > 0:
        per_replica = reading.dispatch_rate / ready
        want = min(math.ceil(reading.add_rate / per_replica - 1e-9), cap)
        out.append(
            (
                want,
                f"add {reading.add_rate:g}/s vs dispatch {per_replica:g}/s per ready replica",
            )
        )
    if policy.scale_on_rates and reading.add_rate > reading.dispatch_rate:
        ahead = count + (reading.add_rate - reading.dispatch_rate) * policy.poll_interval
        want = math.ceil(ahead / policy.target_backlog_per_replica - 1e-9)
        out.append((want, f"backlog growing to {ahead:g} within {policy.poll_interval:g}s"))
    return out


def _window(history: History, now: float, seconds: float) -> list[int]:
    """Recommendations within the last `seconds` (always including the newest one)."""
    recs = [r for t, r in history.recommendations if now - t < seconds]
    return recs or [history.recommendations[-1][1]]
