"""testbed.proc.stop: a child that ignores SIGTERM is killed after its grace period."""

from __future__ import annotations

import signal
import subprocess
import sys

from testbed.proc import stop

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"  # noqa: E501


def test_a_child_that_exits_on_sigterm_reports_its_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop(proc) == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    proc = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # its handler is installed
    assert stop(proc, grace_s=0.5) == -signal.SIGKILL
    assert stop(proc) == -signal.SIGKILL  # stopping a stopped process is a no-op
