"""Bad configuration and bad import paths fail fast with a message that names the fix.

These run the real entrypoint as a subprocess; no Temporal server is needed because the
runtime must fail (or, with --check, succeed) before it ever connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.helpers import APP, base_env, run_once


def test_missing_task_queue_names_variable_and_fix() -> None:
    env = base_env(None, "q")
    del env["TWP_TASK_QUEUE"]
    result = run_once(env)
    assert result.returncode == 2
    assert "TWP_TASK_QUEUE: field required — set it to the task queue name" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_address_names_variable() -> None:
    env = base_env(None, "q")
    del env["TWP_TEMPORAL_ADDRESS"]
    result = run_once(env)
    assert result.returncode == 2
    assert "TWP_TEMPORAL_ADDRESS: field required — set it to the Temporal frontend" in (
        result.stderr
    )


def test_invalid_number_names_variable_and_value() -> None:
    result = run_once(base_env(None, "q", TWP_MAX_CONCURRENT_ACTIVITIES="lots"))
    assert result.returncode == 2
    assert "TWP_MAX_CONCURRENT_ACTIVITIES:" in result.stderr
    assert "'lots'" in result.stderr


def test_tuner_and_fixed_slots_conflict_is_explained() -> None:
    result = run_once(
        base_env(
            None, "q",
            TWP_RESOURCE_TUNER_TARGET_MEMORY="0.8",
            TWP_RESOURCE_TUNER_TARGET_CPU="0.9",
            TWP_MAX_CONCURRENT_ACTIVITIES="10",
        )
    )  # fmt: skip
    assert result.returncode == 2
    assert "unset TWP_MAX_CONCURRENT_ACTIVITIES" in result.stderr


def test_nothing_to_host_is_an_error() -> None:
    result = run_once(base_env(None, "q", TWP_WORKFLOWS="", TWP_ACTIVITIES=""))
    assert result.returncode == 2
    assert "set at least one module:attribute import path" in result.stderr


def test_missing_module_names_path_and_cause() -> None:
    result = run_once(base_env(None, "q", TWP_ACTIVITIES="no_such_pkg.acts:run"))
    assert result.returncode == 2
    assert "TWP_ACTIVITIES: cannot import 'no_such_pkg.acts:run'" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


def test_missing_attribute_names_path() -> None:
    result = run_once(base_env(None, "q", TWP_WORKFLOWS=f"{APP}:NoSuchWorkflow"))
    assert result.returncode == 2
    assert f"cannot import '{APP}:NoSuchWorkflow'" in result.stderr
    assert "has no attribute 'NoSuchWorkflow'" in result.stderr


def test_path_without_colon_is_rejected() -> None:
    result = run_once(base_env(None, "q", TWP_WORKFLOWS="tests.runtime.app.GreetWorkflow"))
    assert result.returncode == 2
    assert "is not an import path — use module:attribute" in result.stderr


def test_undecorated_object_is_rejected() -> None:
    result = run_once(base_env(None, "q", TWP_ACTIVITIES=f"{APP}:NOT_AN_ACTIVITY"))
    assert result.returncode == 2
    assert "is not a activity" not in result.stderr
    assert "@activity.defn" in result.stderr


def test_check_validates_without_connecting() -> None:
    # 127.0.0.1:1 has no server: --check must not try to connect.
    result = run_once(base_env(None, "q"), "--check", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Configuration OK" in result.stderr


def test_check_still_reports_bad_import() -> None:
    result = run_once(base_env(None, "q", TWP_WORKFLOWS=f"{APP}:Nope"), "--check")
    assert result.returncode == 2
    assert f"'{APP}:Nope'" in result.stderr


def test_unreadable_tls_file_is_a_config_error_even_with_check() -> None:
    """A missing CA file is caught by --check and at start, with exit 2, not a traceback."""
    env = base_env(None, "q", TWP_TLS_ENABLED="true", TWP_TLS_CA_PATH="/nonexistent/ca.crt")
    for args in (("--check",), ()):
        result = run_once(env, *args)
        assert result.returncode == 2, result.stderr
        assert "TWP_TLS_CA_PATH: cannot read /nonexistent/ca.crt" in result.stderr
        assert "mount the file" in result.stderr
        assert "Traceback" not in result.stderr


def test_tls_secret_without_ca_uses_system_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator mounts the pool's Secret; a kubernetes.io/tls Secret has no ca.crt."""
    from worker_runtime import config
    from worker_runtime.contract import RuntimeSettings

    (tmp_path / "tls.crt").write_bytes(b"CERT")
    (tmp_path / "tls.key").write_bytes(b"KEY")
    monkeypatch.setattr(config, "TLS_MOUNT_PATH", str(tmp_path))
    settings = RuntimeSettings(temporal_address="t:7233", task_queue="q", tls_enabled=True)
    assert config.tls_material(settings) == (None, b"CERT", b"KEY")
    (tmp_path / "ca.crt").write_bytes(b"CA")
    assert config.tls_material(settings) == (b"CA", b"CERT", b"KEY")
