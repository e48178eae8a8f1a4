"""bench_autoscaling's several-run summary (issue 21: "builtin_vs_keda_default >= 5 in every
run, with the spread of several runs"): the goals are judged per run, a timed-out percentile
misses, and the reported figures are one real run's, not a blend."""

from __future__ import annotations

from typing import Any

from bench.bench_autoscaling import combine, meets_goals


def run(ratio: float | None, ours: float | None, tuned: float | None = 10.0) -> dict[str, Any]:
    return {
        "builtin_vs_keda_default": ratio,
        "builtin_from_n_p95_s": ours,
        "keda_tuned_from_n_p95_s": tuned,
        "builtin_p50_s": 3.0,
        "marker": f"{ratio}/{ours}",
    }


def test_a_run_meets_the_goals_only_with_both_figures_in_bounds() -> None:
    assert meets_goals(run(5.0, 10.0, 10.0))
    assert not meets_goals(run(4.9, 1.0))  # not 5x KEDA's defaults
    assert not meets_goals(run(9.0, 10.5, 10.0))  # a from-N tail worse than KEDA tuned
    assert not meets_goals(run(None, 1.0))  # a timed-out from-0 percentile
    assert not meets_goals(run(9.0, None))  # a timed-out from-N percentile


def test_several_runs_report_the_median_run_each_run_and_the_spread() -> None:
    runs = [run(7.0, 5.0), run(4.0, 5.0), run(9.0, 12.0)]
    out = combine(runs)
    assert out["marker"] == "7.0/5.0"  # the median run by the ratio, whole
    assert [r["meets_goals"] for r in out["runs"]] == [True, False, False]
    assert out["spread"]["builtin_vs_keda_default"] == {
        "min": 4.0, "median": 7.0, "max": 9.0, "missing": 0,
    }  # fmt: skip
    assert out["every_run_meets_goals"] is False
    assert combine([run(6.0, 5.0), run(8.0, 4.0)])["every_run_meets_goals"] is True


def test_one_run_is_reported_as_it_was_measured() -> None:
    only = run(6.0, 5.0)
    assert combine([only]) == only
