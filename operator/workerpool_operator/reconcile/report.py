"""Write what a reconcile found: the pool's status (only when it differs from the stored one),
a Warning Event when the pool's Ready reason or message becomes a problem, and one when a
versioned pool nears its version cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import POOL_STATUS
from workerpool_operator.kube.client import Kube
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.diff import is_subset
from workerpool_operator.reconcile.model import Outcome, Plan
from workerpool_operator.reconcile.plan import finish
from workerpool_operator.reconcile.status import now_rfc3339
from workerpool_operator.reconcile.versioned import STATUS_CONDITIONS, STATUS_FIELDS
from workerpool_operator.versioning.model import LIMIT_CONDITION, ROLLOUT_CONDITION

# Ready reasons a user must act on: each new one (or a new message) gets a Warning Event.
PROBLEMS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.APPLY_FAILED,
        Reason.NAME_CONFLICT,
        Reason.CONNECTION_NOT_FOUND,
        Reason.CONNECTION_NOT_ALLOWED,
        Reason.POOL_NOT_ALLOWED,
        Reason.CONNECTION_INVALID,
        Reason.ADDRESS_NOT_ALLOWED,
        Reason.CREDENTIALS_UNAVAILABLE,
        Reason.GATE_FAILED,
        Reason.OWNED_ELSEWHERE,
        Reason.PROMOTION_REFUSED,
        Reason.RELEASE_GROUP_INVALID,
    }
)


def _condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any]:
    return next((c for c in conditions or [] if c.get("type") == type_), {})


def _ready(conditions: list[dict[str, Any]] | None) -> dict[str, Any]:
    return _condition(conditions, api.CONDITION_READY)


def _drops(status: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """A versioning field or condition the stored status has and this pass no longer sets."""
    if (set(live) & STATUS_FIELDS) - set(status):
        return True
    kept = {c.get("type") for c in status.get("conditions") or []}
    return any(
        c.get("type") in STATUS_CONDITIONS and c.get("type") not in kept
        for c in live.get("conditions") or []
    )


async def report(kube: Kube, body: Mapping[str, Any], p: Plan, outcome: Outcome) -> None:
    meta = body["metadata"]
    live = body.get("status") or {}
    generation = int(meta.get("generation") or 0)
    status = finish(p, outcome, live, generation=generation, now=now_rfc3339())
    obj = {"apiVersion": api.API_VERSION, "kind": api.KIND, **body}
    if outcome.revoked:
        reason = p.conditions[api.CONDITION_READY].reason
        message = (
            f"deleted {', '.join(outcome.revoked)}: the pool's connection no longer admits it "
            f"({reason}; the pool's Ready condition says why and how to fix it)"
        )
        await kube.try_event(obj, reason=Reason.ACCESS_REVOKED, message=message, type_="Warning")
    if is_subset(status, live) and not _drops(status, live):
        return
    await kube.apply_status(POOL_STATUS, meta["namespace"], meta["name"], status)
    before, now = _ready(live.get("conditions")), _ready(status["conditions"])
    changed = (before.get("reason"), before.get("message")) != (now["reason"], now["message"])
    if now["reason"] in PROBLEMS and changed:
        metrics.ERRORS.labels(now["reason"]).inc()
        await kube.try_event(obj, reason=now["reason"], message=now["message"], type_="Warning")
    # Nearing the version cap is not a Ready problem (the rollout still works), but it needs a
    # human before it wedges one: a Warning Event each time it begins.
    near = Reason.VERSION_LIMIT_NEAR
    limit = _condition(status["conditions"], LIMIT_CONDITION)
    if (
        limit.get("reason") == near
        and _condition(live.get("conditions"), LIMIT_CONDITION).get("reason") != near
    ):
        await kube.try_event(obj, reason=near, message=limit["message"], type_="Warning")
    # A release group held back by one of its pools: an Event each time what holds it changes.
    held = _condition(status["conditions"], ROLLOUT_CONDITION)
    if held.get("reason") == Reason.RELEASE_GROUP_HELD and _condition(
        live.get("conditions"), ROLLOUT_CONDITION
    ).get("message") != held.get("message"):
        await kube.try_event(obj, reason=Reason.RELEASE_GROUP_HELD, message=held["message"])
