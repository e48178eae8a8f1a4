"""Attacks on the worker runtime's env contract (issue 20, item 2).

The pool author may add env vars to the pod (`spec.env`, `envFrom`, any Secret of the
namespace) but not the reserved `TWP_*` names. These tests run the real runtime as the pod runs
it and try to make it read a setting or credential from a name the operator does not write, or
send the API key in clear text. The "Temporal server" is a local TCP listener that records
whether anything arrived: no real server is needed, since the attack succeeds the moment the
runtime dials it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.helpers import base_env, run_once, unique_queue
from tests.security.attacks import attack
from tests.security.tenants import Listener
from worker_runtime.contract import RuntimeSettings


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@attack("runtime: an API key is never sent without TLS")
def test_an_api_key_without_tls_is_a_config_error_and_nothing_is_sent(
    listener: Listener,
) -> None:
    env = base_env(None, unique_queue("clear"), TWP_TEMPORAL_ADDRESS=listener.address,
                   TWP_API_KEY="s3cret-key", TWP_TLS_ENABLED="false")  # fmt: skip
    result = run_once(env, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "TWP_API_KEY is set but TWP_TLS_ENABLED is false" in result.stderr
    assert "set TWP_TLS_ENABLED=true" in result.stderr
    assert listener.received == [], "the runtime dialled the address with a key in clear text"


@attack("runtime: an alias such as TEMPORAL_API_KEY is not read as the API key")
@pytest.mark.parametrize("name", ["TEMPORAL_API_KEY", "twp_api_key", "Twp_Api_Key"])
def test_a_key_under_another_name_is_not_read(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWP_TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("TWP_TASK_QUEUE", "q")
    monkeypatch.setenv("TWP_TLS_ENABLED", "true")
    monkeypatch.setenv(name, "any-secret-of-the-namespace")
    assert RuntimeSettings().api_key is None


@attack("runtime: a lower-case twp_* name cannot override the operator's address")
@pytest.mark.parametrize("name", ["twp_temporal_address", "TWP_temporal_address"])
def test_a_setting_under_another_case_is_not_read(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWP_TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("TWP_TASK_QUEUE", "q")
    monkeypatch.setenv(name, "attacker.example:7233")
    assert RuntimeSettings().temporal_address == "temporal.example:7233"
    monkeypatch.delenv("TWP_TEMPORAL_ADDRESS")
    with pytest.raises(ValueError, match="temporal_address"):
        RuntimeSettings()
