"""JSON-lines logging with the worker's namespace, task queue and identity on every record.

Log pipelines in a cluster parse JSON; the context fields let one query find every line of
one pool or one pod without regexes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class ContextFilter(logging.Filter):
    """Adds fixed fields (namespace, task_queue, identity, pool) to every record."""

    def __init__(self, fields: dict[str, str | None]) -> None:
        super().__init__()
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields and SDK context dicts are kept as fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # ensure_ascii=False: `kubectl logs` shows the messages' "—" as is, not as \u2014.
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str, fmt: str, context: dict[str, str | None]) -> None:
    """Route all Python logging (including the SDK's and forwarded Core logs) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(ContextFilter(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
