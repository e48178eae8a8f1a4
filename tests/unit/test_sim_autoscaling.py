"""The autoscaling simulator (bench/sim_autoscaling.py) keeps its promises: no task lost or
killed, reproducible runs, KEDA/HPA's stabilization and cooldown, and the GPU idle window.

Behaviour only, no hard-coded results: the study's numbers may change with `decide`, these must
not. Short traces keep the whole file to a few seconds.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from bench import sim_autoscaling as sim
from workerpool_operator.scaling import decide as decide_module

SEED = 7


@cache
def small_traces() -> tuple[sim.Trace, ...]:
    return (
        sim.gpu_llm_trace(SEED, hours=2.0),
        sim.steady_eval_trace(SEED, hours=0.25),
        sim.daily_ramp_trace(SEED, day_hours=0.5),
    )


@cache
def run(trace_name: str, policy: str, seed: int = SEED) -> sim.Run:
    if seed == SEED:
        trace = next(t for t in small_traces() if t.name == trace_name)
    else:
        trace = sim.gpu_llm_trace(seed, hours=2.0)
    return sim.simulate(trace, policy, seed)


ALL = [(t.name, p) for t in small_traces() for p in sim.POLICIES]


def test_replays_the_real_decide() -> None:
    """The study imports the operator's decision function; a copy could drift from it."""
    assert vars(sim)["decide"] is decide_module.decide


@pytest.mark.parametrize(("trace_name", "policy"), ALL)
def test_every_task_is_served_once_and_never_killed(trace_name: str, policy: str) -> None:
    r = run(trace_name, policy)
    world = r.world
    n = len(world.arrival)
    assert n > 0
    assert world.completed == n
    assert not world.queue
    assert not world.running
    for i in range(n):
        start, end = world.start[i], world.end[i]
        assert start is not None
        assert end is not None
        assert start >= world.arrival[i]
        # ran for exactly its service time: nothing cut it short
        assert end - start == world.service[i]
        pod = world.pods[world.ran_on[i]]
        assert pod.ready_at <= start
        assert pod.created <= start
        # its pod, drained or not, outlived it
        assert pod.ended is None or pod.ended >= end
    assert all(p.running == 0 for p in world.pods)


def test_scale_downs_hit_busy_pods_and_they_drain() -> None:
    """The no-kill property is exercised: some scale-downs chose pods that were running tasks."""
    drained = {(t, p): run(t, p).world.drained_busy for t, p in ALL}
    assert sum(drained.values()) > 0, drained
    assert drained[("gpu-llm", "keda-default")] > 0  # KEDA's 1 -> 0 does not wait for work


def test_runs_are_deterministic_with_a_seed() -> None:
    trace = sim.gpu_llm_trace(SEED, hours=1.0)
    assert trace == sim.gpu_llm_trace(SEED, hours=1.0)
    for policy in sim.POLICIES:
        a, b = sim.simulate(trace, policy, SEED), sim.simulate(trace, policy, SEED)
        assert a.world.events == b.world.events
        assert a.world.start == b.world.start
        drop = {"cpu_s"}
        assert {k: v for k, v in a.summary().items() if k not in drop} == {
            k: v for k, v in b.summary().items() if k not in drop
        }
    assert sim.gpu_llm_trace(SEED + 1, hours=1.0).tasks != trace.tasks


@pytest.mark.parametrize("trace_name", ["gpu-llm", "steady-eval", "daily-ramp"])
def test_keda_hpa_never_scales_down_within_300s_of_a_peak(trace_name: str) -> None:
    r = run(trace_name, "keda-default")
    scaler = r.scaler
    assert isinstance(scaler, sim.KedaScaler)
    downs = [e for e in r.world.events if e.actor == "hpa" and e.after < e.before]
    assert downs, "the trace should make the HPA scale down at least once"
    for e in downs:
        peak = max(d for t, d in scaler.desired_log if e.t - sim.HPA_DOWN_WINDOW < t <= e.t)
        assert peak <= e.after, (e, peak)
        last_higher = max(
            (t for t, d in scaler.desired_log if t <= e.t and d > e.after), default=None
        )
        assert last_higher is None or e.t - last_higher >= sim.HPA_DOWN_WINDOW


