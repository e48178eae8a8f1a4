"""`make gpu-check`: the runtime-gpu path against raw transformers `generate`, in one run.

Runs `RunLLMOnGPU` (worker_runtime/llm/gpu.py, inside temporalio's ActivityEnvironment, so its
per-token stopping criteria, heartbeats and cancellation checks are all measured) and, on the
very same loaded model, a bare `model.generate`, with a small random GPT-2 made locally
(testbed/tiny_model.py; no download). Both generate exactly `--tokens` new tokens greedily (the
model's EOS is switched off), in alternating rounds after one warm-up each. Reported in
`bench-results/gpu.json`, per device:

- tokens/s of the activity and of raw generate (medians over rounds) and their ratio;
- peak GPU memory (`torch.cuda.max_memory_allocated`) during the activity rounds;
- cancellation latency: from `cancel()` while the activity is generating to the activity
  raising `CancelledError` (median of `--cancels` trials).

The activity uses CUDA whenever torch sees a GPU, so a run measures CUDA on a machine with an
NVIDIA GPU and the CPU path elsewhere; the device not measured is reported with `measured:
false`, null figures and the reason, never with made-up numbers. Exits 1 if it ran longer than
`--budget-s` (default 300 s): the check is meant to fit in five minutes.

    python -m bench.gpu_check [--tokens 128] [--rounds 5] [--cancels 5] [--budget-s 300]
        [--out bench-results/gpu.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from testbed.tiny_model import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench-results" / "gpu.json"
PROMPT = "hello world, temporal workers run activities on gpus"
# Small enough to build in seconds, big enough that a GPU step is not only launch overhead.
MODEL = {"n_layer": 4, "n_head": 4, "n_embd": 256}


def _quiet_env() -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: None
    return env


def _sync(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(model_dir: Path, tokens: int, rounds: int, cancels: int) -> dict[str, Any]:
    """All figures for the device the activity picks (CUDA when visible, else CPU)."""
    import torch

    from worker_runtime.llm import gpu
    from worker_runtime.llm.types import LLMRequest

    loaded = gpu.load_model(str(model_dir))
    device = loaded.device
    # Fixed-length generation on both sides: never stop early on the random model's EOS.
    loaded.model.generation_config.eos_token_id = None
    pad = loaded.tokenizer.eos_token_id
    req = LLMRequest(prompt=PROMPT, model_path=str(model_dir), max_new_tokens=tokens)

    def run_activity() -> float:
        _sync(torch, device)
        start = time.perf_counter()
        result = _quiet_env().run(gpu.run_llm_on_gpu, req)
        _sync(torch, device)
        elapsed = time.perf_counter() - start
        assert result.tokens == tokens, (result.tokens, tokens)
        return tokens / elapsed

    def run_raw() -> float:
        _sync(torch, device)
        start = time.perf_counter()
        inputs = loaded.tokenizer(PROMPT, return_tensors="pt").to(device)
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs, max_new_tokens=tokens, do_sample=False, pad_token_id=pad
            )
        _sync(torch, device)
        elapsed = time.perf_counter() - start
        made = int(out.shape[-1]) - int(inputs["input_ids"].shape[-1])
        assert made == tokens, (made, tokens)
        return tokens / elapsed

    run_activity()  # warm-up: first-call allocations, kernels, caches
    run_raw()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runtime_rates: list[float] = []
    raw_rates: list[float] = []
    for i in range(rounds):  # alternate the order: cancels a drift between the sides
        if i % 2 == 0:
            runtime_rates.append(run_activity())
            raw_rates.append(run_raw())
        else:
            raw_rates.append(run_raw())
            runtime_rates.append(run_activity())
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None

    latencies = [cancel_latency(gpu, model_dir) for _ in range(cancels)]
    runtime_tps = statistics.median(runtime_rates)
    raw_tps = statistics.median(raw_rates)
    return {
        "measured": True,
        "device": device,
        "gpu": loaded.gpu,
        "tokens_per_s": round(runtime_tps, 1),
        "raw_generate_tokens_per_s": round(raw_tps, 1),
        "ratio": round(runtime_tps / raw_tps, 3),
        "peak_gpu_memory_bytes": peak,
        "peak_gpu_memory_reason": None if peak is not None else "no GPU memory on the CPU path",
        "cancel_latency_ms": round(statistics.median(latencies) * 1000, 1),
        "cancel_latency_ms_max": round(max(latencies) * 1000, 1),
        "rounds": {
            "tokens_per_s": [round(r, 1) for r in runtime_rates],
            "raw_generate_tokens_per_s": [round(r, 1) for r in raw_rates],
            "cancel_latency_ms": [round(s * 1000, 1) for s in latencies],
        },
    }


def cancel_latency(gpu: Any, model_dir: Path) -> float:
    """Seconds from cancel() during generation to CancelledError out of the activity."""
    env = ActivityEnvironment()
    cancelled_at: list[float] = []

    def on_beat(*details: Any) -> None:
        if details[0]["stage"] == "generating" and not cancelled_at:

            def cancel() -> None:
                time.sleep(0.05)  # well inside generation, not at its first step
                cancelled_at.append(time.perf_counter())
                env.cancel()

            threading.Thread(target=cancel).start()

    env.on_heartbeat = on_beat
    # Far more tokens than can be made before the cancel lands.
    req = gpu.LLMRequest(prompt=PROMPT, model_path=str(model_dir), max_new_tokens=3500)
    try:
        env.run(gpu.run_llm_on_gpu, req)
    except CancelledError:
        return time.perf_counter() - cancelled_at[0]
    raise RuntimeError("RunLLMOnGPU finished instead of being cancelled")


def not_measured(reason: str) -> dict[str, Any]:
    return {
        "measured": False,
        "reason": reason,
        "device": None,
        "gpu": None,
        "tokens_per_s": None,
        "raw_generate_tokens_per_s": None,
        "ratio": None,
        "peak_gpu_memory_bytes": None,
        "cancel_latency_ms": None,
    }


def cuda_absent_reason(torch: Any) -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (no CUDA runtime)"
    return (
        f"no NVIDIA GPU visible to torch {torch.__version__} (CUDA {torch.version.cuda}): "
        "torch.cuda.is_available() is False"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__)
    p.add_argument("--tokens", type=int, default=128, help="new tokens per generation")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds per side")
    p.add_argument("--cancels", type=int, default=5, help="cancellation trials")
    p.add_argument("--budget-s", type=float, default=300.0, help="fail when slower than this")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    started = time.monotonic()
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call,unused-ignore]

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        model_dir = save_tiny_model(Path(tmp) / "gpt2-small-random", **MODEL)
        figures = measure(model_dir, args.tokens, args.rounds, args.cancels)
    if figures["device"] == "cuda":
        cpu = not_measured("a GPU was present and RunLLMOnGPU always uses it")
        cuda = figures
    else:
        cpu = figures
        cuda = not_measured(cuda_absent_reason(torch))
    duration = time.monotonic() - started
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {**MODEL, "weights": "random (testbed/tiny_model.py)"},
        "prompt_tokens_note": "one short prompt; greedy; EOS off",
        "tokens": args.tokens,
        "rounds": args.rounds,
        "cuda": cuda,
        "cpu": cpu,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    header = ("device", "tok/s", "raw tok/s", "ratio", "peak MiB", "cancel ms")
    print(f"{header[0]:<8}" + "".join(f"{h:>11}" for h in header[1:]))
    for name, fig in (("cuda", cuda), ("cpu", cpu)):
        if not fig["measured"]:
            print(f"{name:<8}not measured: {fig['reason']}")
            continue
        peak = fig["peak_gpu_memory_bytes"]
        mib = f"{peak / 2**20:.1f}" if peak is not None else "-"
        cells = (fig["tokens_per_s"], fig["raw_generate_tokens_per_s"], fig["ratio"], mib)
        print(f"{name:<8}" + "".join(f"{c:>11}" for c in (*cells, fig["cancel_latency_ms"])))
    print(f"wrote {args.out} in {duration:.1f}s")
    if duration > args.budget_s:
        print(f"gpu-check took {duration:.0f}s, over its {args.budget_s:.0f}s budget")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
