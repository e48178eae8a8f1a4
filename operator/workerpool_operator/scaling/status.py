"""What the Builtin scaler reports, pure: its conditions (AutoscalingReady, BacklogAvailable,
GPUCapacityAvailable) and status fields (desiredReplicas, backlog, lastScaleTime), from one
step's reading and decision. The loop (`loop.py`) applies them under its own field manager."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.status import ConditionSpec, merge_conditions
from workerpool_operator.scaling.decide import Decision, Reading

# Rewrite an unchanged status (only backlog age/observedAt moved) at most this often.
STATUS_REFRESH_SECONDS = 60.0


def rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unschedulable_gpu_pods(pods: list[dict[str, Any]], resource: str) -> tuple[int, str]:
    """Pods Pending because no node has free `resource`, and one scheduler message."""
    count, message = 0, ""
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
                and resource in (cond.get("message") or "")
            ):
                count += 1
                message = message or str(cond.get("message"))
    return count, message


def scaler_conditions(
    pool: api.TemporalWorkerPool,
    reading: Reading | None,
    decision: Decision,
    *,
    problem: tuple[Reason, str] | None,
    gpu: tuple[int, str] | None,
) -> list[ConditionSpec]:
    out: list[ConditionSpec] = []
    if problem is not None:
        reason, message = problem
        out.append(ConditionSpec(api.CONDITION_AUTOSCALING, "False", reason, message))
        out.append(ConditionSpec(api.CONDITION_BACKLOG, "Unknown", reason, message))
    elif reading is None or reading.backlog is None:
        message = f"holding {decision.replicas} replicas: {reading.error if reading else '?'}"
        out.append(
            ConditionSpec(api.CONDITION_AUTOSCALING, "False", Reason.TEMPORAL_UNAVAILABLE, message)
        )
        out.append(
            ConditionSpec(api.CONDITION_BACKLOG, "False", Reason.TEMPORAL_UNAVAILABLE, message)
        )
    else:
        b = reading.backlog
        parts = [
            f"{kind} {stats.backlog}"
            for kind, stats in (("workflow", reading.workflow), ("activity", reading.activity))
            if stats is not None
        ]
        out.append(
            ConditionSpec(
                api.CONDITION_AUTOSCALING, "True", Reason.BACKLOG_POLLED, decision.message
            )
        )
        out.append(
            ConditionSpec(
                api.CONDITION_BACKLOG,
                "True",
                Reason.BACKLOG_POLLED,
                f"backlog {b.count} ({', '.join(parts)}), {b.pollers} pollers",
            )
        )
    if pool.spec.gpu is not None and gpu is not None:
        pending, message = gpu
        if pending:
            out.append(
                ConditionSpec(
                    api.CONDITION_GPU_CAPACITY,
                    "False",
                    Reason.INSUFFICIENT_GPU,
                    f"{pending} pods Pending for lack of {pool.spec.gpu.resource_name}; not "
                    f"scaling up further: {message}",
                )
            )
        else:
            out.append(ConditionSpec(api.CONDITION_GPU_CAPACITY, "True", Reason.GPUS_SCHEDULED))
    return out


def status_core(
    decision: Decision, conditions: list[ConditionSpec], last_scale_time: str | None
) -> dict[str, Any]:
    """What a status write would change, without the parts that move every poll (the
    backlog's age and observedAt): equal cores need no write."""
    return {
        "desiredReplicas": decision.replicas,
        "backlog": decision.backlog,
        "conditions": [(c.type, c.status, c.reason, c.message) for c in conditions],
        "lastScaleTime": last_scale_time,
    }


def scaler_status(
    pool: api.TemporalWorkerPool,
    live: Mapping[str, Any],
    reading: Reading | None,
    decision: Decision,
    conditions: list[ConditionSpec],
    last_scale_time: str | None,
    *,
    now: float,
) -> dict[str, Any]:
    """The status fields and conditions the scaler's field manager owns."""
    status: dict[str, Any] = {
        "desiredReplicas": decision.replicas,
        "conditions": merge_conditions(
            live.get("conditions") or [], conditions, generation=pool.generation, now=rfc3339(now)
        ),
    }
    if reading is not None and reading.backlog is not None and decision.backlog is not None:
        status["backlog"] = {
            "count": decision.backlog,
            "ageSeconds": round(reading.backlog.age_seconds, 1),
            "observedAt": rfc3339(reading.observed_at),
        }
    elif live.get("backlog"):
        status["backlog"] = live["backlog"]  # keep the last known reading during an outage
    last_scale = last_scale_time or live.get("lastScaleTime")
    if last_scale:
        status["lastScaleTime"] = last_scale
    return status
