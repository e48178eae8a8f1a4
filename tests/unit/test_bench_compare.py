"""bench/compare.py: which figures it compares, in which order it runs the sides, and when it
marks a figure worse (the table a before/after claim rests on)."""

from __future__ import annotations

from bench.compare import Row, figures, order, rows


def test_figures_flatten_numbers_and_leave_out_samples_and_settings() -> None:
    result = {
        "burst_p95_s": 6.3,
        "burst_pools": 50,
        "meets_goal": True,  # a verdict, not a figure
        "keda_version": "v2.21.0",
        "samples_s": {"builtin": [1.0, 2.0]},
        "median": {"runtime": {"activities_per_s": 40.0}},
        "results": [{"trace": "gpu-llm", "policy": "age+rate", "wait_p95_s": 105}],
        "rounds": [{"round": "r1", "side": "bare", "activities_per_s": 9.0}],
    }
    assert figures(result) == {
        "burst_p95_s": 6.3,
        "burst_pools": 50.0,
        "median.runtime.activities_per_s": 40.0,
        "results.gpu-llm/age+rate.wait_p95_s": 105.0,
    }


def test_the_side_that_goes_first_alternates_across_repeats_and_parts() -> None:
    assert list(order(["operator", "runtime"], repeat=2)) == [
        ("operator", 0), ("operator", 1), ("operator", 1), ("operator", 0),
        ("runtime", 0), ("runtime", 1), ("runtime", 1), ("runtime", 0),
    ]  # fmt: skip


def test_a_figure_is_marked_only_when_worse_beyond_the_mark_and_the_noise() -> None:
    slower = Row("operator", "burst_p95_s", 1.0, 1.5)
    assert slower.marked
    assert not Row("operator", "burst_p95_s", 1.5, 1.0).marked  # faster
    assert not Row("operator", "burst_p95_s", 1.0, 1.5, noise=1.6).marked  # within the noise
    # more is better for throughput
    assert Row("runtime", "median.runtime.activities_per_s", 40.0, 30.0).marked
    assert not Row("runtime", "median.runtime.activities_per_s", 30.0, 40.0).marked


def test_rows_take_each_sides_median_and_the_widest_spread_as_noise() -> None:
    (row,) = rows("sim", [{"cpu_s": 1.0}, {"cpu_s": 2.0}, {"cpu_s": 3.0}], [{"cpu_s": 2.0}])
    assert (row.before, row.after, row.noise) == (2.0, 2.0, 3.0)
    (only_after,) = rows("sim", [{}], [{"new_s": 1.0}])
    assert (only_after.before, only_after.after, only_after.ratio) == (None, 1.0, None)
