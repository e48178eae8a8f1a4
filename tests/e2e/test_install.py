"""`kubectl apply -k manifests` installs a working operator, and its RBAC is enough.

The operator Deployment is admitted under the restricted Pod Security profile of its namespace
(kwok then runs its pod as a simulated container). To prove the RBAC is sufficient for the
operator as deployed, the real operator process runs as the manifests run it (cluster-wide,
with leader election in workerpools-system) but with the ServiceAccount's own token instead of
the admin kubeconfig, and must use every permission it has: watch every kind, read an opted-in
Secret, list GPU pods, post Events, hold the Lease, without a single 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.operator import OperatorProcess, sa_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_NS = "workerpools-system"
SA = "workerpool-operator"


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

    kubeconfig = sa_kubeconfig(kube_cluster, SA, SYSTEM_NS, tmp_path / "sa.kubeconfig")
    op = OperatorProcess(
        str(kubeconfig),
        "rbac",
        "--all-namespaces",
        "--leader-elect",
        log_dir=tmp_path,
        env={"POD_NAMESPACE": SYSTEM_NS, "WORKERPOOL_RESYNC_SECONDS": "5"},
    )
    base = {"connection": {"address": "temporal:7233"}, "workflows": ["app.workflows:Flow"]}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mtls", "labels": {"workerpools.io/temporal-credentials": "true"}},
        "stringData": {"ca.crt": "x", "tls.crt": "x", "tls.key": "x"},
    }
    connection = {  # the credentials live in a TemporalConnection, not in the pool
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalConnection",
        "metadata": {"name": "temporal"},
        "spec": {"address": "temporal:7233", "tls": {"secretName": "mtls"}},
    }
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "clash"},
        "spec": {"ports": [{"port": 80}]},
    }

    def pool(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "workerpools.io/v1alpha1",
            "kind": "TemporalWorkerPool",
            "metadata": {"name": name},
            "spec": {k: v for k, v in {**base, "taskQueue": name, **spec}.items() if v is not None},
        }

    try:
        kube_cluster.wait_for(op.leads, what="the SA-token operator to take the Lease")
        kube_cluster.apply([secret, connection, foreign], namespace=namespace)
        kube_cluster.apply(
            [
                pool("rbac", replicas=2),
                pool("clash", replicas=1),
                pool(
                    "gpu",
                    connection=None,
                    connectionRef={"kind": "TemporalConnection", "name": "temporal"},
                    gpu={"count": 9},  # more than any bed node has: its pods stay Pending
                    autoscaling={"minReplicas": 1, "maxReplicas": 2},
                ),
            ],
            namespace=namespace,
        )

        def condition(name: str, ctype: str) -> dict[str, Any]:
            status = kube_cluster.get("twp", name, namespace=namespace).get("status") or {}
            return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})

        kube_cluster.wait_for(
            lambda: condition("rbac", "Ready").get("status") == "True",
            what="pool Ready, reconciled by the SA-token operator",
        )
        for kind in ("service", "pdb", "servicemonitor"):
            assert kube_cluster.exists(kind, "rbac", namespace=namespace), kind
        # Events: the foreign Service is reported, not taken over.
        kube_cluster.wait_for(
            lambda: condition("clash", "Ready").get("reason") == "NameConflict",
            what="NameConflict on the pool whose name a foreign Service holds",
        )
        reasons = {e["reason"] for e in kube_cluster.get("events", namespace=namespace)["items"]}
        assert "NameConflict" in reasons
        svc = kube_cluster.get("service", "clash", namespace=namespace)
        assert not svc["metadata"].get("ownerReferences")
        # Secrets (watched, opted in) and Pods (watched, GPU): the scaler got past the
        # credentials to Temporal, and saw the Pending GPU pods.
        kube_cluster.wait_for(
            lambda: condition("gpu", "GPUCapacityAvailable").get("reason") == "InsufficientGPU",
            what="the scaler to see the GPU pool's Pending pods",
        )
        assert condition("gpu", "BacklogAvailable").get("reason") == "TemporalUnavailable"
        assert op.writes() > 0
    finally:
        op.stop()
    log_text = op.log_path.read_text(errors="replace")
    assert "Forbidden" not in log_text, log_text[-3000:]
    assert " 403" not in log_text, log_text[-3000:]
    assert op.tracebacks() == 0, log_text[-3000:]
