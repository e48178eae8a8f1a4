"""Credentials: rotation rolls the workers and reaches the scaler; the scaler's reasons in and out.

The operator's engine runs in the test's event loop, scoped to the test's namespace.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.operator import running_operator
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests import builders
from tests.builders import NOWHERE, condition, patch_spec

pytestmark = pytest.mark.usefixtures("pool_crd")  # every test here creates pools


def connection(name: str, **spec: Any) -> dict[str, Any]:
    """A TemporalConnection: where pools' credentials live."""
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalConnection",
        "metadata": {"name": name},
        "spec": {**NOWHERE, **spec},
    }


def pool_of(connection_name: str, name: str, **spec: Any) -> dict[str, Any]:
    """A pool that takes its connection from the TemporalConnection `connection_name`."""
    ref = {"kind": "TemporalConnection", "name": connection_name}
    return builders.pool(name, connection_ref=ref, **spec)


def secret(name: str, **data: str) -> dict[str, Any]:
    """An opted-in Secret (the operator reads no other)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"workerpools.io/temporal-credentials": "true"}},
        "stringData": data,
    }


async def test_rotated_api_key_rolls_the_workers_and_reaches_the_scaler(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    name = "cloud"
    autoscaling = {"engine": "Builtin", "minReplicas": 1, "maxReplicas": 3}
    cloud = connection("cloud", tls={}, apiKeySecretRef={"name": "key", "key": "apiKey"})
    kube_cluster.apply([secret("key", apiKey="first"), cloud], namespace=namespace)
    kube_cluster.apply(pool_of("cloud", name, autoscaling=autoscaling), namespace=namespace)

    def template_hash() -> str:
        """The pods' credentials hash; '' until the Deployment exists."""
        if not kube_cluster.exists("deployment", name, namespace=namespace):
            return ""
        dep = kube_cluster.get("deployment", name, namespace=namespace)
        annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
        return str(annotations.get("workerpools.io/credentials-hash", ""))

    async with running_operator(kube_cluster.kubeconfig, namespace) as op:
        await eventually(lambda: template_hash() != "", "the credentials hash on the pods")
        first = template_hash()
        await eventually(
            lambda: any(c.api_key == "first" for c in op.clients.connections()),
            "a client with the key",
        )
        kube_cluster.apply(secret("key", apiKey="second"), namespace=namespace)
        await eventually(lambda: template_hash() not in ("", first), "a rollout for the new key")
        await eventually(
            lambda: any(c.api_key == "second" for c in op.clients.connections()),
            "the scaler's client to carry the new key",
        )
        assert op.poller.evict_idle(0.0) >= 1  # the old key's client goes once unused
        await eventually(
            lambda: all(c.api_key == "second" for c in op.clients.connections()),
            "only the new key's client left",
        )


async def test_scaler_reasons_in_and_out(kube_cluster: KubeCluster, namespace: str) -> None:
    """CredentialsUnavailable (a missing Secret stops the pool before anything is written),
    ResourceRequestsMissing and InsufficientGPU, each fixed again."""
    kube_cluster.apply(connection("mtls", tls={"secretName": "mtls"}), namespace=namespace)
    builtin = {"engine": "Builtin", "minReplicas": 1, "maxReplicas": 2}
    hpa = {"engine": "HPA", "minReplicas": 1, "maxReplicas": 2, "cpuUtilization": 70}
    kube_cluster.apply(
        [
            pool_of("mtls", "creds", autoscaling=builtin),
            builders.pool("hpa", connection=NOWHERE, autoscaling=hpa),
            builders.pool(
                "gpu", connection=NOWHERE, gpu={"count": 9}, autoscaling=builtin
            ),  # more GPUs than any node has
        ],
        namespace=namespace,
    )

    def reason(pool_name: str, ctype: str) -> str:
        return str(condition(kube_cluster, namespace, pool_name, ctype).get("reason"))

    async with running_operator(kube_cluster.kubeconfig, namespace):
        await eventually(
            lambda: (
                reason("creds", "Ready") == "CredentialsUnavailable"
                and reason("hpa", "AutoscalingReady") == "ResourceRequestsMissing"
                and reason("gpu", "GPUCapacityAvailable") == "InsufficientGPU"
            ),
            "the three problems reported",
        )
        message = condition(kube_cluster, namespace, "creds", "Ready")["message"]
        assert "workerpools.io/temporal-credentials=true" in message  # how to opt in
        assert not kube_cluster.exists("deployment", "creds", namespace=namespace)

        kube_cluster.apply(secret("mtls", **{"ca.crt": "x", "tls.crt": "x", "tls.key": "x"}),
                           namespace=namespace)  # fmt: skip
        patch_spec(kube_cluster, namespace, "hpa", {"resources": {"requests": {"cpu": "100m"}}})
        patch_spec(kube_cluster, namespace, "gpu", {"gpu": {"count": 1}})
        await eventually(
            lambda: (
                reason("creds", "AutoscalingReady") == "TemporalUnavailable"
                and reason("hpa", "AutoscalingReady") == "Created"
                and reason("gpu", "GPUCapacityAvailable") == "GPUsScheduled"
            ),
            "each problem fixed",
            wait_s=180,
        )
