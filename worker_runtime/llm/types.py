"""Inputs and outputs of the built-in LLM activities, importable without torch or httpx.

Workflows pass these through the sandbox (`workflow.unsafe.imports_passed_through`); keeping
them apart from the activities means a CPU pool that only *calls* RunLLMOnGPU never needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Error types RunLLMOnGPU raises non-retryable: a missing model will not appear on retry. Retry
# policies name them in `non_retryable_error_types` too, so a retry is never even scheduled.
GPU_MODEL_NOT_FOUND = "ModelNotFound"
GPU_MODEL_NOT_CONFIGURED = "ModelNotConfigured"
GPU_NON_RETRYABLE_ERRORS = (GPU_MODEL_NOT_FOUND, GPU_MODEL_NOT_CONFIGURED)


@dataclass
class LLMRequest:
    """Activity input. `max_new_tokens` defaults to TWP_LLM_MAX_NEW_TOKENS."""

    prompt: str
    model_path: str | None = None
    max_new_tokens: int | None = None
    temperature: float = 0.0  # 0 = greedy (deterministic)
    seed: int | None = None


@dataclass
class LLMResult:
    """Activity output: text plus what dashboards and billing want to know."""

    output: str
    tokens: int  # generated (completion) tokens
    prompt_tokens: int
    latency: float  # seconds spent generating (model load excluded)
    gpu: str | None  # CUDA device name, None when it ran on CPU
    device: str
    model_path: str


@dataclass
class ChatRequest:
    """Activity input; `model` defaults to TWP_OPENAI_MODEL."""

    messages: list[dict[str, str]]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatResult:
    output: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    latency: float
    attempts: int  # HTTP attempts inside this activity attempt (429/5xx retries)
