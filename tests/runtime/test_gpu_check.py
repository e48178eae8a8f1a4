"""`make gpu-check` (bench/gpu_check.py) on this machine's path: CPU here, CUDA on a GPU node.

Without a GPU the check must measure the CPU path and report every CUDA figure as null with
the reason; with one, the CUDA figures must be real (positive) numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")):
    if os.environ.get("CI"):
        raise RuntimeError("torch/transformers missing in CI: install the `llm` extra")
    pytest.skip("needs the llm extra (torch, transformers)", allow_module_level=True)

from bench import gpu_check

pytestmark = pytest.mark.llm


def test_gpu_check_reports_the_measured_path_and_never_fakes_cuda(tmp_path: Path) -> None:
    import torch

    out = tmp_path / "gpu.json"
    argv = ["--tokens", "24", "--rounds", "2", "--cancels", "2", "--out", str(out)]
    assert gpu_check.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["tokens"] == 24
    measured = report["cuda"] if torch.cuda.is_available() else report["cpu"]
    other = report["cpu"] if torch.cuda.is_available() else report["cuda"]

    assert measured["measured"] is True
    assert measured["tokens_per_s"] > 0
    assert measured["raw_generate_tokens_per_s"] > 0
    assert measured["ratio"] == pytest.approx(
        measured["tokens_per_s"] / measured["raw_generate_tokens_per_s"], rel=0.01
    )
    assert 0 <= measured["cancel_latency_ms"] < 5000
    assert len(measured["rounds"]["tokens_per_s"]) == 2
    if measured["device"] == "cuda":
        assert measured["peak_gpu_memory_bytes"] > 0
    else:
        assert measured["peak_gpu_memory_bytes"] is None

    assert other["measured"] is False
    assert other["reason"]
    figures = ("tokens_per_s", "raw_generate_tokens_per_s", "ratio", "cancel_latency_ms")
    assert all(other[k] is None for k in (*figures, "peak_gpu_memory_bytes"))
