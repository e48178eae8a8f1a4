"""The notification step of the GPU LLM job; the GPU step is the built-in "RunLLMOnGPU"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity


@dataclass
class Notification:
    """What the job's owner is told when the job ends, however it ends."""

    job_id: str
    status: str  # done | cancelled | failed
    message: str


@activity.defn
async def notify(note: Notification) -> str:
    """Deliver the notification; here it is logged, a real pool would send mail or a webhook.

    Kept on its own queue so a slow or down notification channel never holds a GPU slot.
    """
    text = f"job {note.job_id} {note.status}: {note.message}"
    activity.logger.info("notification: %s", text)
    return text


def notification_activities() -> list[Callable[..., Any]]:
    """TWP_ACTIVITIES=examples.gpu_llm_job.activities:notification_activities."""
    return [notify]
