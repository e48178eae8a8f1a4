"""What a deleted versioned pool left in Temporal, table-driven: which Worker Deployments are this
operator's orphans, and which calls remove one without stranding work."""

from __future__ import annotations

from typing import Any

import pytest

from workerpool_operator.versioning.model import (
    DeleteVersion,
    DeploymentState,
    SetCurrent,
    SetRamping,
    VersionSummary,
)
from workerpool_operator.versioning.orphans import (
    Orphan,
    Removal,
    Scope,
    VersionCheck,
    candidates,
    plan_removal,
    pool_deployment_names,
)

ME = "workerpool-operator@c1"
IDLE = VersionCheck(open_workflows=0, pollers=False)


def body(ns: str, name: str, versioning: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"taskQueue": "q"}
    if versioning is not None:
        spec["versioning"] = versioning
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def test_every_pool_protects_its_default_and_its_chosen_deployment_name() -> None:
    names = pool_deployment_names(
        [
            body("team", "orders", {"deploymentName": "shop-orders"}),
            body("team", "plain"),  # unversioned now: the way back is manual, keep its own
            body("team", "broken", {"deploymentName": 7, "strategy": "Nope"}),  # does not parse
        ]
    )
    assert names == {"team/orders", "shop-orders", "team/plain", "team/broken", "7"}


SCOPES = [
    # (case, listed, scope, candidates)
    (
        "a live pool's deployment is never a candidate",
        ["team/orders", "team/gone"],
        Scope(ME, frozenset({"team/orders"})),
        ["team/gone"],
    ),
    (
        "a cluster-wide install considers any name",
        ["custom-name", "other/x"],
        Scope(ME, frozenset()),
        ["custom-name", "other/x"],
    ),
    (
        "a namespaced install only names under its namespaces",
        ["team/gone", "other/gone", "custom-name"],
        Scope(ME, frozenset(), frozenset({"team"})),
        ["team/gone"],
    ),
]


@pytest.mark.parametrize(("case", "listed", "scope", "expected"), SCOPES,
                         ids=[s[0] for s in SCOPES])  # fmt: skip
def test_candidates(case: str, listed: list[str], scope: Scope, expected: list[str]) -> None:
    assert candidates(listed, scope) == expected, case


def state(
    *builds: str, current: str | None = None, ramping: str | None = None, manager: str = ME
) -> DeploymentState:
    return DeploymentState(
        exists=True,
        conflict_token=b"t",
        manager_identity=manager,
        current_build=current,
        ramping_build=ramping,
        versions=tuple(VersionSummary(b, "Inactive") for b in builds),
    )


def orphan(t: DeploymentState, **checks: VersionCheck) -> Orphan:
    return Orphan(
        "team/gone", t, {b: checks.get(b, IDLE) for b in (v.build_id for v in t.versions)}
    )


REMOVALS = [
    # (case, orphan, calls, deployment deleted, kept builds)
    (
        "idle: unset routing, delete every version, then the deployment",
        orphan(state("a", "b", "c", current="b", ramping="c")),
        [
            SetRamping(None, 0.0),
            SetCurrent(None),
            DeleteVersion("a"),
            DeleteVersion("b"),
            DeleteVersion("c"),
        ],
        True,
        [],
    ),
    (
        "no version left: only the deployment",
        orphan(state()),
        [],
        True,
        [],
    ),
    (
        "the current version has open workflows: routing and it stay",
        orphan(state("a", "b", current="b"), b=VersionCheck(2, None)),
        [DeleteVersion("a")],
        False,
        ["b"],
    ),
    (
        "an uncounted version is kept (never assume zero)",
        orphan(state("a", "b", current="b"), a=VersionCheck(None, None)),
        [SetCurrent(None), DeleteVersion("b")],
        False,
        ["a"],
    ),
    (
        "workers still poll the current version: routing stays",
        orphan(state("a", current="a"), a=VersionCheck(0, True)),
        [],
        False,
        ["a"],
    ),
    (
        "pollers unread: kept",
        orphan(state("a", "b", current="b"), a=VersionCheck(0, None)),
        [SetCurrent(None), DeleteVersion("b")],
        False,
        ["a"],
    ),
    (
        "a busy ramping version keeps its ramp; the idle current is unset and deleted",
        orphan(state("a", "b", current="a", ramping="b"), b=VersionCheck(1, None)),
        [SetCurrent(None), DeleteVersion("a")],
        False,
        ["b"],
    ),
]


@pytest.mark.parametrize(("case", "given", "calls", "deleted", "kept"), REMOVALS,
                         ids=[r[0] for r in REMOVALS])  # fmt: skip
def test_removal(case: str, given: Orphan, calls: list[Any], deleted: bool,
                 kept: list[str]) -> None:  # fmt: skip
    removal = plan_removal(given, ME)
    assert isinstance(removal, Removal)
    assert list(removal.calls) == calls, case
    assert removal.delete_deployment is deleted
    assert [b for b, _ in removal.kept] == kept


def test_versions_with_work_are_never_deleted_nor_routed_away() -> None:
    t = state("a", "b", "c", current="a", ramping="b")
    for a in (VersionCheck(1, None), VersionCheck(0, True), VersionCheck(None, None)):
        removal = plan_removal(orphan(t, a=a, b=a, c=a), ME)
        assert removal is not None
        assert removal.calls == ()
        assert not removal.delete_deployment


def test_open_workflows_say_the_wait_is_long() -> None:
    slow = plan_removal(orphan(state("a"), a=VersionCheck(3, None)), ME)
    quick = plan_removal(orphan(state("a"), a=VersionCheck(0, True)), ME)
    assert slow is not None
    assert slow.waits_for_work
    assert quick is not None
    assert not quick.waits_for_work
    assert dict(slow.kept)["a"] == "3 open workflow(s)"
    assert dict(quick.kept)["a"] == "workers still poll it"


@pytest.mark.parametrize(
    "t",
    [
        state("a", current="a", manager="workerpool-operator@other-cluster"),
        state("a", current="a", manager=""),  # Manual pools never claim routing: the user's
        DeploymentState(exists=False),  # deleted meanwhile
    ],
    ids=["another cluster", "nobody", "gone"],
)
def test_not_this_operators_to_remove(t: DeploymentState) -> None:
    assert plan_removal(orphan(t), ME) is None
