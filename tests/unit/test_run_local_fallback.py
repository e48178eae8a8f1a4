"""`make run` falls back to kwok, and says why, when the real node cannot run or start."""

from __future__ import annotations

from typing import Any

import pytest

from hack import run_local
from testbed import cluster
from testbed.realnode import RealNode


def test_missing_prerequisites_keep_every_pool_on_kwok(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(RealNode, "missing", lambda self: ["root (why)"])
    assert run_local.start_real_node("kubeconfig") is None
    out = capsys.readouterr().out
    assert "missing: root (why)" in out
    assert "falling back to kwok" in out


def test_a_node_that_fails_to_start_is_released_and_kwok_is_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    released: list[Any] = []

    def fail(self: Any, kubeconfig: str) -> None:
        raise cluster.TestbedError("node real-0 never became Ready")

    monkeypatch.setattr(RealNode, "missing", lambda self: [])
    monkeypatch.setattr(RealNode, "acquire", fail)
    monkeypatch.setattr(RealNode, "release", lambda self, k: released.append(k))
    assert run_local.start_real_node("kubeconfig") is None
    out = capsys.readouterr().out
    assert "never became Ready" in out
    assert "falling back to kwok" in out
    assert released == ["kubeconfig"]


def test_real_samples_put_only_the_cpu_pool_on_the_real_node() -> None:
    docs = {d["metadata"]["name"]: d for d in run_local.samples("127.0.0.1:7233", "10.244.77.1:9")}
    orders = docs[run_local.REAL_POOL]["spec"]
    assert orders["connection"]["address"] == "10.244.77.1:9"
    assert orders["image"] == {"tag": run_local.IMAGE_TAG, "pullPolicy": "Never"}
    assert orders["template"]["nodeSelector"] == {"workerpools.dev/node-pool": "real"}
    for name, doc in docs.items():
        if name != run_local.REAL_POOL:
            assert doc["spec"]["connection"]["address"] == "127.0.0.1:7233"
            assert "nodeSelector" not in (doc["spec"].get("template") or {})
    plain = {d["metadata"]["name"]: d for d in run_local.samples("127.0.0.1:7233")}
    assert "image" not in plain[run_local.REAL_POOL]["spec"]
