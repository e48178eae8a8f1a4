"""The Builtin engine's replica decision: pure, so every rule is a table-driven unit test.

No I/O, no clock: the caller passes what Temporal said (`Observation`), what was decided before
(`History`), the pool's policy and `now` (seconds on any monotonic clock).

Rules, in order:
1. Temporal error or no reading: keep the current replicas (never scale blind), clamped into
   [minReplicas, maxReplicas]: the bounds are the user's, and hold without a reading.
2. Idle reset: Temporal unloads an idle task queue after ~5 min and then reports backlog 0 until
   something reloads it. Tasks only leave a backlog by being dispatched to a poller, so a drop
   to 0 with no pollers and no dispatches is not trusted: the last trusted backlog is used.
3. raw = ceil(backlog / targetBacklogPerReplica), clamped to [minReplicas, maxReplicas].
4. Activation: from 0 replicas, scale up only when backlog > activationBacklog.
5. Zero guard: from >0 replicas never recommend 0 while the queue shows work (backlog, recent
   add/dispatch rate, running workflows on the queue, or in-flight tasks the workers report).
6. Stabilization with HPA semantics: the result is at least the LOWEST recommendation of the
   scale-up window and at most the HIGHEST recommendation of the scale-down window. As in the
   HPA, an empty history is seeded with the current replicas, so an operator restart does not
   scale down before a full window has passed.
7. Capacity ceiling (GPU pods Pending for lack of GPUs): never raise above it.
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
class Observation:
    """Everything `decide` needs to know about the world at one instant."""

    current_replicas: int
    backlog: Backlog | None
    error: str | None = None
    in_flight: int | None = None  # tasks the workers report executing, when known
    replica_ceiling: int | None = None  # e.g. GPU capacity: do not ask for more than this


@dataclass(frozen=True)
class Policy:
    """The pool's autoscaling spec reduced to what the decision uses."""

    min_replicas: int = 0
    max_replicas: int = 10
    target_backlog_per_replica: int = 5
    activation_backlog: int = 0
    scale_up_window: float = 0.0
    scale_down_window: float = 300.0

    @classmethod
    def from_spec(cls, spec: AutoscalingSpec) -> Policy:
        return cls(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target_backlog_per_replica=spec.target_backlog_per_replica,
            activation_backlog=spec.activation_backlog,
            scale_up_window=float(spec.scale_up_stabilization_seconds),
            scale_down_window=float(spec.scale_down_stabilization_seconds),
        )


@dataclass(frozen=True)
class History:
    """Past recommendations (time, replicas) inside the longest window, and the trusted backlog."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_backlog: int | None = None


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
    if rec == 0 and current > 0 and busy is not None:
        rec, guarded = 1, True

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
    if guarded:
        msg += f"; not scaling to 0: {busy}"
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
    return History(recommendations=recs, last_backlog=backlog)


def _window(history: History, now: float, seconds: float) -> list[int]:
    """Recommendations within the last `seconds` (always including the newest one)."""
    recs = [r for t, r in history.recommendations if now - t < seconds]
    return recs or [history.recommendations[-1][1]]
