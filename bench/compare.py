"""The benchmarks of two revisions in one run: one table of before, after and after/before.

Why: a change that must not make any figure worse (a refactor) is judged against figures taken
on the same bed in the same hour; two runs hours apart on a busy 2-core machine differ more than
the code does. Each benchmark runs for both revisions back to back, the order alternating from
one benchmark to the next (before-after, after-before, ...), so a drift in the machine's load
falls on both sides.

Each revision is exported (`git archive`) into a scratch folder and runs its own benchmark code,
operator and runtime: PYTHONPATH points at that copy only. What differs between revisions is
adapted in the invocation, never in the code under test:
- a flag the older benchmark lacks is not passed (`--parts`);
- a testbed older than `WORKERPOOLS_CLUSTER_NAME` is pointed at the named bed, and told to reuse
  it as it runs (SHIM), so both revisions run on the one bed this checkout's testbed starts.

    WORKERPOOLS_CLUSTER_NAME=NAME python -m bench.compare [--before REV] [--after REV]
        [--parts operator,runtime,autoscaling,sim] [--scratch DIR] [--out PATH]

The sizes (PARTS) are small enough for both revisions to finish in about half an hour; the
ratios against a floor or a bare worker that the benchmarks measure in the same run are the
figures least moved by the machine's load. Results: the table on stdout and
bench-results/compare.json (every figure of both sides, and each run's exit status and wall time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Part:
    """One benchmark: its module, its arguments, and where it writes its JSON (relative to
    the revision's copy; `--out` is passed when `out_flag`)."""

    module: str
    args: tuple[str, ...]
    result: str
    out_flag: bool = True


PARTS: dict[str, Part] = {
    "operator": Part(
        "bench.bench_operator",
        ("--scale", "100", "--idle-seconds", "30", "--burst", "50"),
        "bench-results/operator.json",
        out_flag=False,
    ),
    "runtime": Part(
        "bench.bench_runtime",
        ("--rounds", "4", "--workflows", "4", "--activities", "80", "--lanes", "8"),
        "bench-results/runtime.json",
    ),
    "autoscaling": Part(
        "bench.bench_autoscaling",
        ("--trials", "4", "--spread", "20", "--window", "30"),
        "bench-results/autoscaling.json",
    ),
    "sim": Part("bench.sim_autoscaling", (), "bench-results/sim_autoscaling.json"),
}

# Raw samples and settings, not figures: left out of the table (kept in the JSON).
SKIP = frozenset(
    {"rounds", "warmup", "samples_s", "pair_ratios", "examples", "traces", "model", "workload",
     "command", "seeds", "scale_curve", "goal_ratio", "opt_in_overrides", "keda_version"}
)  # fmt: skip
# Rows of a list that name themselves by these fields (the simulator's trace x policy).
LABELS = ("trace", "policy")
# Figures where more is better; every other figure is better lower (seconds, MiB, writes).
HIGHER_IS_BETTER = ("activities_per_s", "_over_bare", "median_pair_ratio", "builtin_vs_keda")
# A figure worse by more than this factor is marked for a look (one run per side: the marker
# says where to look, not that it is a regression).
MARK = 1.25

# Runs the benchmark module given as the first argument; a testbed older than
# WORKERPOOLS_CLUSTER_NAME is pointed at the named bed, which it reuses as it runs.
SHIM = """
import os, runpy, sys
import testbed.cluster as cluster
name = os.environ.get("WORKERPOOLS_CLUSTER_NAME")
if name and cluster.LocalCluster().name != name:
    cluster.LocalCluster.__init__.__defaults__ = (name, None)
    cluster.LocalCluster.config_matches = lambda self: self.config_file.is_file()
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def figures(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric figures of a benchmark's JSON, flattened to dotted keys."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, Mapping):
            out.update(figures(value, f"{name}."))
        elif isinstance(value, list):
            for row in value:
                if isinstance(row, Mapping) and all(k in row for k in LABELS):
                    label = "/".join(str(row[k]) for k in LABELS)
                    rest = {k: v for k, v in row.items() if k not in LABELS}
                    out.update(figures(rest, f"{name}.{label}."))
    return out


def higher_is_better(key: str) -> bool:
    return any(part in key for part in HIGHER_IS_BETTER)


def worse_by(key: str, before: float, after: float) -> float:
    """How many times worse `after` is (1.0: the same; below 1: better)."""
    if before == after:
        return 1.0
    if higher_is_better(key):
        before, after = after, before
    if before <= 0:
        return math.inf if after > 0 else 1.0
    return after / before


@dataclass(frozen=True)
class Row:
    """One figure: each side's median over its runs, and the noise (the widest max/min
    ratio of either side's runs; 1.0 with one run per side)."""

    part: str
    key: str
    before: float | None
    after: float | None
    noise: float = 1.0

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before

    @property
    def marked(self) -> bool:
        if self.before is None or self.after is None:
            return False
        return worse_by(self.key, self.before, self.after) > max(MARK, self.noise)


def spread(values: list[float]) -> float:
    """max/min of one side's runs (1.0: one run, or all equal)."""
    low, high = min(values), max(values)
    if low == high:
        return 1.0
    return math.inf if low <= 0 else high / low


def rows(part: str, before: list[dict[str, float]], after: list[dict[str, float]]) -> list[Row]:
    """One row per figure either side has, in the benchmark's own order."""
    keys = list(dict.fromkeys(k for run in before + after for k in run))
    out = []
    for k in keys:
        b = [run[k] for run in before if k in run]
        a = [run[k] for run in after if k in run]
        noise = max([spread(v) for v in (b, a) if v], default=1.0)
        out.append(Row(part, k, median(b), median(a), noise))
    return out


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def table(all_rows: list[Row], before: str, after: str) -> str:
    def num(x: float | None) -> str:
        if x is None:
            return "-"
        return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"

    width = max([len(f"{r.part}:{r.key}") for r in all_rows] + [10])
    lines = [f"{'figure':<{width}} {before:>10} {after:>10} {'after/bef':>9} {'noise':>6}"]
    for r in all_rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        noise = "-" if r.noise == 1.0 else f"x{r.noise:.2f}"
        mark = "  <- worse" if r.marked else ""
        lines.append(
            f"{r.part + ':' + r.key:<{width}} {num(r.before):>10} {num(r.after):>10} "
            f"{ratio:>9} {noise:>6}{mark}"
        )
    return "\n".join(lines)


def order(parts: list[str], repeat: int = 1) -> Iterator[tuple[str, int]]:
    """(part, side) in run order: each part `repeat` times per side, the side that goes first
    alternating (0 = before): before-after, after-before, ... across repeats and parts."""
    turn = 0
    for part in parts:
        for _ in range(repeat):
            for side in (0, 1) if turn % 2 == 0 else (1, 0):
                yield part, side
            turn += 1


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def export(rev: str, scratch: Path) -> Path:
    """The tree of `rev` in scratch/<sha> (reused when there: a commit does not change)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = scratch / sha
    if not (tree / ".exported").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(["git", "archive", sha], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {sha} failed")
        (tree / ".exported").touch()
    return tree


def invocation(part: Part, tree: Path) -> list[str]:
    """The benchmark's arguments as this revision's copy takes them."""
    args = list(part.args)
    if part.module == "bench.bench_operator" and "--parts" in (
        (tree / "bench" / "bench_operator.py").read_text()
    ):
        args += ["--parts", "burst,scale,failover"]
    if part.out_flag:
        args += ["--out", str(tree / part.result)]
    return args


def tree_env(tree: Path) -> dict[str, str]:
    """This environment with only `tree`'s code importable (it shadows any installed copy)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "operator"), str(tree)])}


def run_one(part: Part, tree: Path) -> tuple[int, float, dict[str, Any]]:
    """Run one benchmark in `tree`: exit status, wall seconds, its JSON ({} when none)."""
    result = tree / part.result
    result.unlink(missing_ok=True)
    env = tree_env(tree)
    cmd = [sys.executable, "-c", SHIM, part.module, *invocation(part, tree)]
    print(f"\n### {tree.name[:10]}: python -m {part.module} {' '.join(cmd[4:])}", flush=True)
    start = time.monotonic()
    rc = subprocess.run(cmd, cwd=tree, env=env, check=False).returncode
    wall = time.monotonic() - start
    data = json.loads(result.read_text()) if result.exists() else {}
    return rc, wall, data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--before", default="34ca8b4", help="revision (default: before issue 17)")
    p.add_argument("--after", default="HEAD")
    p.add_argument("--parts", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    p.add_argument("--repeat", type=int, default=1, help="runs per part and side")
    p.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "bench-compare")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "compare.json")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    revs = (args.before, args.after)
    trees = [export(rev, args.scratch) for rev in revs]
    names = [f"{rev}={t.name[:7]}" for rev, t in zip(revs, trees, strict=True)]
    # The bed this checkout's testbed starts; the older side reuses it (SHIM).
    up = [sys.executable, "-m", "testbed", "up"]
    subprocess.run(up, cwd=trees[1], env=tree_env(trees[1]), check=True)
    runs: dict[str, tuple[list[dict[str, Any]], ...]] = {part: ([], []) for part in parts}
    for part, side in order(parts, args.repeat):
        rc, wall, data = run_one(PARTS[part], trees[side])
        runs[part][side].append({"rc": rc, "wall_s": round(wall, 1), "result": data})
    all_rows: list[Row] = []
    for part in parts:
        b, a = (
            [{"exit_status": r["rc"], "wall_s": r["wall_s"], **figures(r["result"])} for r in side]
            for side in runs[part]
        )
        all_rows += rows(part, b, a)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"revisions": names, "runs": runs}, indent=2) + "\n")
    ran = ", ".join(
        f"{part}:{'before' if side == 0 else 'after'}" for part, side in order(parts, args.repeat)
    )
    print(f"\nbefore {names[0]}, after {names[1]}; run order {ran}")
    print(table(all_rows, "before", "after"))
    print(f"  marked: worse by more than x{MARK} and than the noise (look before concluding)")
    print(f"  -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
