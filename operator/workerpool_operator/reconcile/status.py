"""Pure status computation: conditions shaped like metav1.Condition, kstatus-compatible."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.reasons import Reason

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class ConditionSpec:
    """A condition before timestamps are attached."""

    type: str
    status: ConditionStatus
    reason: Reason
    message: str = ""


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MESSAGE_LIMIT = 1000


def sanitized(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message fit for status and Events: control characters (ANSI escapes, NULs, newlines
    from a remote server's error) become spaces, and it is cut to `limit` characters, so an
    attacker-run Temporal endpoint cannot forge log lines or bloat every status write."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def merge_conditions(
    previous: Iterable[Mapping[str, Any]],
    updates: Iterable[ConditionSpec],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Conditions for `updates`; lastTransitionTime moves only when the status flips."""
    before = {c.get("type"): c for c in previous}
    out: list[dict[str, Any]] = []
    for cond in updates:
        old = before.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        out.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": sanitized(cond.message),
                "lastTransitionTime": now if changed else old["lastTransitionTime"],  # type: ignore[index]
                "observedGeneration": generation,
            }
        )
    return out


@dataclass(frozen=True)
class Workload:
    """What the Deployment says, reduced to what status needs."""

    exists: bool
    desired: int
    replicas: int
    ready: int
    available: int
    updated: int
    current_generation: bool
    stalled: bool
    failure: str | None


def workload_from_deployment(dep: Mapping[str, Any] | None) -> Workload:
    if dep is None:
        return Workload(False, 0, 0, 0, 0, 0, False, False, None)
    spec = dep.get("spec") or {}
    st = dep.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    progressing = conds.get("Progressing") or {}
    failure = conds.get("ReplicaFailure")
    return Workload(
        exists=True,
        desired=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        replicas=int(st.get("replicas") or 0),
        ready=int(st.get("readyReplicas") or 0),
        available=int(st.get("availableReplicas") or 0),
        updated=int(st.get("updatedReplicas") or 0),
        current_generation=int(st.get("observedGeneration") or 0)
        >= int((dep.get("metadata") or {}).get("generation") or 0),
        stalled=progressing.get("reason") == "ProgressDeadlineExceeded",
        failure=(failure or {}).get("message") if (failure or {}).get("status") == "True" else None,
    )


def workload_conditions(w: Workload, *, autoscaled: bool) -> list[ConditionSpec]:
    """Ready / Progressing / Degraded from the Deployment's own status."""
    if not w.exists:
        return [
            ConditionSpec(
                api.CONDITION_READY,
                "False",
                Reason.REPLICAS_NOT_READY,
                "Deployment not created yet",
            ),
            ConditionSpec(
                api.CONDITION_PROGRESSING, "True", Reason.ROLLOUT_IN_PROGRESS, "creating Deployment"
            ),
            ConditionSpec(api.CONDITION_DEGRADED, "False", Reason.AS_EXPECTED),
        ]
    rolled_out = (
        w.current_generation
        and w.updated >= w.desired
        and w.replicas == w.desired
        and w.available >= w.desired
    )
    if w.stalled:
        progressing = ConditionSpec(
            api.CONDITION_PROGRESSING, "False", Reason.ROLLOUT_STALLED, "progress deadline exceeded"
        )
    elif rolled_out:
        progressing = ConditionSpec(api.CONDITION_PROGRESSING, "False", Reason.ROLLOUT_COMPLETE)
    else:
        progressing = ConditionSpec(
            api.CONDITION_PROGRESSING,
            "True",
            Reason.ROLLOUT_IN_PROGRESS,
            f"{w.updated}/{w.desired} updated, {w.replicas} total",
        )
    if w.desired == 0 and rolled_out:
        ready = ConditionSpec(
            api.CONDITION_READY,
            "True",
            Reason.SCALED_TO_ZERO if autoscaled else Reason.AVAILABLE,
            "no replicas requested",
        )
    elif rolled_out and w.available >= w.desired:
        ready = ConditionSpec(
            api.CONDITION_READY, "True", Reason.AVAILABLE, f"{w.ready}/{w.desired} replicas ready"
        )
    else:
        ready = ConditionSpec(
            api.CONDITION_READY,
            "False",
            Reason.REPLICAS_NOT_READY,
            f"{w.ready}/{w.desired} replicas ready",
        )
    if w.stalled or w.failure:
        degraded = ConditionSpec(
            api.CONDITION_DEGRADED,
            "True",
            Reason.ROLLOUT_STALLED,
            w.failure or "progress deadline exceeded",
        )
    else:
        degraded = ConditionSpec(api.CONDITION_DEGRADED, "False", Reason.AS_EXPECTED)
    return [ready, progressing, degraded]


def connection_status(
    *,
    server_version: str | None,
    namespace_exists: bool | None,
    task_queue_stats: bool | None,
    worker_deployments: bool | None,
    error: str | None,
    error_reason: Reason = Reason.TEMPORAL_UNAVAILABLE,
    temporal_namespace: str,
    live_status: Mapping[str, Any] | None,
    generation: int,
    now: str,
) -> dict[str, Any]:
    """A TemporalConnection's status from one health check (pure): Ready once the server
    answered and the namespace exists; the last error and its time are kept after recovery."""
    live = dict(live_status or {})
    if error is not None:
        ready = ConditionSpec(api.CONDITION_READY, "False", error_reason, error)
    elif namespace_exists is False:
        ready = ConditionSpec(
            api.CONDITION_READY,
            "False",
            Reason.NAMESPACE_NOT_FOUND,
            f"the server answered, but has no Temporal namespace {temporal_namespace!r}",
        )
    else:
        ready = ConditionSpec(
            api.CONDITION_READY, "True", Reason.CONNECTED, f"Temporal {server_version or '?'}"
        )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(
            live.get("conditions") or [], [ready], generation=generation, now=now
        ),
    }
    if error is None:
        status["serverVersion"] = server_version
        status["namespaceExists"] = namespace_exists
        capabilities = {"taskQueueStats": task_queue_stats, "workerDeployments": worker_deployments}
        status["capabilities"] = {k: v for k, v in capabilities.items() if v is not None}
    else:  # what was found before stays until the server answers again
        for key in ("serverVersion", "namespaceExists", "capabilities"):
            if key in live:
                status[key] = live[key]
    last_error = live.get("lastError")
    message = sanitized(ready.message)
    if ready.status == "False" and (not last_error or last_error.get("message") != message):
        last_error = {"message": message, "time": now}
    if last_error:
        status["lastError"] = last_error
    return {k: v for k, v in status.items() if v is not None}
