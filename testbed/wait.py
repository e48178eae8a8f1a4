"""Waiting in async tests for something a blocking probe (kubectl, HTTP) can see.

One definition for every e2e module: the probe runs in a thread, so the event loop (an
operator's engine under test, a forwarder) keeps running meanwhile, and a timeout fails the
test with what was last seen, which is what makes a red CI run readable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

# Bounds a wait on a shared 2-core machine; never asserted on.
WAIT_S = 300.0


async def eventually(
    probe: Callable[[], Any],
    what: str,
    state: Callable[[], Any] | None = None,
    *,
    wait_s: float = WAIT_S,
    interval: float = 0.5,
) -> None:
    """Until `probe()` is truthy; on timeout fail showing `state()`, the thing waited on."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(probe):
            return
        await asyncio.sleep(interval)
    seen = await asyncio.to_thread(state) if state is not None else "-"
    pytest.fail(f"timed out after {wait_s:g}s waiting for {what}; last seen:\n{seen}")
