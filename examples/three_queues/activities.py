"""Activities of the three-queue example, grouped by the pool that hosts them.

Each pool lists only its own factory, so the CPU image never imports the GPU pack and the GPU
image never needs the OpenAI client: the LLM packs are imported inside the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity

MAX_PROMPT_CHARS = 2000


@dataclass
class PreparedPrompt:
    """Output of the CPU step: the cleaned prompt and how much there is of it."""

    prompt: str
    words: int
    truncated: bool


@activity.defn(name="PreparePrompt")
def prepare_prompt(text: str) -> PreparedPrompt:
    """Normalise whitespace and cap the length before paying for GPU or API time.

    Synchronous on purpose: CPU-bound work runs in the runtime's thread pool, off the event loop
    that polls and heartbeats.
    """
    cleaned = " ".join(text.split())
    truncated = len(cleaned) > MAX_PROMPT_CHARS
    if truncated:
        cleaned = cleaned[:MAX_PROMPT_CHARS]
    return PreparedPrompt(prompt=cleaned, words=len(cleaned.split()), truncated=truncated)


def default_activities() -> list[Callable[..., Any]]:
    """The default (CPU) pool; the path cpu-pool.yaml lists in TWP_ACTIVITIES."""
    return [prepare_prompt]


def ml_activities() -> list[Callable[..., Any]]:
    """The ML (GPU) pool: the built-in "RunLLMOnGPU" (needs the worker-runtime-gpu image)."""
    from worker_runtime.llm.gpu import run_llm_on_gpu

    return [run_llm_on_gpu]


def openai_activities() -> list[Callable[..., Any]]:
    """The `openai` pool: the built-in "OpenAIChat" (needs the `openai` extra, httpx)."""
    from worker_runtime.llm.openai import openai_chat

    return [openai_chat]
