"""Namespaced install: a Role per watched namespace, no cluster-wide rule for namespaced kinds.

The RBAC the chart renders for `watchNamespaces` (from `workerpool_operator.rbac`), bound to a
ServiceAccount whose token the operator process uses, with `-n <watched>`: pools reconcile,
the scaler reads a ClusterTemporalConnection's Secret from the operator's own namespace, and
the ServiceAccount can do nothing in a namespace it does not watch.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed.operator import OperatorProcess, sa_kubeconfig
from testbed.pytest_cluster import KubeCluster
from tests import builders
from workerpool_operator import rbac

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Pools and connections."""


def role(kind: str, name: str, rules: list[dict[str, Any]], ns: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "rules": rules,
    }


def binding(kind: str, role_kind: str, name: str, sa_ns: str, ns: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": sa_ns}],
    }


def test_namespaced_install_reconciles_with_roles_only(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    k, watched = kube_cluster, namespace
    own = f"own-{uuid.uuid4().hex[:10]}"  # the operator's namespace (credentials live here)
    other = f"other-{uuid.uuid4().hex[:10]}"  # not watched
    cluster_name = f"twp-ns-{uuid.uuid4().hex[:10]}"
    k.kubectl("create", "namespace", own)
    k.kubectl("create", "namespace", other)
    try:
        k.kubectl("create", "serviceaccount", "op", "-n", own)
        k.apply(
            [
                role("ClusterRole", cluster_name, rbac.cluster_only_rules(), None),
                binding("ClusterRoleBinding", "ClusterRole", cluster_name, own, None),
                role("Role", "op", rbac.namespaced_rules(), watched),
                binding("RoleBinding", "Role", "op", own, watched),
                role("Role", "op", rbac.own_namespace_rules(), own),
                binding("RoleBinding", "Role", "op", own, own),
            ]
        )
        who = f"--as=system:serviceaccount:{own}:op"
        for ns, want in ((watched, "yes"), (other, "no")):
            can = k.run(
                "auth", "can-i", "list", "temporalworkerpools.workerpools.io", "-n", ns, who
            )
            assert can.stdout.strip() == want, (ns, can.stdout, can.stderr)
        assert k.run("auth", "can-i", "list", "secrets", "-A", who).stdout.strip() == "no"

        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "shared-key",
                "labels": {"workerpools.io/temporal-credentials": "true"},
            },
            "stringData": {"api-key": "k"},
        }
        k.apply(secret, namespace=own)
        k.apply(
            {
                "apiVersion": "workerpools.io/v1alpha1",
                "kind": "ClusterTemporalConnection",
                "metadata": {"name": cluster_name},
                "spec": {
                    "address": "127.0.0.1:1",
                    "tls": {},
                    "apiKeySecretRef": {"name": "shared-key"},
                    "allowedNamespaces": {},
                },
            }
        )
        kubeconfig = sa_kubeconfig(k, "op", own, tmp_path / "sa.kubeconfig")
        op = OperatorProcess(
            str(kubeconfig),
            "namespaced",
            "-n",
            watched,
            "--leader-elect",
            log_dir=tmp_path,
            env={"POD_NAMESPACE": own},
        )
        try:
            k.wait_for(op.leads, what="the namespaced operator to take its Lease")
            ref = {"kind": "ClusterTemporalConnection", "name": cluster_name}
            autoscaling = {"minReplicas": 1, "maxReplicas": 2}
            pool = builders.pool(
                "p", connection_ref=ref, queue="q", workflows=("a:W",), autoscaling=autoscaling
            )
            k.apply(pool, namespace=watched)

            def backlog() -> dict[str, Any]:
                status = k.get("twp", "p", namespace=watched).get("status") or {}
                conds = status.get("conditions") or []
                return next((c for c in conds if c["type"] == "BacklogAvailable"), {})

            # The scaler got past the Secret (read from the operator's namespace under its
            # Role) to Temporal, where nothing listens: TemporalUnavailable, not Credentials.
            k.wait_for(
                lambda: backlog().get("reason") == "TemporalUnavailable",
                what="the scaler to reach for Temporal with the shared key",
                timeout=90,
            )
            assert k.exists("deployment", "p", namespace=watched)
            time.sleep(1)
            log = op.log_path.read_text()
            assert "forbidden" not in log.lower(), log[-3000:]
            assert op.tracebacks() == 0
        finally:
            op.stop()
    finally:
        k.kubectl("delete", "clustertemporalconnection", cluster_name, "--ignore-not-found")
        k.kubectl("delete", "clusterrolebinding,clusterrole", cluster_name, "--ignore-not-found")
        k.kubectl("delete", "namespace", own, other, "--wait=false")
