"""Stopping a child process: ask (SIGTERM), give it a grace period, then SIGKILL.

One definition for the bed, the tests and hack/: the operator, the forwarders, KEDA and the
Temporal dev server all stop this way, so a hung child never outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop(
    proc: subprocess.Popen[Any],
    *,
    grace_s: float = 30.0,
    sig: int = signal.SIGTERM,
    group: bool = False,
) -> int | None:
    """Stop `proc` (with `group`, its whole process group) and reap it; its exit code."""

    def send(s: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, s)
            else:
                proc.send_signal(s)

    if proc.poll() is None:
        send(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait(timeout=30)
    if group:  # whatever the group started goes too, so nothing is left behind
        send(signal.SIGKILL)
    return proc.returncode
