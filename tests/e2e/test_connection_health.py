"""Connection status from the leader's health check, against the real Temporal dev server.

Ready once the server answered (GetSystemInfo) and the namespace exists (DescribeNamespace),
with the server version and capabilities; the last error with its time otherwise. The health
check, the scaler and the zero guard share one Temporal client per connection.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.operator import running_operator
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests import builders

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Pools and connections."""


def tconn(name: str, address: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalConnection",
        "metadata": {"name": name},
        "spec": {"address": address, "namespace": namespace},
    }


def status(k: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    return dict(k.get("temporalconnection", name, namespace=ns).get("status") or {})


def ready(k: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    conds = status(k, ns, name).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), {})


async def test_connection_status_from_the_health_check(
    kube_cluster: KubeCluster, namespace: str, temporal_server: TemporalDevServer
) -> None:
    k, ns = kube_cluster, namespace
    async with running_operator(k.kubeconfig, ns) as op:
        k.apply(
            [
                tconn("dev", temporal_server.address),
                tconn("missing-ns", temporal_server.address, namespace="no-such-namespace"),
                tconn("nowhere", "127.0.0.1:1"),
            ],
            namespace=ns,
        )
        await eventually(
            lambda: ready(k, ns, "dev").get("status") == "True",
            "dev Ready",
            lambda: status(k, ns, "dev"),
        )
        dev = status(k, ns, "dev")
        assert ready(k, ns, "dev")["reason"] == "Connected"
        assert dev["serverVersion"]  # GetSystemInfo
        assert dev["namespaceExists"] is True
        assert dev["capabilities"]["taskQueueStats"] is True  # server >= 1.25
        assert "workerDeployments" in dev["capabilities"]
        assert dev["lastCheckTime"]

        await eventually(
            lambda: ready(k, ns, "missing-ns").get("reason") == "NamespaceNotFound",
            "NamespaceNotFound",
            lambda: status(k, ns, "missing-ns"),
        )
        assert status(k, ns, "missing-ns")["namespaceExists"] is False
        await eventually(
            lambda: ready(k, ns, "nowhere").get("reason") == "TemporalUnavailable",
            "TemporalUnavailable",
            lambda: status(k, ns, "nowhere"),
        )
        err = status(k, ns, "nowhere")["lastError"]
        assert "GetSystemInfo" in err["message"]
        assert err["time"]

        # A Builtin pool on the same connection: scaler, zero guard and health check share
        # one client (the poller is keyed by connection, credentials included).
        autoscaling = {"minReplicas": 0, "maxReplicas": 2}
        pool = builders.pool("p", connection_ref={"name": "dev"}, queue="health-q",
                             workflows=("a:W",), autoscaling=autoscaling)  # fmt: skip
        k.apply(pool, namespace=ns)

        def pool_polled() -> bool:
            pool = k.get("twp", "p", namespace=ns)
            conds = (pool.get("status") or {}).get("conditions") or []
            return any(c["type"] == "BacklogAvailable" and c["status"] == "True" for c in conds)

        await eventually(
            pool_polled,
            "the scaler to read the backlog",
            lambda: k.get("twp", "p", namespace=ns).get("status"),
        )
        to_dev = [c for c in op.clients.connections() if c.address == temporal_server.address]
        shared = [c for c in to_dev if c.namespace == "default"]
        assert len(shared) == 1, to_dev  # the pool's scaler and dev's health check: one client
        assert len(to_dev) == 2  # dev and missing-ns: two namespaces, two clients
