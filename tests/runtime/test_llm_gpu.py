"""`RunLLMOnGPU` with a real (tiny, random) transformers model loaded from a local folder.

There is no CUDA on CI machines, so these runs take the CPU branch of the same code: the only
GPU-specific part not exercised is `torch.cuda` device selection (asserted as `gpu is None`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

if not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")):
    # The llm extra is optional for development; CI installs it, so there a skip would hide a
    # broken install and fails instead.
    if os.environ.get("CI"):
        raise RuntimeError("torch/transformers missing in CI: install the `llm` extra")
    pytest.skip("needs the llm extra (torch, transformers)", allow_module_level=True)

from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from testbed.tiny_model import save_tiny_model
from worker_runtime import metrics
from worker_runtime.llm import gpu
from worker_runtime.llm.types import LLMRequest

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


def _env(beats: list[Any]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details[0])
    return env


def test_generates_from_local_model_with_progress(model_dir: Path) -> None:
    beats: list[Any] = []
    req = LLMRequest(prompt="hello world", model_path=str(model_dir), max_new_tokens=12)
    result = _env(beats).run(gpu.run_llm_on_gpu, req)

    assert 1 <= result.tokens <= 12
    assert result.prompt_tokens > 0
    assert result.device == "cpu"  # no CUDA here; on a GPU node this is "cuda"
    assert result.gpu is None
    assert result.latency >= 0
    assert beats[0]["stage"] == "loading"
    assert beats[-1]["stage"] == "done"
    assert beats[-1]["percent"] == 100
    assert set(beats[-1]) == {"percent", "stage", "message", "updated_at"}
    # Greedy decoding with the cached model: the same prompt gives the same text.
    again = _env([]).run(gpu.run_llm_on_gpu, req)
    assert again.output == result.output


def test_model_path_from_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWP_LLM_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("TWP_LLM_MAX_NEW_TOKENS", "3")
    result = _env([]).run(gpu.run_llm_on_gpu, LLMRequest(prompt="fox"))
    assert result.model_path == str(model_dir)
    assert result.tokens <= 3


def test_missing_model_is_non_retryable(tmp_path: Path) -> None:
    req = LLMRequest(prompt="x", model_path=str(tmp_path / "absent"))
    with pytest.raises(ApplicationError) as info:
        _env([]).run(gpu.run_llm_on_gpu, req)
    assert info.value.non_retryable
    assert "TWP_LLM_MODEL_PATH" in str(info.value)
    labels = {"backend": "gpu", "model": "absent", "outcome": "error"}
    assert metrics.REGISTRY.get_sample_value("twp_llm_requests_total", labels) == 1


def test_cancellation_stops_generation(model_dir: Path) -> None:
    beats: list[Any] = []
    env = ActivityEnvironment()

    def on_beat(*details: Any) -> None:
        beats.append(details[0])
        if details[0]["stage"] == "generating":
            # Cancel from another thread, as the SDK does when the server says so.
            threading.Thread(target=env.cancel).start()

    env.on_heartbeat = on_beat
    req = LLMRequest(prompt="hello", model_path=str(model_dir), max_new_tokens=4000)
    with pytest.raises(CancelledError):
        env.run(gpu.run_llm_on_gpu, req)
    # Stopped mid-way: never reported completion.
    assert "done" not in [b["stage"] for b in beats]


def test_heartbeats_while_a_slow_model_loads(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big weights load for minutes; the heartbeat timeout must not fire meanwhile."""
    real_load = gpu.load_model

    def slow_load(path: str) -> Any:
        time.sleep(3.5)
        return real_load(path)

    monkeypatch.setattr(gpu, "load_model", slow_load)
    beats: list[Any] = []
    req = LLMRequest(prompt="hi", model_path=str(model_dir), max_new_tokens=2)
    _env(beats).run(gpu.run_llm_on_gpu, req)
    loading = [b for b in beats if b["stage"] == "loading"]
    assert len(loading) >= 3  # one at start, then about one a second
    assert beats[-1]["stage"] == "done"
