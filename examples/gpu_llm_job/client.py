"""Caller-side helper: job progress down to the GPU activity's latest heartbeat.

A workflow cannot read its activities' heartbeats, so "GetStatus" knows only the stage; the
server does know the pending activity's last heartbeat, and this merges the two.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from examples.gpu_llm_job.workflows import GPU_ACTIVITY, JobStatus, LLMJobWorkflow


async def job_status(client: Client, workflow_id: str) -> JobStatus:
    """The "GetStatus" answer, refined while generating.

    "queued" until a GPU worker picks the job up, then the activity's own percent (mapped into
    the workflow's 5-95 % generating band) and message.
    """
    handle = client.get_workflow_handle(workflow_id)
    status = await handle.query(LLMJobWorkflow.get_status)
    if status.stage != "generating":
        return status
    desc = await handle.describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name != GPU_ACTIVITY:
            continue
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
            return JobStatus(
                "queued", status.percent,
                f"waiting for a GPU worker (attempt {pending.attempt})", status.updated_at,
            )  # fmt: skip
        if (
            pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
            or not pending.heartbeat_details.payloads
        ):
            return status  # "cancel requested" says more than the last progress beat
        beat: Any = (await client.data_converter.decode(pending.heartbeat_details.payloads))[0]
        if not isinstance(beat, dict):
            return status
        percent = max(0, min(100, int(beat.get("percent", 0))))
        return JobStatus(
            "generating",
            5 + percent * 90 // 100,
            f"{beat.get('stage', 'generating')}: {beat.get('message', '')}",
            str(beat.get("updated_at") or status.updated_at),
        )
    return status
