"""Release groups, pure: who is in a group, its one build ID, who drives routing, what holds it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from workerpool_operator.api.versioning import VersioningSpec
from workerpool_operator.versioning.build_id import group_build_id
from workerpool_operator.versioning.group import Group, Member, form, standing_verdicts, state

DEP = "team/orders"


def spec(**kw: Any) -> VersioningSpec:
    return VersioningSpec.model_validate(kw)


def member(name: str, **kw: Any) -> Member:
    base: dict[str, Any] = {
        "name": name,
        "spec": spec(deploymentName=DEP),
        "task_queue": f"{name}-q",
        "image": "repo/worker:1.0",
        "template_hash": f"hash-{name}",
    }
    base.update(kw)
    return Member(**base)


def test_a_pool_alone_is_no_group() -> None:
    assert form(DEP, [member("orders")]) is None


def test_members_are_sorted_and_the_first_drives() -> None:
    g = form(DEP, [member("wf"), member("act")])
    assert g is not None
    assert g.members == ("act", "wf")
    assert g.driver == "act"
    assert g.problem == ""


def test_one_build_id_from_every_member_whatever_the_order() -> None:
    a, b = member("act"), member("wf")
    g1, g2 = form(DEP, [a, b]), form(DEP, [b, a])
    assert g1 is not None
    assert g2 is not None
    assert g1.build_id == g2.build_id
    assert g1.build_id.startswith("1.0-")  # the first member's image tag, then the digits


@pytest.mark.parametrize(
    "change",
    [
        {"template_hash": "hash-act-2"},  # the activity pool's template changed
        {"image": "repo/worker:1.1"},
        {"task_queue": "other-q"},  # not part of the build: see below
    ],
)
def test_a_change_in_any_member_is_a_new_build(change: dict[str, Any]) -> None:
    before = form(DEP, [member("act"), member("wf")])
    after = form(DEP, [replace(member("act"), **change), member("wf")])
    assert before is not None
    assert after is not None
    # The task queue is in the pod template (its hash changes with it); alone it is not hashed.
    assert (before.build_id != after.build_id) == ("task_queue" not in change)


def test_a_third_member_joining_is_a_new_build() -> None:
    two = form(DEP, [member("act"), member("wf")])
    three = form(DEP, [member("act"), member("wf"), member("x")])
    assert two is not None
    assert three is not None
    assert two.build_id != three.build_id


def test_group_build_id_is_a_label_value() -> None:
    build = group_build_id([("p", "r@sha256:" + "a" * 64, "h"), ("q", "r:2", "h")])
    assert build.startswith("sha256-aaaaaaaaaaaa-")
    assert len(build) <= 63


def test_a_fixed_build_id_is_the_groups() -> None:
    fixed = spec(deploymentName=DEP, buildId="rel-7")
    g = form(DEP, [member("act", spec=fixed), member("wf", spec=fixed)])
    assert g is not None
    assert g.build_id == "rel-7"
    assert not g.problem


TWO_STEPS = [{"rampPercentage": 10, "pauseSeconds": 60}, {"rampPercentage": 50}]


@pytest.mark.parametrize(
    ("field", "mine", "other"),
    [
        ("strategy", {}, {"strategy": "Manual"}),
        ("steps", {"strategy": "Progressive", "steps": TWO_STEPS},
         {"strategy": "Progressive", "steps": TWO_STEPS[:1]}),
        ("defaultBehavior", {}, {"defaultBehavior": "AutoUpgrade"}),
        ("rollbackWindowSeconds", {}, {"rollbackWindowSeconds": 5}),
        ("gate", {}, {"gate": {"workflowType": "Smoke"}}),
    ],
)  # fmt: skip
def test_members_that_disagree_name_the_field(
    field: str, mine: dict[str, Any], other: dict[str, Any]
) -> None:
    g = form(
        DEP,
        [
            member("act", spec=spec(deploymentName=DEP, **mine)),
            member("wf", spec=spec(deploymentName=DEP, **other)),
        ],
    )
    assert g is not None
    assert f"spec.versioning.{field} differs" in g.problem
    assert "act:" in g.problem
    assert "wf:" in g.problem


def test_pools_of_another_namespace_make_the_group_invalid() -> None:
    g = form(DEP, [member("act")], elsewhere=["other/act"])
    assert g is not None
    assert "other/act" in g.problem
    assert "deploymentName" in g.problem


def test_a_member_that_cannot_be_rendered_is_named() -> None:
    g = form(DEP, [member("act", problem="connection x not found"), member("wf")])
    assert g is not None
    assert "pool act cannot be rendered: connection x not found" in g.problem


def grp(ready: dict[str, int] | None = None) -> Group:
    g = form(DEP, [member("act"), member("orders", task_queue="orders-q")])
    assert g is not None
    return replace(g, build_id="B", ready=ready if ready is not None else {"act": 1, "orders": 1})


HOLDS = [
    ("every member ready and polled", {"act": 1, "orders": 1}, {"act-q", "orders-q"}, ""),
    ("a member with no ready pod", {"act": 0, "orders": 1}, {"orders-q"}, "pool act: its Dep"),
    ("a member's queue not polled", {"act": 1, "orders": 1}, {"orders-q"}, "pool act: no worker"),
    ("queues not read", {"act": 1, "orders": 1}, None, "pool act: which task queues"),
]


@pytest.mark.parametrize(("case", "ready", "polled", "held"), HOLDS, ids=[h[0] for h in HOLDS])
def test_holder(case: str, ready: dict[str, int], polled: set[str] | None, held: str) -> None:
    got = grp(ready).holder(None if polled is None else frozenset(polled))
    assert got.startswith(held) if held else got == ""


@pytest.mark.parametrize(
    ("current", "ramping", "held", "want"),
    [("B", None, "", "Current"), ("A", "B", "", "Rolling"), ("A", None, "pool x", "Held")],
)
def test_state(current: str, ramping: str | None, held: str, want: str) -> None:
    assert state(grp(), held, current, ramping) == want
    assert state(replace(grp(), problem="p"), held, current, ramping) == "Invalid"


# --- the group's verdict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "generation", "stands"),
    [
        ({"buildId": "B", "rejected": "3 of 10 failed", "rejectedGeneration": 7}, 7, True),
        ({"buildId": "B", "rejected": "3 of 10 failed", "rejectedGeneration": 7}, 6, True),
        # The pool's spec changed since: its record is lifted.
        ({"buildId": "B", "rejected": "3 of 10 failed", "rejectedGeneration": 7}, 8, False),
        ({"buildId": "B", "state": "Draining"}, 1, False),
        ({"buildId": "B", "rejected": "gate failed"}, 1, False),  # no generation: not a verdict
    ],
)
def test_standing_verdicts(row: dict[str, Any], generation: int, stands: bool) -> None:
    got = standing_verdicts([row, {"buildId": "A", "state": "Current"}], generation)
    assert got == ({"B": row["rejected"]} if stands else {})


def test_any_members_standing_verdict_is_the_groups() -> None:
    g = form(DEP, [member("wf", rejected={"B": "wf's words"}), member("act"),
                   member("zeta", rejected={"B": "zeta's words", "C": "gate failed"})])  # fmt: skip
    assert g is not None
    assert g.driver == "act"  # the driver has no record of its own
    assert g.rejected == {"B": "wf's words", "C": "gate failed"}
    none = form(DEP, [member("wf"), member("act")])
    assert none is not None
    assert none.rejected == {}
