"""Real workers for a versioned pool's build Deployments on kwok nodes, whose pods run no code.

`BuildWorkers` watches one pool's build Deployments (labels `workerpools.io/pool` and
`workerpools.io/build-id`) and keeps one real `python -m worker_runtime` process per build the
operator keeps above 0 replicas, started with that Deployment's own worker settings (workflows,
activities, Worker Deployment name, build ID, default behavior) against the given dev server. A
build scaled to 0 or deleted gets SIGTERM, as the kubelet would send its pods (the runtime
drains), then SIGKILL after a grace period. Shared by tests/e2e/test_versioning.py and
bench/bench_rollout.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from testbed.cluster import TestbedError, kubectl
from testbed.runtime import runtime_env
from testbed.temporal import TemporalDevServer
from workerpool_operator.names import POOL_LABEL
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

# Settings a build's Deployment hands its workers that the local processes take over as-is.
BUILD_SETTINGS = (
    "TWP_WORKFLOWS",
    "TWP_ACTIVITIES",
    "TWP_WORKER_DEPLOYMENT_NAME",
    "TWP_WORKER_BUILD_ID",
    "TWP_DEFAULT_VERSIONING_BEHAVIOR",
)
GRACE_SECONDS = 10.0


class BuildWorkers:
    """One runtime process per build Deployment of a pool that is above 0 replicas."""

    def __init__(
        self,
        kubeconfig: str | Path,
        namespace: str,
        pool: str,
        server: TemporalDevServer,
        logs: Path,
        *,
        interval: float = 0.3,
        versioned: bool = True,
    ) -> None:
        self.kubeconfig, self.namespace, self.pool = str(kubeconfig), namespace, pool
        self.server, self.logs, self.interval = server, logs, interval
        # Unversioned (a benchmark's floor): one worker per generation of the pool's own
        # Deployment, the new one started before the old one stops, as a rolling update does.
        self.versioned = versioned
        self.ready_at: dict[str, float] = {}  # build -> monotonic time /readyz first said 200
        self._ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}  # build -> monotonic time its worker started
        self.stopped: dict[str, float] = {}  # build -> monotonic time the operator took it down
        self._logs: list[IO[bytes]] = []
        # True: builds that are not running yet are not started (their pods stay Pending, as
        # on a node that has no room), while running ones keep running.
        self.hold_new = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"builds-{pool}")
        self._thread.start()

    def deployments(self) -> list[dict[str, Any]]:
        # Versioned: the build Deployments; unversioned: the pool's own Deployment only.
        build = BUILD_ID_LABEL if self.versioned else f"!{BUILD_ID_LABEL}"
        selector = f"{POOL_LABEL}={self.pool},{build}"
        out = kubectl(
            self.kubeconfig, "get", "deployments", "-n", self.namespace, "-o", "json",
            "-l", selector,
        )  # fmt: skip
        return list(json.loads(out.stdout)["items"])

    def _key(self, dep: dict[str, Any]) -> str:
        if self.versioned:
            return str(dep["metadata"]["labels"][BUILD_ID_LABEL])
        return f"g{dep['metadata']['generation']}"

    def builds(self) -> set[str]:
        """Builds that have a Deployment now."""
        return {self._key(d) for d in self.deployments()}

    def _wanted(self) -> dict[str, dict[str, str]]:
        wanted = {}
        for dep in self.deployments():
            if not dep["spec"].get("replicas") or dep["metadata"].get("deletionTimestamp"):
                continue
            containers = dep["spec"]["template"]["spec"]["containers"]
            container = next(c for c in containers if c["name"] == "worker")
            env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            wanted[self._key(dep)] = env
        return wanted

    def _start(self, build: str, env: dict[str, str]) -> None:
        settings = {k: env[k] for k in BUILD_SETTINGS if k in env}
        workflows = settings.pop("TWP_WORKFLOWS", "")
        activities = settings.pop("TWP_ACTIVITIES", "")
        full = runtime_env(self.server, env["TWP_TASK_QUEUE"], workflows, activities, **settings)
        self._ports[build] = int(full["TWP_METRICS_PORT"])
        log = (self.logs / f"worker-{self.pool}-{build}.log").open("ab")
        self._logs.append(log)
        self.procs[build] = subprocess.Popen(
            [sys.executable, "-m", "worker_runtime"],
            env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.started[build] = time.monotonic()
        self.stopped.pop(build, None)
        self.ready_at.pop(build, None)

    def _sync(self) -> None:
        wanted = self._wanted()
        with self._lock:
            for build, env in wanted.items():
                if build not in self.procs and not self.hold_new:
                    self._start(build, env)
            for build in [b for b in self.procs if b not in wanted]:
                if not self.versioned and wanted and not any(b in self.ready_at for b in wanted):
                    continue  # a rolling update: the old worker stays until a new one is ready
                self.stopped[build] = time.monotonic()
                _terminate(self.procs.pop(build))
            for build in [b for b in self.procs if b not in self.ready_at]:
                if _ready(self._ports[build]):
                    self.ready_at[build] = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sync()
            except (subprocess.SubprocessError, OSError, ValueError, KeyError, TestbedError):
                continue  # the API server is busy or an object is half-written: next round

    def running(self) -> set[str]:
        with self._lock:
            return {b for b, p in self.procs.items() if p.poll() is None}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for proc in self.procs.values():
                _kill(proc)
            self.procs.clear()
        for log in self._logs:
            log.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as r:
            return bool(r.status == 200)
    except (OSError, ValueError):
        return False


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the runtime drains), SIGKILL after the grace period, without blocking."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    threading.Timer(GRACE_SECONDS, _kill, args=(proc,)).start()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(30)
