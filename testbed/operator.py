"""The operator as a real process (`python -m workerpool_operator`), for tests and benchmarks.

Each process gets its own metrics and liveness ports; its counters are read from /metrics the
way Prometheus would, so a test sees what an operator of the cluster sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from testbed.proc import stop as stop_process
from testbed.temporal import free_port

if TYPE_CHECKING:
    from workerpool_operator.app import Operator

REPO_ROOT = Path(__file__).resolve().parents[1]
# Settings the operator reads from its environment: an operator under test gets only the ones
# its test passes, never whatever the pytest process (or an earlier test) had set.
SETTINGS_ENV = ("WATCH_NAMESPACES", "POD_NAMESPACE", "POD_NAME", "METRICS_PORT", "LIVENESS_PORT")
SETTINGS_PREFIX = "WORKERPOOL_"


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.MULTILINE):
        if all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def sa_kubeconfig(kube: Any, service_account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a bound token from
    `kubectl create token`), not as the admin of the test bed: for RBAC proofs."""
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
    """One operator process; `args` are added to `--metrics-port/--liveness-port`.

    Each process writes with field managers of its own (`--field-manager-suffix`, e.g.
    workerpool-operator-<name>-1a2b3c), so `foreign_writers` tells which operator wrote what.
    """

    def __init__(
        self,
        kubeconfig: str,
        name: str,
        *args: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.field_manager_suffix = f"{name[:40]}-{uuid.uuid4().hex[:6]}"
        self.metrics_port, self.liveness_port = free_port(), free_port()
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in SETTINGS_ENV and not k.startswith(SETTINGS_PREFIX)
        }
        self.env = {
            **inherited,
            "KUBECONFIG": kubeconfig,
            "POD_NAME": name,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT / "operator"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
            **(env or {}),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"operator-{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.args = args
        self.started = time.monotonic()
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        return subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator",
             "--metrics-port", str(self.metrics_port),
             "--liveness-port", str(self.liveness_port),
             "--field-manager-suffix", self.field_manager_suffix, *self.args],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return str(r.read().decode())

    def value(self, name: str, **labels: str) -> float:
        """A metric's value now; 0 while the process is not serving metrics."""
        try:
            return metric(self.metrics(), name, **labels)
        except OSError:
            return 0.0

    def writes(self) -> float:
        return self.value("workerpool_operator_writes_total")

    def requests(self) -> float:
        return self.value("workerpool_operator_api_requests_total")

    def leads(self) -> bool:
        return self.value("workerpool_operator_leader") == 1

    def live(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2)
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: no clean-up, no lease release, as a crash or an OOM kill would do."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.proc = self._spawn()

    def stop(self) -> int | None:
        stop_process(self.proc)
        self._log.close()
        return self.proc.returncode

    def manager(self, name: str) -> str:
        """The field manager this process writes with for `name` (names.MANAGERS.operator...)."""
        return f"{name}-{self.field_manager_suffix}"

    def tracebacks(self) -> int:
        return self.log_path.read_text(errors="replace").count("Traceback (most recent call last)")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pool_manifest(name: str, namespace: str, replicas: int = 1) -> dict[str, Any]:
    """A minimal fixed-size pool, as benchmarks and crash tests create them by the hundred."""
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "connection": {"address": "temporal.temporal.svc:7233"},
            "taskQueue": name,
            "workflows": ["app.workflows:Flow"],
            "replicas": replicas,
        },
    }


@contextlib.asynccontextmanager
async def deployed_operator(
    kube: Any, namespace: str, log_dir: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[OperatorProcess]:
    """The operator as it is deployed (`python -m workerpool_operator`, its engine, scaler and
    Temporal clients in their own process), scoped to `namespace`: for tests that must prove
    what the shipped process does. On a clean exit the namespace must hold no write of another
    operator (`foreign_writers`), so the proof cannot come from someone else's operator."""
    from testbed.wait import eventually

    op = OperatorProcess(
        kube.kubeconfig, f"deployed-{namespace}"[:40], "-n", namespace, *args,
        log_dir=log_dir, env={"POD_NAMESPACE": namespace, **(env or {})},
    )  # fmt: skip

    def live() -> bool:
        if not op.alive():
            log = op.log_path.read_text(errors="replace")[-4000:]
            raise AssertionError(f"operator exited {op.proc.returncode}:\n{log}")
        return op.live()

    try:
        await eventually(live, "the operator process answers /healthz")
        yield op
        assert op.alive(), op.log_path.read_text(errors="replace")[-4000:]
        foreign = foreign_writers(kube, namespace, op.field_manager_suffix)
        assert not foreign, f"another operator wrote in {namespace}: {foreign}"
    finally:
        op.stop()


@contextlib.asynccontextmanager
async def running_operator(
    kubeconfig: str, namespace: str, **settings: Any
) -> AsyncIterator[Operator]:
    """The operator's whole engine (caches, reconciler, Builtin scaler) in this event loop,
    scoped to one namespace: for tests that drive it step by step."""
    from workerpool_operator.app import Operator as _Operator
    from workerpool_operator.settings import Settings

    os.environ["KUBECONFIG"] = kubeconfig
    op = _Operator(Settings(**{"namespaces": (namespace,), "workers": 4, **settings}))
    task = asyncio.create_task(op.run())
    try:
        await asyncio.wait_for(op.ready.wait(), timeout=60)
        yield op
    finally:
        op.stop.set()
        await asyncio.wait_for(task, timeout=60)


def writers(kube: Any, namespace: str) -> dict[str, set[str]]:
    """Field managers of every pool and child in `namespace`, by "Kind/name": who wrote what."""
    from workerpool_operator.kinds import CHILDREN, POOL

    out: dict[str, set[str]] = {}
    for kind in (POOL, *CHILDREN):
        resource = (
            f"{kind.plural}.{kind.api_version.split('/')[0]}"
            if "/" in kind.api_version
            else kind.plural
        )
        got = kube.run("get", resource, "-n", namespace, "-o", "json", "--show-managed-fields")
        if got.returncode != 0:  # a CRD the bed does not serve: nothing of that kind exists
            continue
        for obj in json.loads(got.stdout)["items"]:
            managers = {m["manager"] for m in obj["metadata"].get("managedFields") or []}
            out[f"{kind.kind}/{obj['metadata']['name']}"] = managers
    return out


def foreign_writers(kube: Any, namespace: str, suffix: str) -> list[str]:
    """Every "Kind/name: manager" in `namespace` written by an operator other than the one
    started with `--field-manager-suffix suffix` (any workerpool field manager, suffixed or not,
    that is not one of its own): must be empty."""
    from dataclasses import astuple

    from workerpool_operator.names import MANAGERS

    ours = set(astuple(MANAGERS.suffixed(suffix)))
    any_operator = astuple(MANAGERS)
    return sorted(
        f"{obj}: {manager}"
        for obj, managers in writers(kube, namespace).items()
        for manager in managers
        if manager not in ours
        and any(manager == m or manager.startswith(f"{m}-") for m in any_operator)
    )
