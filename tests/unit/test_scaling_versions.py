"""Table-driven tests of the Builtin engine's per-version decisions (pure: no Temporal, no
cluster): shares of new work during a ramp, draining versions on their exact pinned count, each
version's own zero guard, and the busy-worker floor from heartbeats."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from workerpool_operator.scaling.decide import Backlog, History, Observation, Policy, decide
from workerpool_operator.scaling.versions import (
    VersionInput,
    decide_versions,
    described,
    shares,
    split,
)

FLAT = Policy(
    min_replicas=0,
    max_replicas=10,
    target_backlog_per_replica=5,
    scale_up_window=0,
    scale_down_window=0,
)


def v(build: str, state: str, replicas: int, backlog: int | None = 0, **kw: object) -> VersionInput:
    """A version with a backlog reading of `backlog` tasks (None: not read)."""
    reading = None if backlog is None else Backlog(count=backlog, pollers=max(replicas, 1))
    return replace(
        VersionInput(build_id=build, state=state, current_replicas=replicas, backlog=reading),
        **kw,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Case:
    name: str
    versions: list[VersionInput]
    want: dict[str, int]  # build -> replicas; a build missing here gets no decision
    policy: Policy = FLAT


CASES = [
    Case("current alone: ceil(37 / 5)", [v("A", "Current", 2, 37, open_pinned=3)], {"A": 8}),
    Case(
        "ramp 30%: backlog 40 split 12 / 28 -> 3 and 6",
        [
            v("A", "Current", 4, 30, open_pinned=5),
            v("B", "Ramping", 1, 10, ramp_percentage=30.0, open_pinned=1),
        ],
        {"A": 6, "B": 3},
    ),
    Case(
        "the share is of the total, not of the version's own backlog",
        [
            v("A", "Current", 4, 0, open_pinned=5),
            v("B", "Ramping", 1, 50, ramp_percentage=50.0, open_pinned=1),
        ],
        {"A": 5, "B": 5},
    ),
    Case(
        "ramp 1% of a backlog of 3: rounded up, never 0",
        [
            v("A", "Current", 1, 3, open_pinned=1),
            v("B", "Ramping", 0, 0, ramp_percentage=1.0, open_pinned=0),
        ],
        {"A": 1, "B": 1},
    ),
    Case(
        "ramping from unversioned: the ramp's share only (5 tasks)",
        [v("B", "Ramping", 1, 20, ramp_percentage=25.0, open_pinned=0)],
        {"B": 1},
    ),
    Case(
        "maxReplicas split by share",
        [
            v("A", "Current", 4, 500, open_pinned=5),
            v("B", "Ramping", 1, 500, ramp_percentage=20.0, open_pinned=1),
        ],
        {"A": 8, "B": 2},
    ),
    Case(
        "minReplicas split by share, the parts adding up to it (2.4 / 0.6 -> 2 / 1)",
        [
            v("A", "Current", 4, 0, open_pinned=0),
            v("B", "Ramping", 1, 0, ramp_percentage=20.0, open_pinned=0),
        ],
        {"A": 2, "B": 1},
        replace(FLAT, min_replicas=3),
    ),
    Case(
        "maxReplicas 5 at 50%: 3 + 2, never 3 + 3 (the pool's cap is the versions' cap)",
        [
            v("A", "Current", 4, 500, open_pinned=5),
            v("B", "Ramping", 1, 500, ramp_percentage=50.0, open_pinned=1),
        ],
        {"A": 3, "B": 2},
        replace(FLAT, max_replicas=5),
    ),
    Case(
        "draining with pinned work: sized on its own backlog",
        [v("A", "Current", 1, 0, open_pinned=0), v("O", "Draining", 1, 12, open_pinned=4)],
        {"A": 0, "O": 3},
    ),
    Case(
        "draining with pinned work and no backlog: its zero guard keeps 1",
        [v("A", "Current", 1, 0, open_pinned=0), v("O", "Draining", 3, 0, open_pinned=4)],
        {"A": 0, "O": 1},
    ),
    Case(
        "draining with an unknown count: kept up (assumed busy)",
        [v("A", "Current", 1, 0, open_pinned=0), v("O", "Draining", 2, 0, open_pinned=None)],
        {"A": 0, "O": 1},
    ),
    Case(
        "drained (last pinned workflow ended): 0 at once, windows or not",
        [v("A", "Current", 1, 0, open_pinned=0), v("O", "Drained", 3, None, open_pinned=0)],
        {"A": 1, "O": 0},  # A: inside its own scale-down window
        replace(FLAT, scale_down_window=300),
    ),
    Case(
        "inactive, not the target: 0",
        [v("A", "Current", 1, 0, open_pinned=0), v("X", "Inactive", 1, None, open_pinned=0)],
        {"A": 0, "X": 0},
    ),
    Case(
        "the target before it serves (gate running) and an unregistered build: no decision",
        [
            v("A", "Current", 2, 10, open_pinned=1),
            v("B", "Inactive", 1, None, target=True, open_pinned=1),
            v("C", "NotRegistered", 1, None),
        ],
        {"A": 2},
    ),
    Case(
        "each version's own zero guard: the current's running workflows keep it at 1",
        [
            v("A", "Current", 2, 0, open_pinned=2),
            v("B", "Ramping", 2, 0, ramp_percentage=50.0, open_pinned=0),
        ],
        {"A": 1, "B": 1},  # B: idle, kept at the ramping floor
    ),
    Case(
        "an idle current version that is not the target may reach 0; the target keeps 1",
        [
            v("A", "Current", 2, 0, open_pinned=0),
            v("B", "Ramping", 2, 0, ramp_percentage=50.0, open_pinned=0, target=True),
        ],
        {"A": 0, "B": 1},
    ),
    Case(
        "busy version with no backlog: not scaled below its busy workers",
        [
            v("A", "Current", 3, 0, open_pinned=0, busy_workers=3),
            v("O", "Draining", 2, 0, open_pinned=2, busy_workers=2),
        ],
        {"A": 3, "O": 2},
    ),
    Case(
        "busy workers above the share's max: capped at it",
        [
            v("A", "Current", 8, 0, open_pinned=0, busy_workers=8),
            v("B", "Ramping", 2, 0, ramp_percentage=50.0, open_pinned=0, busy_workers=0),
        ],
        {"A": 5, "B": 1},
    ),
    Case(
        "a new-work version's reading failed: every new-work version holds",
        [
            v("A", "Current", 4, 100, open_pinned=0),
            replace(
                v("B", "Ramping", 2, None, ramp_percentage=50.0, open_pinned=0), error="timeout"
            ),
        ],
        {"A": 4, "B": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decide_versions(case: Case) -> None:
    got = {d.build_id: d.replicas for d in decide_versions(case.versions, {}, case.policy, 0.0)}
    assert got == case.want


def test_ramp_shares_add_up_and_current_takes_the_rest() -> None:
    versions = [
        v("A", "Current", 1, open_pinned=0),
        v("B", "Ramping", 1, ramp_percentage=35.0, open_pinned=0),
    ]
    assert shares(versions) == pytest.approx({"A": 0.65, "B": 0.35})


@pytest.mark.parametrize("pct", [1, 5, 10, 25, 33, 50, 75, 99])
@pytest.mark.parametrize("backlog", [1, 7, 40, 133])
def test_each_version_within_one_replica_of_its_share(pct: int, backlog: int) -> None:
    """ramp_scale_error's rule: each version is within 1 replica of its share of
    ceil(backlog / target), and the ramping one is never 0 while there is backlog."""
    versions = [
        v("A", "Current", 1, backlog, open_pinned=0),
        v("B", "Ramping", 1, 0, ramp_percentage=float(pct), open_pinned=0),
    ]
    policy = replace(FLAT, max_replicas=100)
    got = {d.build_id: d.replicas for d in decide_versions(versions, {}, policy, 0.0)}
    total = -(-backlog // policy.target_backlog_per_replica)
    assert abs(got["B"] - total * pct / 100) <= 1
    assert abs(got["A"] - total * (100 - pct) / 100) <= 1
    assert got["B"] >= 1


def test_each_version_keeps_its_own_history() -> None:
    """A scale-down window per version: B's spike does not hold A up, and A's does not hold B."""
    policy = replace(FLAT, scale_down_window=60)
    first = [
        v("A", "Current", 1, 50, open_pinned=0),
        v("B", "Ramping", 1, 0, ramp_percentage=10.0, open_pinned=0),
    ]
    d1 = decide_versions(first, {}, policy, 0.0)
    histories = {d.build_id: d.history for d in d1}
    replicas = {d.build_id: d.replicas for d in d1}
    assert replicas == {"A": 9, "B": 1}
    later = [
        v("A", "Current", 9, 0, open_pinned=0),
        v("B", "Ramping", 1, 0, ramp_percentage=10.0, open_pinned=0),
    ]
    d2 = {d.build_id: d.replicas for d in decide_versions(later, histories, policy, 30.0)}
    assert d2 == {"A": 9, "B": 1}  # inside A's window: held; B never went above 1
    d3 = {d.build_id: d.replicas for d in decide_versions(later, histories, policy, 61.0)}
    assert d3 == {"A": 0, "B": 1}  # B: the ramping floor


def test_described_reads_only_live_versions() -> None:
    versions = [
        v("A", "Current", 1),
        v("B", "Ramping", 1, ramp_percentage=10.0),
        v("O", "Draining", 1, open_pinned=2),
        v("P", "Draining", 1, open_pinned=0),
        v("Q", "Drained", 1),
        v("X", "Inactive", 1),
        v("N", "NotRegistered", 1),
    ]
    assert described(versions) == ["A", "B", "O"]


def test_busy_workers_hold_an_unversioned_decision_too() -> None:
    """The floor lives in `decide`: busy workers with an empty backlog are not scaled away."""
    obs = Observation(current_replicas=4, backlog=Backlog(count=0, pollers=4), busy_workers=3)
    d = decide(obs, History(), FLAT, 0.0)
    assert d.replicas == 3
    assert "3 workers running tasks" in d.message
    idle = decide(replace(obs, busy_workers=0), History(), FLAT, 0.0)
    assert idle.replicas == 0


@pytest.mark.parametrize("total", [0, 1, 2, 3, 5, 7, 10, 100])
@pytest.mark.parametrize("ramp", [0.0, 0.01, 0.2, 0.333, 0.5, 0.9, 1.0], ids=lambda r: f"ramp{r}")
def test_split_adds_up_to_the_pool_bound(total: int, ramp: float) -> None:
    parts = split(total, {"current": 1.0 - ramp, "ramping": ramp}, least=1)
    assert all(p >= 1 for p in parts.values())
    # The versions together never get more than the pool's maxReplicas, except the one worker
    # each version needs when maxReplicas is below the number of versions.
    assert sum(parts.values()) == max(total, 2)
    mins = split(total, {"current": 1.0 - ramp, "ramping": ramp}, least=0)
    assert sum(mins.values()) == total