def test_keda_scale_up_rate_is_limited_per_15s() -> None:
    r = run("gpu-llm", "keda-default")
    ups = [e for e in r.world.events if e.actor == "hpa" and e.after > e.before]
    assert ups
    for e in ups:
        assert e.after <= max(e.before + sim.HPA_UP_PODS, 2 * e.before)


def test_keda_goes_to_zero_only_after_cooldown() -> None:
    r = run("gpu-llm", "keda-default")
    scaler = r.scaler
    assert isinstance(scaler, sim.KedaScaler)
    zeros = [e for e in r.world.events if e.after == 0]
    assert zeros
    for e in zeros:
        assert e.actor == "keda"
        recent = [a for t, a in scaler.active_log if e.t - sim.KEDA_COOLDOWN < t <= e.t]
        assert not any(recent), e


def _last_busy(world: sim.World, t: int) -> int:
    """The last second before t at which the queue had work (an arrival or a running task)."""
    busy = [a for a in world.arrival if a <= t]
    busy += [
        min(e, t)
        for s, e in zip(world.start, world.end, strict=True)
        if s is not None and s <= t and e is not None
    ]
    return max(busy)


def test_gpu_age_rate_reaches_zero_between_bursts_only_after_the_idle_window() -> None:
    r = run("gpu-llm", "age+rate")
    window = sim.policy_for(r.trace.pool, "age+rate").zero_idle_window
    assert window > 0
    zeros = [e for e in r.world.events if e.after == 0]
    last_arrival = r.world.arrival[-1]
    between = [e for e in zeros if e.t < last_arrival]
    assert between, "the pool should reach 0 in some gap between bursts"
    for e in zeros:
        assert e.t - _last_busy(r.world, e.t) >= window, e
    # The window is what holds it: count-only reaches 0 sooner after the last work.
    plain = run("gpu-llm", "count-only")
    gaps = [e.t - _last_busy(plain.world, e.t) for e in plain.world.events if e.after == 0]
    assert gaps
    assert min(gaps) < window


def test_policies_come_from_the_spec_fields() -> None:
    """count-only is the spec's defaults; age+rate adds the opt-in fields, `--opt-in` overrides."""
    gpu = next(t for t in small_traces() if t.name == "gpu-llm")
    plain = sim.policy_for(gpu.pool, "count-only")
    assert plain.target_backlog_age is None
    assert not plain.scale_on_rates
    assert plain.zero_idle_window == 0
    assert plain.scale_down_window == 300  # the spec's default
    rich = sim.policy_for(gpu.pool, "age+rate")
    assert rich.target_backlog_age == 60
    assert rich.scale_on_rates
    assert rich.scale_down_only_when_idle
    assert rich.zero_idle_window == 600
    (changed,) = (
        t
        for t in sim.traces(SEED, 0.5, {"gpu-llm": {"targetBacklogAgeSeconds": 180}})
        if t.name == "gpu-llm"
    )
    assert sim.policy_for(changed.pool, "age+rate").target_backlog_age == 180
    with pytest.raises(ValueError, match="unknown trace"):
        sim.traces(SEED, 0.5, {"nope": {}})


def test_main_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.json"
    args = ["--day-hours", "0.5", "--policies", "count-only", "--seeds", "2", "--out", str(out)]
    assert sim.main(args) == 0
    printed = capsys.readouterr().out
    assert "| gpu-llm | count-only |" in printed
    assert "min-max over seeds 1..2" in printed
    data = json.loads(out.read_text())
    assert [r["trace"] for r in data["results"]] == ["gpu-llm", "steady-eval", "daily-ramp"]
    assert set(data["seeds"]) == {"1", "2"}
    assert all(r["served"] == r["tasks"] for r in data["results"])
