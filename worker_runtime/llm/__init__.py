"""Built-in LLM activity packs, opt-in by import path.

`worker_runtime.llm.gpu` needs the `llm` extra (torch, transformers) and is never imported
unless a pool lists it; `worker_runtime.llm.openai` needs only httpx.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from worker_runtime.contract import RuntimeSettings, env_var


def setting(field: str) -> Any:
    """One `RuntimeSettings` field from env (validated), without requiring the whole contract.

    Packs also run under test harnesses and notebooks where TWP_TASK_QUEUE etc. are unset.
    """
    info = RuntimeSettings.model_fields[field]
    raw = os.environ.get(env_var(field))
    if raw is None or raw == "":
        return info.get_default(call_default_factory=True)
    annotation: Any = info.annotation if info.annotation is not None else str
    return TypeAdapter(annotation).validate_python(raw)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
