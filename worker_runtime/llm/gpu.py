"""`RunLLMOnGPU`: text generation with a local Hugging Face model, on CUDA when present.

Register with TWP_ACTIVITIES=worker_runtime.llm.gpu:run_llm_on_gpu (needs the `llm` extra).
The model is loaded once per process (first call) from a local folder — TWP_LLM_MODEL_PATH or
the request's `model_path` — with `local_files_only=True`: pods never download weights at run
time. The activity is synchronous (runs in the runtime's thread pool) so generation never
blocks the event loop that heartbeats and polls.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from worker_runtime import metrics
from worker_runtime.llm import now_iso, setting
from worker_runtime.llm.types import (
    GPU_MODEL_NOT_CONFIGURED,
    GPU_MODEL_NOT_FOUND,
    LLMRequest,
    LLMResult,
)

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria
    from transformers.utils import logging as hf_logging
except ImportError as err:
    # Fail at import, so `--check` and startup say so, not every activity attempt later.
    raise ImportError(
        "worker_runtime.llm.gpu needs torch and transformers (the `llm` extra): run this pool "
        f"on the workerpools/worker-runtime-gpu image ({err})"
    ) from err

BACKEND = "gpu"
_HEARTBEAT_EVERY_S = 1.0


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: str
    gpu: str | None


_models: dict[str, _Loaded] = {}
_lock = threading.Lock()


def pick_device() -> tuple[str, str | None]:
    """CUDA when a GPU is visible, else CPU (so the same image also runs on CPU nodes)."""
    if torch.cuda.is_available():
        return "cuda", str(torch.cuda.get_device_name(0))
    return "cpu", None


def load_model(path: str) -> _Loaded:
    """Load once per process and path; concurrent first calls wait for the same load."""
    with _lock:
        if path in _models:
            return _models[path]
        # tqdm bars would interleave non-JSON lines with the runtime's JSON logs.
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call,unused-ignore]

        device, gpu = pick_device()
        try:
            tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                path,
                local_files_only=True,
                dtype=torch.float16 if device == "cuda" else torch.float32,
            )
        except OSError as err:
            raise ApplicationError(
                f"cannot load model from {path!r}: {err} — mount the model folder and set "
                "TWP_LLM_MODEL_PATH (no download happens at run time)",
                type=GPU_MODEL_NOT_FOUND,
                non_retryable=True,
            ) from None
        model.to(device)
        model.eval()
        loaded = _Loaded(model=model, tokenizer=tokenizer, device=device, gpu=gpu)
        _models[path] = loaded
        return loaded


def _beat(percent: int, stage: str, message: str) -> None:
    activity.heartbeat(
        {"percent": percent, "stage": stage, "message": message, "updated_at": now_iso()}
    )


def _stopping_criteria(prompt_len: int, max_new: int) -> Any:
    """Heartbeat progress per token (throttled) and stop generating once cancelled."""

    class Progress(StoppingCriteria):  # type: ignore[misc,unused-ignore]  # Any without torch
        def __init__(self) -> None:
            self.last = 0.0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            done = int(input_ids.shape[-1]) - prompt_len
            now = time.monotonic()
            if now - self.last >= _HEARTBEAT_EVERY_S:
                self.last = now
                _beat(min(99, done * 100 // max_new), "generating", f"{done}/{max_new} tokens")
            return activity.is_cancelled()

    return Progress()


def _load_with_heartbeats(path: str) -> _Loaded:
    """Load (or reuse) the model, heartbeating meanwhile: a large model can take minutes to
    load, far longer than a heartbeat timeout."""
    _beat(0, "loading", f"loading model from {path}")
    done = threading.Event()
    ctx = contextvars.copy_context()  # the activity context, for heartbeats from this thread

    def beat() -> None:
        while not done.wait(_HEARTBEAT_EVERY_S):
            ctx.run(_beat, 0, "loading", f"loading model from {path}")

    beater = threading.Thread(target=beat, name="llm-load-heartbeat", daemon=True)
    beater.start()
    try:
        return load_model(path)
    finally:
        done.set()
        beater.join()


# no_thread_cancel_exception: cancellation is honoured by the stopping criteria between tokens;
# the SDK's default (raising CancelledError asynchronously in this thread) could land inside
# torch or a lock and leave the process wedged.
@activity.defn(name="RunLLMOnGPU", no_thread_cancel_exception=True)
def run_llm_on_gpu(req: LLMRequest) -> LLMResult:
    """Generate text for `req.prompt`; heartbeats progress and honours cancellation."""
    path = req.model_path or setting("llm_model_path")
    if not path:
        raise ApplicationError(
            "no model: set TWP_LLM_MODEL_PATH or pass model_path",
            type=GPU_MODEL_NOT_CONFIGURED,
            non_retryable=True,
        )
    max_new = req.max_new_tokens or int(setting("llm_max_new_tokens"))
    model_label = os.path.basename(path.rstrip("/")) or path
    try:
        loaded = _load_with_heartbeats(path)
    except ApplicationError:
        metrics.LLM_REQUESTS.labels(BACKEND, model_label, "error").inc()
        raise
    if req.seed is not None:
        torch.manual_seed(req.seed)
    inputs = loaded.tokenizer(req.prompt, return_tensors="pt").to(loaded.device)
    prompt_len = int(inputs["input_ids"].shape[-1])
    _beat(1, "generating", f"0/{max_new} tokens on {loaded.gpu or loaded.device}")
    pad = loaded.tokenizer.pad_token_id
    if pad is None:
        pad = loaded.tokenizer.eos_token_id
    start = time.monotonic()
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs,
            max_new_tokens=max_new,
            do_sample=req.temperature > 0,
            temperature=req.temperature if req.temperature > 0 else None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            stopping_criteria=[_stopping_criteria(prompt_len, max_new)],
        )
    latency = time.monotonic() - start
    if activity.is_cancelled():
        _beat(0, "cancelled", "generation stopped on cancellation")
        metrics.LLM_REQUESTS.labels(BACKEND, model_label, "cancelled").inc()
        raise CancelledError("RunLLMOnGPU cancelled")
    new_ids = out[0][prompt_len:]
    text = loaded.tokenizer.decode(new_ids, skip_special_tokens=True)
    metrics.record_llm(BACKEND, model_label, prompt_len, len(new_ids), latency)
    metrics.LLM_REQUESTS.labels(BACKEND, model_label, "ok").inc()
    _beat(100, "done", f"{len(new_ids)} tokens in {latency:.2f}s")
    return LLMResult(
        output=text,
        tokens=len(new_ids),
        prompt_tokens=prompt_len,
        latency=latency,
        gpu=loaded.gpu,
        device=loaded.device,
        model_path=path,
    )


# What a pool lists: TWP_ACTIVITIES=worker_runtime.llm.gpu:activities
activities = [run_llm_on_gpu]
