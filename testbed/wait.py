"""Waiting for something a probe can see: the one polling helper of the tests and the bed.

A probe that races the operator (it reads an object the operator has not created yet) must
read "not there yet" as "not yet", never as the end of the test: by default a NotFound from
kubectl, the kubernetes client or the operator's own client is retried. `not_yet=api_error`
also retries any failed API call (an API server restarting); `not_yet=None` retries nothing.

Probes may be blocking (run in a thread, so an event loop under test keeps running) or async.
A timeout fails the test with what was last seen, which is what makes a red CI run readable;
the bound only bounds the wait, tests never assert on durations.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Bounds a wait on a shared 2-core machine; never asserted on.
WAIT_S = 300.0

NotYet = Callable[[BaseException], bool] | None


def not_found(exc: BaseException) -> bool:
    """The object is not there (yet): HTTP 404 from any client, or kubectl's NotFound."""
    if getattr(exc, "status", None) == 404:
        return True
    return "(NotFound)" in str(exc)


def api_error(exc: BaseException) -> bool:
    """Any failed API call: a 404, a 409/429/5xx, a refused connection, a kubectl that failed."""
    if getattr(exc, "status", None) is not None or not_found(exc):
        return True
    if isinstance(exc, OSError | TimeoutError | subprocess.SubprocessError):
        return True
    return type(exc).__name__ in ("TestbedError", "ClientError", "ApiException")


@dataclass
class Outcome:
    """What the last try of a wait saw: its value, or the error that meant "not yet"."""

    ok: bool
    value: Any = None
    error: BaseException | None = None


def _try(probe: Callable[[], Any], not_yet: NotYet) -> Outcome:
    try:
        value = probe()
    except Exception as exc:
        if not_yet is None or not not_yet(exc):
            raise
        return Outcome(False, error=exc)
    return Outcome(bool(value), value)


async def _try_async(probe: Callable[[], Any], not_yet: NotYet) -> Outcome:
    try:
        if inspect.iscoroutinefunction(probe):
            value = await probe()
        else:
            value = await asyncio.to_thread(probe)
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:
        if not_yet is None or not not_yet(exc):
            raise
        return Outcome(False, error=exc)
    return Outcome(bool(value), value)


def _message(what: str, wait_s: float, last: Outcome, seen: Any) -> str:
    error = f"\nlast error (read as not yet): {last.error}" if last.error is not None else ""
    return f"timed out after {wait_s:g}s waiting for {what}; last seen:\n{seen}{error}"


def poll(
    probe: Callable[[], Any],
    *,
    wait_s: float = WAIT_S,
    interval: float = 0.5,
    not_yet: NotYet = not_found,
) -> Outcome:
    """Blocking: call `probe` until it returns something truthy or `wait_s` passes."""
    deadline = time.monotonic() + wait_s
    while True:
        last = _try(probe, not_yet)
        if last.ok or time.monotonic() >= deadline:
            return last
        time.sleep(interval)


def until(
    probe: Callable[[], Any],
    what: str,
    state: Callable[[], Any] | None = None,
    *,
    wait_s: float = WAIT_S,
    interval: float = 0.5,
    not_yet: NotYet = not_found,
) -> Any:
    """Blocking `eventually`, for synchronous tests: returns the probe's truthy value."""
    import pytest

    last = poll(probe, wait_s=wait_s, interval=interval, not_yet=not_yet)
    if last.ok:
        return last.value
    seen = _try(state, not_yet).value if state is not None else last.value
    pytest.fail(_message(what, wait_s, last, seen))


async def eventually(
    probe: Callable[[], Any],
    what: str,
    state: Callable[[], Any] | None = None,
    *,
    wait_s: float = WAIT_S,
    interval: float = 0.5,
    not_yet: NotYet = not_found,
) -> Any:
    """Until `probe()` is truthy; on timeout fail showing `state()` (or the probe's last value).

    Returns the probe's truthy value. `probe` and `state` may be blocking or async.
    """
    import pytest

    deadline = time.monotonic() + wait_s
    while True:
        last = await _try_async(probe, not_yet)
        if last.ok:
            return last.value
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    seen = (await _try_async(state, not_yet)).value if state is not None else last.value
    pytest.fail(_message(what, wait_s, last, seen))
