"""Load `RuntimeSettings` from the environment and turn failures into one-line fixes.

A pod that crash-loops on bad env should say which variable is wrong and what to do, not
print a pydantic traceback; the operator's users read these lines in `kubectl logs`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import ValidationError

from worker_runtime.contract import (
    ENV_PREFIX,
    TLS_CA_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_MOUNT_PATH,
    RuntimeSettings,
    TracingSettings,
    otel_env_var,
)

EXIT_CONFIG = 2

# What to do when a required variable is missing, per field.
_MISSING_HINTS = {
    "temporal_address": "set it to the Temporal frontend host:port, e.g. temporal-frontend:7233",
    "task_queue": "set it to the task queue name",
}


class ConfigError(Exception):
    """Bad configuration: the message is shown to the user as is and the process exits 2."""


def _env_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return f"{ENV_PREFIX}*"
    head = str(loc[0])
    if head.upper().startswith(ENV_PREFIX):
        return head.upper()
    return f"{ENV_PREFIX}{head.upper()}"


def describe_validation_error(err: ValidationError) -> str:
    """One line per problem: `TWP_X: what is wrong — how to fix it`."""
    lines = []
    for e in err.errors():
        loc = tuple(e.get("loc", ()))
        field = str(loc[0]) if loc else ""
        msg = str(e.get("msg", "invalid value"))
        if not loc:
            # Cross-field checks (model validators) already name the variables.
            lines.append(f"configuration: {msg.removeprefix('Value error, ')}")
            continue
        if e.get("type") == "missing":
            hint = _MISSING_HINTS.get(field)
            if hint is None:
                info = RuntimeSettings.model_fields.get(field)
                desc = info.description if info and info.description else "a value"
                hint = f"set it ({desc.rstrip('.')})"
            lines.append(f"{_env_name(loc)}: field required — {hint}")
        else:
            bad = e.get("input")
            lines.append(f"{_env_name(loc)}: {msg} (got {bad!r}) — fix the value")
    return "\n".join(lines)


def load_settings() -> RuntimeSettings:
    """Read the env contract; raise `ConfigError` with an actionable message on any problem."""
    try:
        settings = RuntimeSettings()
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None
    if not settings.workflows and not settings.activities:
        raise ConfigError(
            f"{ENV_PREFIX}WORKFLOWS / {ENV_PREFIX}ACTIVITIES: both empty — set at least one "
            "module:attribute import path, or the worker would poll for nothing"
        )
    return settings


def load_tracing() -> TracingSettings:
    """Read the OTEL_* tracing settings; raise `ConfigError` naming the variable on a bad one."""
    try:
        return TracingSettings()
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(e.get("loc", ()))
            name = otel_env_var(str(loc[0])) if loc else "OTEL_*"
            msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
            lines.append(f"{name}: {msg} (got {e.get('input')!r}) — fix the value")
        raise ConfigError("\n".join(lines)) from None


def _read(path: str, env: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{env}: cannot read {path} ({err.strerror}) — mount the file") from None


def tls_material(settings: RuntimeSettings) -> tuple[bytes | None, bytes | None, bytes | None]:
    """CA, client cert and key bytes; paths default to the operator's TLS mount when present."""
    mount = Path(TLS_MOUNT_PATH)

    def pick(explicit: str | None, name: str) -> str | None:
        if explicit:
            return explicit
        default = mount / name
        return str(default) if default.exists() else None

    ca = pick(settings.tls_ca_path, TLS_CA_FILE)
    cert = pick(settings.tls_cert_path, TLS_CERT_FILE)
    key = pick(settings.tls_key_path, TLS_KEY_FILE)
    if (cert is None) != (key is None):
        raise ConfigError(
            f"{ENV_PREFIX}TLS_CERT_PATH / {ENV_PREFIX}TLS_KEY_PATH: mTLS needs both the client "
            "certificate and its key — set both or neither"
        )
    return (
        _read(ca, f"{ENV_PREFIX}TLS_CA_PATH") if ca else None,
        _read(cert, f"{ENV_PREFIX}TLS_CERT_PATH") if cert else None,
        _read(key, f"{ENV_PREFIX}TLS_KEY_PATH") if key else None,
    )


def default_identity(settings: RuntimeSettings) -> str:
    """Explicit identity, else the pod name, else pid@host (the SDK's own default shape)."""
    return settings.identity or settings.pod_name or f"{os.getpid()}@{socket.gethostname()}"
