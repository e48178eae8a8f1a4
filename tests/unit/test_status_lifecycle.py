"""InvalidSpec in and out, at the planner (admission now rejects every spec the e2e suites
could use to reach it on a real API server; tests/hostile shows none gets through)."""

from __future__ import annotations

from typing import Any

from workerpool_operator.kinds import SERVICE
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import Observed, Outcome
from workerpool_operator.reconcile.plan import finish, plan
from workerpool_operator.render import Capabilities


def body(generation: int, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "n", "uid": "u", "generation": generation},
        "spec": {"connection": {"address": "t:7233"}, "taskQueue": "q", "workflows": ["a:W"],
                 **spec},
    }  # fmt: skip


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_invalid_spec_in_and_out() -> None:
    bad = plan(body(1, replicas="many"), Capabilities(), Observed())
    status = finish(bad, Outcome(), None, generation=1, now="t1")
    assert ready(status)["reason"] == Reason.INVALID_SPEC
    assert "spec.replicas" in ready(status)["message"]
    fixed = plan(body(2, replicas=2), Capabilities(), Observed())
    assert fixed.invalid is None
    assert fixed.writes  # the pool is built once the spec is right
    after = finish(fixed, Outcome(), status, generation=2, now="t2")
    assert ready(after)["reason"] == Reason.REPLICAS_NOT_READY
    assert ready(after)["observedGeneration"] == 2
    assert ready(after)["lastTransitionTime"] == "t1"  # still False: no transition
    degraded = next(c for c in after["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("False", Reason.AS_EXPECTED)


def test_stalled_is_degraded_in_kstatus_words() -> None:
    """Flux and `kubectl wait` (kstatus) read Stalled, not Degraded: a pool that cannot
    progress without a person must read as Failed there, and as Current again once fixed."""

    def by_type(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
        return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}

    bad = finish(plan(body(1, replicas="many"), Capabilities(), Observed()), Outcome(), None,
                 generation=1, now="t1")  # fmt: skip
    conds = by_type(bad)
    assert conds["Stalled"] == conds["Degraded"]
    assert conds["Stalled"][:2] == ("True", Reason.INVALID_SPEC)
    conflict = finish(
        plan(body(2, replicas=2), Capabilities(), Observed()),
        Outcome(failures={SERVICE: "Service n/p: 422 spec.ports: Invalid"}),
        bad,
        generation=2,
        now="t2",
    )
    assert by_type(conflict)["Stalled"][:2] == ("True", Reason.APPLY_FAILED)
    fine = finish(plan(body(3, replicas=2), Capabilities(), Observed()), Outcome(), conflict,
                  generation=3, now="t3")  # fmt: skip
    assert by_type(fine)["Stalled"] == ("False", Reason.AS_EXPECTED, "")
    assert [c["type"] for c in fine["conditions"]][:4] == [
        "Ready", "Progressing", "Degraded", "Stalled",
    ]  # fmt: skip
