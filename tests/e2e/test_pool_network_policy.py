"""spec.networkPolicy: the NetworkPolicy child is accepted by the API server, follows the spec
and is pruned when the field goes (the bed's kwok nodes do not enforce it; the rules are
unit-tested in tests/unit/test_render.py)."""

from __future__ import annotations

import json

import pytest

from testbed.operator import running_operator
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests import builders

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Pools."""


async def test_network_policy_follows_the_spec_and_is_pruned(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    k, ns = kube_cluster, namespace
    pool = builders.pool(
        "np",
        connection={"address": "10.1.2.3:7233"},
        workflows=("a:W",),
        replicas=1,
        networkPolicy={"metricsFromNamespaces": {"matchLabels": {"team": "observability"}}},
    )
    async with running_operator(k.kubeconfig, ns):
        k.apply(pool, namespace=ns)
        await eventually(lambda: k.exists("networkpolicy", "np", namespace=ns), "NetworkPolicy")
        policy = k.get("networkpolicy", "np", namespace=ns)["spec"]
        assert policy["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}]
        # Without the admin's metricsFromAnyNamespace grant, also only from the pool's own.
        assert policy["ingress"][0]["from"][0]["namespaceSelector"] == {
            "matchLabels": {"team": "observability"},
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [ns]}
            ],
        }
        k.kubectl(
            "patch",
            "twp",
            "np",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"networkPolicy": None}}),
        )
        await eventually(lambda: not k.exists("networkpolicy", "np", namespace=ns), "pruned")
        assert k.exists("deployment", "np", namespace=ns)
