"""The API server's refusals as types, one per status that callers treat differently (as
kopf's `_cogs/clients/errors.py`), so no caller compares status numbers."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """A non-2xx answer; `message` is the API server's own sentence, `causes` its field list."""

    def __init__(self, status: int, reason: str, message: str, causes: list[dict[str, Any]]):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes

    def sentence(self) -> str:
        """A readable line naming the fields the API server complained about (no raw JSON)."""
        if self.causes:
            parts = []
            for c in self.causes:
                where = c.get("field") or ""
                parts.append(f"{where}: {c.get('message', '')}".strip(": "))
            return f"{self.reason}: " + "; ".join(parts)
        return f"{self.reason}: {self.message}"


class Unauthorized(ApiError):
    """401: credentials rejected (after one fresh login)."""


class Conflict(ApiError):
    """409: a precondition failed or another writer won (Lease, uid preconditions)."""


class TooManyRequests(ApiError):
    """429: API priority and fairness throttled us; retry the whole pool later."""


class ServerError(ApiError):
    """5xx: the API server (or a webhook it calls) failed; usually transient."""


class NotLeader(Exception):
    """This replica may not write right now (it lost, or never held, the leader lease)."""


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 409: Conflict, 429: TooManyRequests}


def api_error(status: int, text: str) -> ApiError:
    """The typed error for an answer's status and body (a Status object, or any text)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    try:
        doc = json.loads(text)
    except ValueError:
        return cls(status, "Error", text[:500], [])
    if not isinstance(doc, dict):
        return cls(status, "Error", text[:500], [])
    details = doc.get("details") or {}
    return cls(
        status,
        str(doc.get("reason") or "Error"),
        str(doc.get("message") or text[:500]),
        list(details.get("causes") or []),
    )
