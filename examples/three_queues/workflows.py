"""`RouterWorkflow`: one workflow on the CPU pool that routes each step to the right queue.

The LLM activities are called by name ("RunLLMOnGPU", "OpenAIChat") with `task_queue=`, so this
module never imports the activity code into the workflow sandbox — only the request/result
dataclasses, passed through so they are not re-imported per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from examples.three_queues.activities import PreparedPrompt, prepare_prompt
    from worker_runtime.llm.types import (
        GPU_NON_RETRYABLE_ERRORS,
        ChatRequest,
        ChatResult,
        LLMRequest,
        LLMResult,
    )

GPU_ACTIVITY = "RunLLMOnGPU"
OPENAI_ACTIVITY = "OpenAIChat"

# CPU work is fast and cheap: retry quickly, give up after a handful of attempts.
CPU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)  # fmt: skip
# A missing or unconfigured model will not fix itself on retry; anything else (OOM, a node
# reclaimed) might, on another GPU.
GPU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1),
    maximum_attempts=3, non_retryable_error_types=GPU_NON_RETRYABLE_ERRORS,
)  # fmt: skip
# The activity already retries 429/5xx itself (honouring Retry-After); this covers what is left.
OPENAI_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=2),
    maximum_attempts=5, non_retryable_error_types=["MissingAPIKey", "NoModel"],
)  # fmt: skip


@dataclass
class RouterInput:
    """Workflow input; queue names default to the sample pools' queues."""

    text: str
    # None: the workflow's own queue, i.e. the CPU pool that runs this workflow (`orders` in
    # manifests/samples/cpu-pool.yaml), which also hosts `default_activities`.
    default_queue: str | None = None
    ml_queue: str = "llm-gpu"  # the GPU pool of manifests/samples/gpu-llm-pool.yaml
    openai_queue: str = "openai"
    model_path: str | None = None  # None: the GPU pool's TWP_LLM_MODEL_PATH
    max_new_tokens: int = 64
    openai_model: str | None = None  # None: the API pool's TWP_OPENAI_MODEL
    instruction: str = "Summarise the following text in one sentence."


@dataclass
class Step:
    """Where a step was sent and what it produced, for the caller and the UI."""

    activity: str
    task_queue: str
    output: str


@dataclass
class RouterResult:
    prompt: str
    generated: str  # from the ML (GPU) queue
    answer: str  # from the openai queue
    steps: list[Step] = field(default_factory=list)


@workflow.defn(name="RouterWorkflow")
class RouterWorkflow:
    """Prepare on CPU, generate on GPU, summarise via the API — each on its own queue."""

    @workflow.run
    async def run(self, inp: RouterInput) -> RouterResult:
        default_queue = inp.default_queue or workflow.info().task_queue
        steps: list[Step] = []

        prepared: PreparedPrompt = await workflow.execute_activity(
            prepare_prompt,
            inp.text,
            task_queue=default_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=CPU_RETRY,
            summary="prepare prompt (CPU)",
        )
        steps.append(Step("PreparePrompt", default_queue, f"{prepared.words} words"))

        # A GPU pool may be scaled to zero: no schedule-to-start limit, the backlog wakes it.
        # The built-in activity heartbeats about every second while loading and generating.
        generated: LLMResult = await workflow.execute_activity(
            GPU_ACTIVITY,
            LLMRequest(
                prompt=prepared.prompt,
                model_path=inp.model_path,
                max_new_tokens=inp.max_new_tokens,
            ),
            result_type=LLMResult,
            task_queue=inp.ml_queue,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=GPU_RETRY,
            summary="generate (GPU)",
        )
        steps.append(Step(GPU_ACTIVITY, inp.ml_queue, f"{generated.tokens} tokens"))

        # One HTTP request may take TWP_OPENAI_TIMEOUT_SECONDS (120 s by default) without a
        # heartbeat, so the heartbeat timeout must be longer than that.
        chat: ChatResult = await workflow.execute_activity(
            OPENAI_ACTIVITY,
            ChatRequest(
                messages=[
                    {"role": "system", "content": inp.instruction},
                    {"role": "user", "content": generated.output},
                ],
                model=inp.openai_model,
            ),
            result_type=ChatResult,
            task_queue=inp.openai_queue,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=3),
            retry_policy=OPENAI_RETRY,
            summary="summarise (OpenAI API)",
        )
        steps.append(Step(OPENAI_ACTIVITY, inp.openai_queue, f"{chat.tokens} tokens"))

        return RouterResult(
            prompt=prepared.prompt, generated=generated.output, answer=chat.output, steps=steps
        )
