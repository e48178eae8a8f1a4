"""The real operator as a subprocess (`python -m workerpool_operator`), with its own
kubeconfig and ports, for tests that must run it under a given identity (RBAC proofs) or scrape
its real /metrics. Output goes to a file so a full pipe never blocks it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testbed.temporal import free_port

ROOT = Path(__file__).resolve().parents[2]


def sa_kubeconfig(kube: Any, service_account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a bound token from
    `kubectl create token`), not as the admin of the test bed."""
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str(Path(kube.kubeconfig).parent / ca)
    token = kube.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).strip()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


class OperatorProcess:
    """`python -m workerpool_operator ARGS` with KUBECONFIG and POD_NAMESPACE set."""

    def __init__(
        self,
        kubeconfig: str | Path,
        args: list[str],
        log_path: Path,
        *,
        pod_namespace: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.log_path = log_path
        full_env = {**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})}
        if pod_namespace:
            full_env["POD_NAMESPACE"] = pod_namespace
        cmd = [sys.executable, "-m", "workerpool_operator", *args,
               "--metrics-port", str(self.metrics_port),
               "--liveness-port", str(self.liveness_port)]  # fmt: skip
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        """The operator's /metrics page ('' while it does not answer yet)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log[-4000:]}")
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return ""

    def sample(self, name: str) -> float | None:
        """Sum of a metric's samples (None while absent)."""
        total, seen = 0.0, False
        for line in self.metrics().splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
        return total if seen else None

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def assert_no_forbidden(self) -> None:
        text = self.log
        for needle in ("Forbidden", " 403", "forbidden"):
            assert needle not in text, f"{needle!r} in operator log:\n{text[-4000:]}"


def wait(probe: Any, what: str, timeout: float = 90, interval: float = 0.5) -> Any:
    """Poll probe() until it returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
