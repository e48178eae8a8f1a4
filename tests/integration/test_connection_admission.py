"""The connection CRDs on the real kube-apiserver: CEL rules, printer columns, explain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import wait_established
from testbed.pytest_cluster import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
CONNECTION_CRDS = (
    "temporalconnections.workerpools.io",
    "clustertemporalconnections.workerpools.io",
)


@pytest.fixture(scope="session")
def connection_crds(kube_cluster: KubeCluster) -> None:
    for name in ("workerpools.io_temporalconnections.yaml",
                 "workerpools.io_clustertemporalconnections.yaml"):  # fmt: skip
        kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                             str(ROOT / "crds" / name))  # fmt: skip
    for crd in CONNECTION_CRDS:
        wait_established(kube_cluster.kubeconfig, crd)


def conn(kind: str = "TemporalConnection", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"address": "temporal.example:7233", **spec}
    if kind == "ClusterTemporalConnection":
        body.setdefault("allowedNamespaces", {})
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "c-admission"},
        "spec": body,
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (conn(address="http://t:7233"), "host:port"),
        (conn(apiKeySecretRef={"name": "k"}), "requires spec.tls"),
        (conn(tls={"secretName": "Not_A_Name"}), "tls.secretName must be a Kubernetes object"),
        (conn("ClusterTemporalConnection", apiKeySecretRef={"name": "k"}), "requires spec.tls"),
        (
            {**conn("ClusterTemporalConnection"), "spec": {"address": "t:7233"}},
            "allowedNamespaces: Required value",
        ),
        (
            conn(
                "ClusterTemporalConnection",
                allowedNamespaces={"matchExpressions": [{"key": "t", "operator": "In"}]},
            ),
            "In and NotIn need values",
        ),
        (
            conn(allowedPools={"matchExpressions": [{"key": "t", "operator": "NotIn"}]}),
            "In and NotIn need values",
        ),
        (
            conn(
                "ClusterTemporalConnection",
                allowedPools={
                    "matchExpressions": [{"key": "t", "operator": "Exists", "values": ["a"]}]
                },
            ),
            "Exists and DoesNotExist take none",
        ),
    ],
)
def test_connection_admission_rejects(
    kube_cluster: KubeCluster, connection_crds: None, namespace: str, doc: dict[str, Any],
    message: str,
) -> None:  # fmt: skip
    result = kube_cluster.apply(doc, namespace=namespace, check=False)
    assert result.returncode != 0, f"accepted: {doc}"
    assert message in result.stderr


def test_connections_accepted_and_listed(
    kube_cluster: KubeCluster, connection_crds: None, namespace: str
) -> None:
    ok = conn(tls={"secretName": "temporal-mtls"}, apiKeySecretRef={"name": "key"})
    kube_cluster.apply(ok, namespace=namespace)
    got = kube_cluster.get("temporalconnection", "c-admission", namespace=namespace)
    assert got["spec"]["namespace"] == "default"  # defaulted at admission
    assert got["spec"]["apiKeySecretRef"]["key"] == "api-key"
    table = kube_cluster.kubectl("get", "tconn", "-n", namespace)
    assert table.split()[:6] == ["NAME", "ADDRESS", "NAMESPACE", "READY", "VERSION", "AGE"]
    admits = conn(allowedPools={"matchLabels": {"access.workerpools.io/payments": "true"}})
    admits["metadata"]["name"] = "c-admits"
    kube_cluster.apply(admits, namespace=namespace)
    wide = kube_cluster.kubectl("get", "tconn", "c-admits", "-n", namespace, "-o", "wide")
    assert "POOLS" in wide.split("\n")[0]
    assert "access.workerpools.io/payments" in wide
    cluster = conn("ClusterTemporalConnection", allowedNamespaces={"matchLabels": {"t": "a"}})
    cluster["metadata"]["name"] = f"c-{namespace}"
    kube_cluster.apply(cluster)
    try:
        assert kube_cluster.exists("ctconn", f"c-{namespace}")
        explain = kube_cluster.kubectl(
            "explain", "clustertemporalconnection.spec.allowedNamespaces"
        )
        assert "Label selector on Namespaces" in explain
    finally:
        kube_cluster.delete("clustertemporalconnection", f"c-{namespace}")
