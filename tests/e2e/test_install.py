"""`kubectl apply -k manifests` installs a working operator, and its RBAC is enough.

The operator Deployment is admitted under the restricted Pod Security profile of its namespace
(kwok then runs its pod as a simulated container). To prove the RBAC is sufficient for the
operator as deployed, the real operator process runs as the manifests run it (cluster-wide,
with leader election in workerpools-system) but with the ServiceAccount's own token instead of
the admin kubeconfig, and must use every permission it has: watch every kind, read an opted-in
Secret, list GPU pods, post Events, hold the Lease, without a single 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.operator import OperatorProcess, sa_kubeconfig
from tests import builders

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
    temporal = {"address": "temporal:7233"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mtls", "labels": {"workerpools.io/temporal-credentials": "true"}},
        "stringData": {"ca.crt": "x", "tls.crt": "x", "tls.key": "x"},
    }
    # the credentials live in a TemporalConnection, not in the pool
    connection = builders.connection(
        "temporal", address=temporal["address"], tls={"secretName": "mtls"}
    )
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "clash"},
        "spec": {"ports": [{"port": 80}]},
    }

    try:
        kube_cluster.wait_for(op.leads, what="the SA-token operator to take the Lease")
        kube_cluster.apply([secret, connection, foreign], namespace=namespace)
        kube_cluster.apply(
            [
                builders.pool("rbac", connection=temporal, replicas=2),
                builders.pool("clash", connection=temporal, replicas=1),
                builders.pool(
                    "gpu",
                    connection_ref={"kind": "TemporalConnection", "name": "temporal"},
                    gpu={"count": 9},  # more than any bed node has: its pods stay Pending
                    autoscaling={"minReplicas": 1, "maxReplicas": 2},
                ),
            ],
            namespace=namespace,
        )

        def condition(name: str, ctype: str) -> dict[str, Any]:
            return builders.condition(kube_cluster, namespace, name, ctype)

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


# Granted to every authenticated user by the API server's default roles, not by our RBAC.
_DEFAULT_GRANTS = {
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
    "selfsubjectreviews.authentication.k8s.io",
}


def can_i_list(kube_cluster: Any, namespace: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list` for the operator's ServiceAccount: resource -> verbs."""
    out = kube_cluster.kubectl(
        "auth", "can-i", "--list", "-n", namespace, f"--as=system:serviceaccount:{SYSTEM_NS}:{SA}"
    )
    print(f"\n$ kubectl auth can-i --list -n {namespace} --as=...:{SYSTEM_NS}:{SA}\n{out}")
    granted: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
        if not match or match.group(1) in _DEFAULT_GRANTS:
            continue  # non-resource URLs (discovery), default self-reviews
        granted.setdefault(match.group(1), set()).update(match.group(4).split())
    return granted


def expected_grants(kind_list: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for k in kind_list:
        resource = k.plural if not k.group else f"{k.plural.split('/')[0]}.{k.group}"
        resource += "/status" if k.plural.endswith("/status") else ""
        out.setdefault(resource, set()).update(k.verbs)
    return out


@pytest.mark.usefixtures("installed")
def test_the_service_accounts_permissions_are_exactly_the_kind_registry(
    kube_cluster: Any, namespace: str
) -> None:
    """What the API server grants the ServiceAccount (auth can-i --list), printed, equals
    kinds.py: no verb the code does not use (e.g. no delete on Services, PDBs or
    ServiceAccounts, which go with their pool; delete on Deployments only because a versioned
    pool's retired builds are deleted; no Secret writes, no reads of Secrets beyond list/watch,
    which the label selector limits)."""
    from workerpool_operator import kinds

    cluster = expected_grants((*kinds.CLUSTER_RULE_KINDS, *kinds.CLUSTER_ONLY_KINDS))
    assert can_i_list(kube_cluster, namespace) == cluster
    own = can_i_list(kube_cluster, SYSTEM_NS)
    assert own == {**cluster, **expected_grants(kinds.OWN_NAMESPACE_KINDS)}
    assert "delete" in own["deployments.apps"]  # a versioned pool's retired builds
    assert "delete" not in own["services"]
    assert "delete" not in own["poddisruptionbudgets.policy"]
    assert own["secrets"] == {"list", "watch"}
