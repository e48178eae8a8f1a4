"""Pools follow their TemporalConnection / ClusterTemporalConnection (engine in this loop).

Re-queues on connection and namespace events, the conditions when a reference cannot be used,
and children left alone meanwhile. Nothing listens at the connections' address: the workers
never run (kwok nodes), the Deployment's env is what is checked.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from testbed.operator import running_operator
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests import builders

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Pools and connections (pool_crd installs all three CRDs)."""


def pool(name: str, ref: dict[str, str]) -> dict[str, Any]:
    return builders.pool(name, connection_ref=ref, workflows=("a:W",), replicas=1)


def connection(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"address": "127.0.0.1:1", **spec},
    }


def ready(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    status = cluster.get("twp", name, namespace=ns).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


def env(cluster: KubeCluster, ns: str, name: str) -> dict[str, str]:
    if not cluster.exists("deployment", name, namespace=ns):
        return {}
    dep = cluster.get("deployment", name, namespace=ns)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


async def test_a_pool_follows_its_temporal_connection(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    ns, k = namespace, kube_cluster
    async with running_operator(k.kubeconfig, ns):
        k.apply(pool("p", {"name": "prod"}), namespace=ns)
        await eventually(
            lambda: ready(k, ns, "p").get("reason") == "ConnectionNotFound",
            "ConnectionNotFound",
            lambda: ready(k, ns, "p"),
        )
        assert "TemporalConnection" in ready(k, ns, "p")["message"]
        assert not k.exists("deployment", "p", namespace=ns)  # nothing guessed meanwhile

        k.apply(connection("TemporalConnection", "prod", namespace="payments"), namespace=ns)
        await eventually(
            lambda: env(k, ns, "p").get("TWP_TEMPORAL_NAMESPACE") == "payments",
            "the connection's namespace in the pods",
            lambda: env(k, ns, "p"),
        )
        assert env(k, ns, "p")["TWP_TEMPORAL_ADDRESS"] == "127.0.0.1:1"
        # the pool's own ServiceAccount, without a token, is what its pods run as
        sa = k.get("serviceaccount", "p", namespace=ns)
        assert sa["automountServiceAccountToken"] is False
        assert sa["metadata"]["ownerReferences"][0]["kind"] == "TemporalWorkerPool"
        pod = k.get("deployment", "p", namespace=ns)["spec"]["template"]["spec"]
        assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("p", False)

        k.kubectl(
            "patch",
            "tconn",
            "prod",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"address": "127.0.0.1:2"}}),
        )
        await eventually(
            lambda: env(k, ns, "p").get("TWP_TEMPORAL_ADDRESS") == "127.0.0.1:2",
            "a connection change re-queues its pools",
            lambda: env(k, ns, "p"),
        )

        k.delete("temporalconnection", "prod", namespace=ns)
        await eventually(
            lambda: ready(k, ns, "p").get("reason") == "ConnectionNotFound",
            "ConnectionNotFound after deletion",
            lambda: ready(k, ns, "p"),
        )
        assert k.exists("deployment", "p", namespace=ns)  # running workers are left alone
        reasons = {e["reason"] for e in k.get("events", namespace=ns)["items"]}
        assert "ConnectionNotFound" in reasons


async def test_a_cluster_connection_serves_only_the_namespaces_it_allows(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    ns, k = namespace, kube_cluster
    tenant = uuid.uuid4().hex[:12]
    name = f"shared-{tenant}"
    k.apply(
        connection(
            "ClusterTemporalConnection",
            name,
            namespace="shared",
            allowedNamespaces={"matchLabels": {"e2e-tenant": tenant}},
        )
    )
    try:
        async with running_operator(k.kubeconfig, ns):
            k.apply(pool("c", {"kind": "ClusterTemporalConnection", "name": name}), namespace=ns)
            await eventually(
                lambda: ready(k, ns, "c").get("reason") == "ConnectionNotAllowed",
                "ConnectionNotAllowed",
                lambda: ready(k, ns, "c"),
            )
            assert ns in ready(k, ns, "c")["message"]
            assert not k.exists("deployment", "c", namespace=ns)

            k.kubectl("label", "namespace", ns, f"e2e-tenant={tenant}")  # the admin allows it
            await eventually(
                lambda: env(k, ns, "c").get("TWP_TEMPORAL_NAMESPACE") == "shared",
                "a namespace label re-queues its pools",
                lambda: ready(k, ns, "c"),
            )
    finally:
        k.delete("clustertemporalconnection", name)
