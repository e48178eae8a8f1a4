"""`LLMJobWorkflow`: generate on a GPU pool, report progress, honour Cancel, then notify.

The GPU activity is called by name ("RunLLMOnGPU") on the GPU queue, so torch is never imported
here; the request/result dataclasses are passed through the sandbox, not re-imported per run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from examples.gpu_llm_job.activities import Notification, notify
    from worker_runtime.llm.types import GPU_NON_RETRYABLE_ERRORS, LLMRequest, LLMResult

GPU_ACTIVITY = "RunLLMOnGPU"
CANCELLABLE_STAGES = ("queued", "generating")

# Three tries on another GPU (OOM, reclaimed node); a missing model will not appear on retry.
GPU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1),
    maximum_attempts=3, non_retryable_error_types=GPU_NON_RETRYABLE_ERRORS,
)  # fmt: skip
# Notification channels have outages; retry for a while, but never lose the result over it.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)  # fmt: skip


@dataclass
class LLMJobInput:
    """Workflow input: the generation request plus where and how long to run it."""

    prompt: str
    model_path: str | None = None  # None: the GPU pool's TWP_LLM_MODEL_PATH
    max_new_tokens: int | None = None  # None: the GPU pool's TWP_LLM_MAX_NEW_TOKENS
    temperature: float = 0.0
    seed: int | None = None
    gpu_queue: str = "llm-gpu"
    notification_queue: str = "notifications"
    timeout_minutes: float = 30.0  # per attempt, model load included
    # The SDK forwards heartbeats at most every 0.8 x this, and a Cancel reaches the activity
    # with a heartbeat's reply: so this also bounds how long a cancelled job keeps the GPU.
    heartbeat_timeout_seconds: float = 30.0


@dataclass
class JobStatus:
    """Answer of the "GetStatus" query."""

    stage: str  # queued | generating | notifying | done | cancelled | failed
    percent: int
    message: str
    updated_at: str  # ISO 8601, workflow time


@dataclass
class LLMJobResult:
    status: str  # done | cancelled (a failed job fails the workflow)
    output: str | None
    tokens: int
    device: str | None
    gpu: str | None
    notification: str


@workflow.defn(name="LLMJobWorkflow")
class LLMJobWorkflow:
    """One generation job; the workflow owns the stage, the GPU activity owns fine progress."""

    def __init__(self) -> None:
        self._status = JobStatus("queued", 0, "waiting to start", _now())
        self._gpu: workflow.ActivityHandle[LLMResult] | None = None
        self._cancel_requested = False

    def _set(self, stage: str, percent: int, message: str) -> None:
        self._status = JobStatus(stage, percent, message, _now())

    @workflow.query(name="GetStatus")
    def get_status(self) -> JobStatus:
        """Stage-level progress; `client.job_status` adds the GPU activity's heartbeats."""
        return self._status

    @workflow.signal(name="Cancel")
    def cancel(self) -> None:
        """Stop the job: cancels the in-flight GPU activity so the GPU is freed now."""
        if self._cancel_requested or self._status.stage not in CANCELLABLE_STAGES:
            return  # already cancelling, or the GPU work is over: nothing left to stop
        self._cancel_requested = True
        self._set(self._status.stage, self._status.percent, "cancel requested")
        if self._gpu is not None and not self._gpu.done():
            self._gpu.cancel()

    @workflow.run
    async def run(self, job: LLMJobInput) -> LLMJobResult:
        job_id = workflow.info().workflow_id
        result: LLMResult | None = None
        error: str | None = None
        if not self._cancel_requested:  # Cancel can arrive with the first workflow task
            self._set("generating", 5, f"sent to GPU queue {job.gpu_queue}")
            # No schedule-to-start limit: a GPU pool scaled to zero needs minutes to come up.
            self._gpu = workflow.start_activity(
                GPU_ACTIVITY,
                LLMRequest(
                    prompt=job.prompt,
                    model_path=job.model_path,
                    max_new_tokens=job.max_new_tokens,
                    temperature=job.temperature,
                    seed=job.seed,
                ),
                result_type=LLMResult,
                task_queue=job.gpu_queue,
                start_to_close_timeout=timedelta(minutes=job.timeout_minutes),
                heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout_seconds),
                retry_policy=GPU_RETRY,
                # Report "cancelled" only once the GPU has actually stopped.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary="generate (GPU)",
            )
            try:
                result = await self._gpu
            except ActivityError as err:
                if not isinstance(err.cause, CancelledError):
                    error = _describe(err)
            except asyncio.CancelledError:
                self._set("cancelled", self._status.percent, "workflow cancelled")
                raise
            finally:
                self._gpu = None

        if result is not None:
            outcome, percent = "done", 100
            message = f"{result.tokens} tokens on {result.gpu or result.device}"
        elif error is not None:
            outcome, percent, message = "failed", self._status.percent, error
        else:
            outcome, percent = "cancelled", self._status.percent
            message = "cancelled before the GPU finished"

        self._set("notifying", 95 if result else percent, f"job {outcome}, notifying")
        try:
            notification = await workflow.execute_activity(
                notify,
                Notification(job_id=job_id, status=outcome, message=message),
                task_queue=job.notification_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NOTIFY_RETRY,
                summary="notify",
            )
        except ActivityError as err:
            # The generated text is worth more than the message about it.
            workflow.logger.warning("notification failed: %s", _describe(err))
            notification = f"notification failed: {_describe(err)}"

        self._set(outcome, percent, message)
        if error is not None:
            raise ApplicationError(
                f"generation failed: {error}", type="GenerationFailed", non_retryable=True
            )
        return LLMJobResult(
            status=outcome,
            output=result.output if result else None,
            tokens=result.tokens if result else 0,
            device=result.device if result else None,
            gpu=result.gpu if result else None,
            notification=notification,
        )


def _now() -> str:
    return workflow.now().isoformat(timespec="seconds")


def _describe(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause or err)
