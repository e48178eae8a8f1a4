"""Table-driven tests of the Builtin engine's replica decision (pure: no Temporal, no cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from workerpool_operator.api.v1alpha1 import AutoscalingSpec
from workerpool_operator.scaling.decide import (
    Backlog,
    Decision,
    History,
    Observation,
    Policy,
    decide,
)

# No windows: every test that is not about stabilization sees the raw recommendation.
FLAT = Policy(
    min_replicas=0,
    max_replicas=10,
    target_backlog_per_replica=5,
    activation_backlog=0,
    scale_up_window=0,
    scale_down_window=0,
)


AGE = replace(FLAT, target_backlog_age=30)
RATES = replace(FLAT, scale_on_rates=True, poll_interval=5)
IDLE_ONLY = replace(FLAT, scale_down_only_when_idle=True)
GPU_ZERO = replace(FLAT, zero_idle_window=600)


def obs(current: int, backlog: int | None, **kw: object) -> Observation:
    """Observation with a backlog reading (None = no reading); Backlog fields via kw."""
    reading_kw = {k: kw.pop(k) for k in list(kw) if k in Backlog.__dataclass_fields__}
    reading = None if backlog is None else Backlog(count=backlog, **reading_kw)  # type: ignore[arg-type]
    return Observation(current_replicas=current, backlog=reading, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    observation: Observation
    policy: Policy
    want: int
    history: History = field(default_factory=History)


CASES = [
    # ceil(backlog / target), clamped
    Case("37 tasks at 5 per replica -> 8", obs(4, 37), FLAT, 8),
    Case("exact multiple", obs(1, 10), FLAT, 2),
    Case("clamped to max", obs(1, 1000), FLAT, 10),
    Case("clamped to min", obs(5, 0), Policy(min_replicas=2, scale_down_window=0), 2),
    Case("min applies from zero too", obs(0, 1), Policy(min_replicas=3, scale_down_window=0), 3),
    # activation from zero
    Case("from zero: backlog 1 > activation 0", obs(0, 1), FLAT, 1),
    Case("from zero: empty queue stays 0", obs(0, 0), FLAT, 0),
    Case(
        "from zero: backlog 3 not over activation 3",
        obs(0, 3),
        Policy(activation_backlog=3, min_replicas=0, scale_down_window=0),
        0,
    ),
    Case(
        "from zero: backlog 4 over activation 3",
        obs(0, 4),
        Policy(activation_backlog=3, min_replicas=0, scale_down_window=0),
        1,
    ),
    Case(
        "activation only gates zero: at 1 replica backlog 2 keeps 1",
        obs(1, 2),
        Policy(activation_backlog=3, min_replicas=0, scale_down_window=0),
        1,
    ),
    # zero guard
    Case("idle queue: 1 -> 0", obs(1, 0), FLAT, 0),
    Case("guard: workflows running", obs(2, 0, running_workflows=3), FLAT, 1),
    Case("guard: tasks dispatched recently", obs(2, 0, dispatch_rate=0.4, pollers=2), FLAT, 1),
    Case("guard: tasks added recently", obs(1, 0, add_rate=0.2, pollers=1), FLAT, 1),
    Case("guard: workers report in-flight tasks", obs(1, 0, in_flight=2), FLAT, 1),
    Case(
        "guard: backlog below activation still keeps a worker",
        obs(1, 2),
        Policy(activation_backlog=3, min_replicas=0, scale_down_window=0),
        1,
    ),
    Case("guard: count failed, assume busy", obs(1, 0, running_unknown=True), FLAT, 1),
    Case("guard does not wake a pool at zero", obs(0, 0, running_workflows=3), FLAT, 0),
    # idle reset: the server reports 0 for an unloaded queue
    Case(
        "0 with no poller and no dispatch is not trusted",
        obs(0, 0),
        FLAT,
        3,
        History(last_backlog=12),
    ),
    Case(
        "0 after pollers drained it is trusted",
        obs(3, 0, pollers=3),
        FLAT,
        0,
        History(last_backlog=12),
    ),
    Case(
        "0 with dispatches is trusted (guard keeps one)",
        obs(3, 0, dispatch_rate=1.0),
        FLAT,
        1,
        History(last_backlog=12),
    ),
    # operator restart: the empty history counts the current replicas (as the HPA does)
    Case("restart does not scale down at once", obs(5, 0, pollers=5), Policy(min_replicas=0), 5),
    Case("restart still scales up at once", obs(1, 30), Policy(min_replicas=0), 6),
    # Temporal errors: hold
    Case("error holds current", obs(4, None, error="unavailable"), FLAT, 4),
    Case("error holds zero", obs(0, None, error="unavailable"), FLAT, 0),
    # capacity ceiling (GPU pods Pending)
    Case("ceiling caps scale-up", obs(2, 50, replica_ceiling=2), FLAT, 2),
    Case("ceiling never forces a scale-down", obs(5, 50, replica_ceiling=2), FLAT, 5),
    Case("ceiling above the ask changes nothing", obs(1, 12, replica_ceiling=6), FLAT, 3),
    # backlog age (opt-in): an old backlog asks for replicas * age / target
    Case("age off: old small backlog, count only", obs(1, 2, age_seconds=120), FLAT, 1),
    Case("age: 2 tasks waited 120s, target 30s", obs(1, 2, age_seconds=120), AGE, 3),
    Case("age: ratio 4x but only 1 task waits", obs(1, 1, age_seconds=120), AGE, 2),
    Case("age: under target, count rules", obs(2, 12, age_seconds=10), AGE, 3),
    Case("age: from zero asks at least 1", obs(0, 1, age_seconds=300), AGE, 1),
    Case("age: clamped to max", obs(8, 5, age_seconds=3600), AGE, 10),
    Case("age: empty queue ignores a stale age", obs(2, 0, age_seconds=99, pollers=2), AGE, 0),
    # rates (opt-in): arrivals vs what one replica dispatches, growth one poll ahead
    Case(
        "rates off: growing queue sized on count",
        obs(2, 10, add_rate=8.0, dispatch_rate=2.0, pollers=2),
        FLAT,
        2,
    ),
    Case(
        "rates: add 8/s vs 1/s per replica -> 8",
        obs(2, 10, add_rate=8.0, dispatch_rate=2.0, pollers=2),
        RATES,
        8,
    ),
    Case(
        "rates: growth ahead beats count when nothing dispatches yet",
        obs(0, 3, add_rate=4.0),
        RATES,
        5,  # 3 + 4/s * 5 s = 23 tasks -> ceil(23 / 5)
    ),
    Case(
        "rates: empty backlog says nothing about capacity; the count target scales down",
        obs(3, 0, add_rate=1.0, dispatch_rate=1.0, pollers=3),
        RATES,
        1,  # the zero guard keeps one while tasks move
    ),
    Case(
        "rates: dispatch counted over ready replicas only (7 of 8 still starting)",
        obs(8, 10, add_rate=4.0, dispatch_rate=1.0, pollers=1, ready_replicas=1),
        replace(RATES, max_replicas=40),
        5,  # keep-up 4 (not 32); growth: 10 + 3/s * 5 s = 25 tasks at 5 per replica
    ),
    Case(
        "rates: keep-up capped at ready + waiting tasks",
        obs(2, 3, add_rate=0.3, dispatch_rate=0.002, pollers=2, ready_replicas=2),
        RATES,
        5,  # long tasks: 300 replicas would keep up with the rate; 3 waiting tasks use 3 more
    ),
    Case(
        "age: pods still starting are not asked for again",
        obs(10, 8, age_seconds=600, ready_replicas=0),
        replace(AGE, max_replicas=20),
        10,  # counting the starting ones: 10 * 600 / 30, capped at 10 + 8 = 18
    ),
    Case(
        "age: ratio on ready replicas",
        obs(4, 6, age_seconds=90, ready_replicas=2),
        AGE,
        6,  # ceil(2 * 90 / 30) = 6, under max(4, 2 + 6)
    ),
    Case(
        "rates: draining queue (dispatch > add) asks nothing extra",
        obs(4, 20, add_rate=0.5, dispatch_rate=4.0, pollers=4),
        RATES,
        4,
    ),
    # scale down only when idle (opt-in)
    Case("idle-only off: backlog 3 under 4 x 5 -> 1", obs(4, 3, pollers=4), FLAT, 1),
    Case("idle-only: backlog 3 holds 4", obs(4, 3, pollers=4), IDLE_ONLY, 4),
    Case(
        "idle-only: dispatching holds",
        obs(4, 0, dispatch_rate=0.3, pollers=4),
        IDLE_ONLY,
        4,
    ),
    Case("idle-only: idle pollers, nothing moving -> 0", obs(4, 0, pollers=4), IDLE_ONLY, 0),
    Case("idle-only still scales up", obs(1, 30, pollers=1), IDLE_ONLY, 6),
    # idle window before zero (opt-in; GPU pools)
    Case("idle window: first idle reading keeps 1", obs(1, 0, pollers=1), GPU_ZERO, 1),
    Case(
        "idle window: idle long enough -> 0",
        obs(1, 0, pollers=1),
        GPU_ZERO,
        0,
        History(idle_since=1000.0 - 600),
    ),
    Case(
        "idle window: not yet -> 1",
        obs(1, 0, pollers=1),
        GPU_ZERO,
        1,
        History(idle_since=1000.0 - 599),
    ),
    Case(
        "idle window: busy resets, guard keeps 1",
        obs(1, 0, running_workflows=1),
        GPU_ZERO,
        1,
        History(idle_since=0.0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    d = decide(case.observation, case.history, case.policy, now=1000.0)
    assert d.replicas == case.want, d.message


def run(policy: Policy, current: int, steps: list[tuple[float, int]]) -> list[Decision]:
    """Feed (time, backlog) readings, applying each decision as the new current replicas."""
    history = History()
    out = []
    for t, backlog in steps:
        d = decide(obs(current, backlog, pollers=current), history, policy, now=t)
        history, current = d.history, d.replicas
        out.append(d)
    return out


def test_scale_down_uses_highest_recommendation_in_window() -> None:
    policy = Policy(min_replicas=0, target_backlog_per_replica=5, scale_down_window=60)
    # 40 tasks -> 8; the queue drains; within 60 s the 8 still counts, then the 2 from t=10
    ds = run(policy, 1, [(0, 40), (10, 10), (30, 0), (59, 0), (61, 0), (75, 0)])
    assert [d.replicas for d in ds] == [8, 8, 8, 8, 2, 0]
    assert "scale-down window" in ds[2].message
    assert ds[4].direction == "down"


def test_scale_up_uses_lowest_recommendation_in_window() -> None:
    policy = Policy(
        min_replicas=1, target_backlog_per_replica=5, scale_up_window=20, scale_down_window=0
    )
    # a spike of 50 at t=5 is ignored until it has lasted the whole 20 s window
    ds = run(policy, 1, [(0, 5), (5, 50), (15, 50), (26, 50), (30, 100)])
    assert [d.replicas for d in ds] == [1, 1, 1, 10, 10]
    assert "scale-up window" in ds[1].message


def test_short_spike_inside_up_window_never_scales() -> None:
    policy = Policy(min_replicas=1, scale_up_window=30, scale_down_window=0)
    ds = run(policy, 1, [(0, 0), (5, 100), (10, 0), (40, 0)])
    assert all(d.replicas == 1 for d in ds)


def test_zero_only_after_window_of_idle() -> None:
    policy = Policy(min_replicas=0, scale_down_window=30)
    history = History()
    current = 2
    readings = [
        (0, Backlog(count=0, running_workflows=2, pollers=2)),  # work still running: keep 1
        (10, Backlog(count=0, running_workflows=1, pollers=2)),  # last busy reading
        (20, Backlog(count=0, running_workflows=0, pollers=2)),  # idle now, but window holds 1
        (39, Backlog(count=0, running_workflows=0, pollers=1)),
        (41, Backlog(count=0, running_workflows=0, pollers=1)),  # 30 s after last busy -> 0
    ]
    got = []
    for t, reading in readings:
        d = decide(Observation(current, reading), history, policy, now=t)
        history, current = d.history, d.replicas
        got.append(d.replicas)
    # the window starts seeded with the current 2, then holds the guarded 1 for 30 s
    assert got == [2, 2, 2, 1, 0]


def test_error_keeps_history_for_recovery() -> None:
    policy = Policy(min_replicas=0, scale_down_window=60)
    d1 = decide(obs(1, 30), History(), policy, now=0)
    d2 = decide(obs(d1.replicas, None, error="connection refused"), d1.history, policy, now=10)
    assert d2.replicas == 6
    assert "Temporal unavailable" in d2.message
    assert "connection refused" in d2.message
    d3 = decide(obs(d2.replicas, 0, pollers=6), d2.history, policy, now=20)
    assert d3.replicas == 6  # the 60 s window still remembers 6


def test_reason_message_names_backlog_and_target() -> None:
    d = decide(obs(4, 37), History(), FLAT, now=0)
    assert d.message.startswith("backlog 37 over 4 x 5")
    assert "4 -> 8" in d.message
    assert d.direction == "up"


def test_guard_message_says_why() -> None:
    d = decide(obs(3, 0, running_workflows=2), History(), FLAT, now=0)
    assert d.replicas == 1
    assert d.guarded
    assert "not scaling to 0" in d.message
    assert "2 workflows running" in d.message


def test_policy_from_spec_defaults() -> None:
    p = Policy.from_spec(AutoscalingSpec())
    assert (p.min_replicas, p.max_replicas, p.target_backlog_per_replica) == (1, 10, 5)
    assert (p.scale_up_window, p.scale_down_window) == (0, 300)


def test_history_is_pruned_to_longest_window() -> None:
    policy = Policy(scale_up_window=10, scale_down_window=20)
    history = History()
    for t in range(0, 100, 5):
        history = decide(obs(1, 5), history, policy, now=float(t)).history
    assert all(95 - t < 20 for t, _ in history.recommendations)


def test_gpu_pool_reaches_zero_after_idle_window_never_while_running() -> None:
    """A GPU pool with a 120 s idle window: the running job keeps its replica; only 120 s of
    continuous idleness after it ends lets the pool reach 0."""
    policy = replace(FLAT, zero_idle_window=120)
    history = History()
    current = 1
    readings = [
        (0, Backlog(count=0, running_workflows=1, pollers=1)),  # a long job runs
        (100, Backlog(count=0, running_workflows=1, pollers=1)),
        (200, Backlog(count=0, pollers=1)),  # idle from here
        (300, Backlog(count=0, pollers=1)),
        (310, Backlog(count=0, add_rate=0.1, pollers=1)),  # a new task: the clock restarts
        (320, Backlog(count=0, pollers=1)),
        (439, Backlog(count=0, pollers=1)),
        (440, Backlog(count=0, pollers=1)),
    ]
    got = []
    for t, reading in readings:
        d = decide(Observation(current, reading), history, policy, now=float(t))
        history, current = d.history, d.replicas
        got.append(d.replicas)
    assert got == [1, 1, 1, 1, 1, 1, 1, 0]


def test_signal_messages_say_why() -> None:
    d = decide(obs(1, 2, age_seconds=120), History(), AGE, now=0)
    assert "backlog age 120s over 30s" in d.message
    d = decide(obs(2, 10, add_rate=8.0, dispatch_rate=2.0, pollers=2), History(), RATES, now=0)
    assert "add 8/s vs dispatch 1/s per ready replica" in d.message
    d = decide(obs(4, 3, pollers=4), History(), IDLE_ONLY, now=0)
    assert "not scaling down while busy: backlog 3" in d.message
    d = decide(obs(1, 0, pollers=1), History(), GPU_ZERO, now=0)
    assert "idle 0s of 600s before 0" in d.message


def test_policy_from_spec_new_signals() -> None:
    p = Policy.from_spec(AutoscalingSpec())
    assert p.target_backlog_age is None
    assert not p.scale_on_rates
    assert not p.scale_down_only_when_idle
    assert p.zero_idle_window == 0
    spec = AutoscalingSpec.model_validate(
        {
            "targetBacklogAgeSeconds": 30,
            "scaleOnRates": True,
            "scaleDownOnlyWhenIdle": True,
            "scaleToZeroAfterIdleSeconds": 600,
            "pollIntervalSeconds": 7,
        }
    )
    p = Policy.from_spec(spec)
    assert (p.target_backlog_age, p.scale_on_rates, p.scale_down_only_when_idle) == (30, True, True)
    assert (p.zero_idle_window, p.poll_interval) == (600, 7)
