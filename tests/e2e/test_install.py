"""`kubectl apply -k manifests` installs a working operator, and its RBAC is enough.

The operator Deployment is admitted under the restricted Pod Security profile of its namespace
(kwok then runs its pod as a simulated container). To prove the ClusterRole is sufficient, the
real operator process is started with the ServiceAccount's own token (not the admin
kubeconfig) and must reconcile a pool to Ready without a single 403.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.temporal import free_port

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_NS = "workerpools-system"
SA = "workerpool-operator"


def sa_kubeconfig(kube: Any, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (bound token)."""
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    token = kube.kubectl("create", "token", SA, "-n", SYSTEM_NS, "--duration=1h").strip()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    }
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str(Path(kube.kubeconfig).parent / ca)
    path.write_text(yaml.safe_dump(doc))
    return path


def writes(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    pattern = r"^workerpool_operator_writes_total\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


@pytest.fixture
def installed(kube_cluster: Any) -> Iterator[None]:
    """The operator installed from manifests/; removed afterwards except the shared CRD."""
    kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "manifests")
    )
    yield
    kube_cluster.kubectl("delete", "namespace", SYSTEM_NS, "--ignore-not-found", "--timeout=120s")
    kube_cluster.kubectl("delete", "clusterrolebinding,clusterrole", SA, "--ignore-not-found")


@pytest.mark.usefixtures("installed")
def test_manifests_install_and_rbac_suffices(
    kube_cluster: Any, namespace: str, tmp_path: Path
) -> None:
    ns = kube_cluster.get("namespace", SYSTEM_NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    kube_cluster.wait_for(
        lambda: (
            (kube_cluster.get("deployment", SA, namespace=SYSTEM_NS).get("status") or {}).get(
                "readyReplicas"
            )
            == 2
        ),
        what="operator Deployment (2 replicas) admitted under the restricted profile, Ready (kwok)",
        timeout=120,
    )
    # The SA can do what the operator needs and nothing broader, e.g. no Secret writes.
    can = kube_cluster.run(
        "auth", "can-i", "create", "secrets", f"--as=system:serviceaccount:{SYSTEM_NS}:{SA}"
    )
    assert can.stdout.strip() == "no"

    kubeconfig = sa_kubeconfig(kube_cluster, tmp_path / "sa.kubeconfig")
    metrics_port, liveness_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "WORKERPOOL_RESYNC_SECONDS": "5"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator", "-n", namespace, "--verbose",
             "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        pool = {
            "apiVersion": "workerpools.io/v1alpha1",
            "kind": "TemporalWorkerPool",
            "metadata": {"name": "rbac"},
            "spec": {
                "connection": {"address": "temporal:7233"},
                "taskQueue": "rbac",
                "workflows": ["app.workflows:Flow"],
                "replicas": 2,
            },
        }
        kube_cluster.apply(pool, namespace=namespace)

        def ready() -> bool:
            status = kube_cluster.get("twp", "rbac", namespace=namespace).get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            return conds.get("Ready", {}).get("status") == "True"

        kube_cluster.wait_for(ready, what="pool Ready, reconciled by the SA-token operator")
        for kind in ("service", "pdb", "servicemonitor"):
            assert kube_cluster.exists(kind, "rbac", namespace=namespace), kind
        assert writes(metrics_port) > 0
        time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    assert "Forbidden" not in log_text, log_text[-3000:]
    assert " 403" not in log_text, log_text[-3000:]
    assert proc.returncode in (0, -15), log_text[-3000:]
