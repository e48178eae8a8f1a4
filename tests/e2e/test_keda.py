"""The KEDA engine against a real KEDA: its operator and metrics API server built from KEDA's Go
module (hack/build-keda.sh) and run as local processes by testbed/keda.py, aggregated by the
bed's kube-apiserver, so the bed's real kube-controller-manager (HPA controller) scales on KEDA's
external metric.

The operator, as deployed (`python -m workerpool_operator`, scoped to the test's namespace),
renders the ScaledObject and the TriggerAuthentication of an API-key connection. KEDA's temporal
scaler reads the key from the TriggerAuthentication and, as it must with an API key, speaks TLS:
to testbed/forward.py on loopback, which terminates TLS (a test CA, given to KEDA with --ca-dir)
in front of the plain dev server. KEDA takes the pool 0 -> 1 on backlog (activation, its own
scale loop), then the HPA takes it 1 -> N on KEDA's metric.

Missing KEDA binaries skip locally and fail under CI=true (make setup builds them).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.certs import issue, make_ca
from testbed.forward import Forwarder, forwarding
from testbed.operator import deployed_operator
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.e2e.beds import keda_on_bed
from workerpool_operator.api import v1alpha1 as api

pytestmark = pytest.mark.e2e

APP = "tests.e2e.scaling_app"
WAIT_S = 240.0  # a shared 2-core machine; bounds a wait, never asserted on
API_KEY = "test-api-key-not-a-secret"


@pytest.fixture(scope="module")
def keda(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """KEDA running and aggregated for this module; removed afterwards."""
    workdir = tmp_path_factory.mktemp("keda")
    # The TLS front of the dev server is signed by this CA; KEDA trusts it through --ca-dir.
    pki = workdir / "temporal-pki"
    ca = make_ca(pki)
    leaf = issue(ca, pki, "temporal", sans=["IP:127.0.0.1"], client=False)
    trust = workdir / "temporal-trust"
    trust.mkdir()
    shutil.copy(ca.cert, trust / "ca.crt")
    with keda_on_bed(kube_cluster, workdir, ca_dirs=(trust,)) as running:
        yield running, leaf, ca


@pytest.fixture
def tls_front(temporal: TemporalDevServer, keda: Any, tmp_path: Path) -> Iterator[Forwarder]:
    """TLS on loopback in front of the plain dev server (`start-dev` has no TLS flags)."""
    _, leaf, _ = keda
    with forwarding(
        "127.0.0.1", temporal.address, tmp_path / "tls-front.log", "--cert", str(leaf.cert),
        "--key", str(leaf.key),
    ) as fwd:  # fmt: skip
        yield fwd


def connection_fields(
    cluster: KubeCluster, namespace: str, address: str, temporal_ns: str
) -> dict[str, Any]:
    """An API-key connection over system-root TLS, in whichever form this API takes: a
    TemporalConnection (spec.connectionRef) when pools have one, else inline."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "temporal-api-key",
            "namespace": namespace,
            "labels": {"workerpools.io/temporal-credentials": "true"},
        },
        "stringData": {"api-key": API_KEY},
    }
    cluster.apply(secret)
    conn = {
        "address": address,
        "namespace": temporal_ns,
        "tls": {},
        "apiKeySecretRef": {"name": "temporal-api-key", "key": "api-key"},
    }
    if "connection_ref" in api.TemporalWorkerPoolSpec.model_fields:
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": "TemporalConnection",
                "metadata": {"name": "temporal", "namespace": namespace},
                "spec": conn,
            }
        )
        return {"connectionRef": {"kind": "TemporalConnection", "name": "temporal"}}
    return {"connection": conn}


def replicas(cluster: KubeCluster, ns: str, name: str) -> int:
    return int(cluster.get("deployment", name, namespace=ns)["spec"].get("replicas", 1))


async def test_keda_engine_scales_0_to_1_and_1_to_n_through_real_keda_and_hpa(
    kube_cluster: KubeCluster,
    namespace: str,
    temporal: TemporalDevServer,
    keda: Any,
    tls_front: Forwarder,
    pool_crd: object,
    tmp_path: Path,
) -> None:
    running, _, _ = keda
    queue = f"keda-{uuid.uuid4().hex[:8]}"
    name = "orders"
    doc = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            **connection_fields(kube_cluster, namespace, tls_front.address, temporal.namespace),
            "taskQueue": queue,
            "workflows": [f"{APP}:ShortWorkflow"],
            "autoscaling": {
                "engine": "KEDA",
                "minReplicas": 0,
                "maxReplicas": 4,
                "targetBacklogPerReplica": 2,
                "pollIntervalSeconds": 5,
                "scaleDownStabilizationSeconds": 300,
            },
        },
    }
    kube_cluster.apply(doc)

    def state() -> str:
        so = kube_cluster.get("scaledobject", name, namespace=namespace)
        hpa = kube_cluster.run("get", "hpa", "-n", namespace, "-o", "yaml", check=False).stdout
        return f"ScaledObject status: {so.get('status')}\nHPA: {hpa[-3000:]}\n{running.logs()}"

    async with deployed_operator(kube_cluster, namespace, tmp_path):
        # The operator renders both once it has resolved the TemporalConnection and its
        # Secret: wait for the pair, not for the first of them.
        def rendered() -> bool:
            if not kube_cluster.exists("triggerauthentication", name, namespace=namespace):
                return False
            if not kube_cluster.exists("scaledobject", name, namespace=namespace):
                return False
            so = kube_cluster.get("scaledobject", name, namespace=namespace)
            return so["spec"]["triggers"][0].get("authenticationRef") is not None

        await eventually(rendered, "the operator's ScaledObject and TriggerAuthentication")
        ta = kube_cluster.get("triggerauthentication", name, namespace=namespace)
        refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
        assert refs["apiKey"]["name"] == "temporal-api-key"
        so = kube_cluster.get("scaledobject", name, namespace=namespace)
        assert so["spec"]["triggers"][0]["authenticationRef"] == {"name": name}

        # KEDA takes an empty queue to 0 (minReplicaCount 0, nothing active).
        await eventually(
            lambda: replicas(kube_cluster, namespace, name) == 0, "KEDA scales to 0", state
        )
        await eventually(
            lambda: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (
                    kube_cluster.get("scaledobject", name, namespace=namespace)
                    .get("status", {})
                    .get("conditions", [])
                )
            ),
            "ScaledObject Ready (the scaler connected with the TriggerAuthentication)",
            state,
        )
        connections_before = len(tls_front.connections())

        # 0 -> 1: one workflow nobody polls is a backlog over activation 0.
        client = await Client.connect(temporal.address, namespace=temporal.namespace)
        await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-0", task_queue=queue)
        await eventually(
            lambda: replicas(kube_cluster, namespace, name) >= 1, "KEDA activates 0 -> 1", state
        )
        # 1 -> N: seven more, backlog 8 at 2 per replica -> 4, through the HPA controller.
        for i in range(1, 8):
            await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-{i}", task_queue=queue)
        await eventually(
            lambda: replicas(kube_cluster, namespace, name) == 4,
            "the HPA scales 1 -> 4 on KEDA's external metric",
            state,
        )
        hpa = kube_cluster.get("hpa", f"keda-hpa-{name}", namespace=namespace)
        metric = hpa["status"]["currentMetrics"][0]["external"]
        assert metric["metric"]["name"].startswith("s0-temporal")
        # What the HPA read is what the aggregator serves (the same path, as this test).
        served = running.external_metric(namespace, metric["metric"]["name"], name)
        assert served["items"], served
        # KEDA's scaler reached Temporal through the TLS front (with the API key).
        assert len(tls_front.connections()) >= max(connections_before, 1)
        assert all(c.get("tls") for c in tls_front.connections()), tls_front.connections()


async def test_keda_engine_reaches_temporal_over_mtls_with_the_rendered_trigger_authentication(
    kube_cluster: KubeCluster,
    namespace: str,
    temporal: TemporalDevServer,
    keda: Any,
    tmp_path: Path,
    pool_crd: object,
) -> None:
    """mTLS: the TemporalConnection's tls Secret (ca.crt, tls.crt, tls.key) becomes the
    TriggerAuthentication's ca/cert/key, and KEDA's scaler presents that certificate to a TLS
    front that refuses any connection without one. The activation 0 -> 1 on backlog is the
    proof that KEDA got through: the front is the only address it has."""
    running, leaf, ca = keda
    client_pair = issue(ca, tmp_path, "keda-client", sans=[], client=True)
    log = tmp_path / "mtls-front.log"
    tls = ("--cert", str(leaf.cert), "--key", str(leaf.key), "--client-ca", str(ca.cert))
    queue = f"keda-mtls-{uuid.uuid4().hex[:8]}"
    name = "mtls"
    with forwarding("127.0.0.1", temporal.address, log, *tls) as front:
        kube_cluster.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": "temporal-mtls",
                        "labels": {"workerpools.io/temporal-credentials": "true"},
                    },
                    "stringData": {
                        "ca.crt": ca.cert.read_text(),
                        "tls.crt": client_pair.cert.read_text(),
                        "tls.key": client_pair.key.read_text(),
                    },
                },
                {
                    "apiVersion": api.API_VERSION,
                    "kind": "TemporalConnection",
                    "metadata": {"name": "temporal-mtls"},
                    "spec": {
                        "address": front.address,
                        "namespace": temporal.namespace,
                        "tls": {"secretName": "temporal-mtls"},
                    },
                },
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "metadata": {"name": name},
                    "spec": {
                        "connectionRef": {"kind": "TemporalConnection", "name": "temporal-mtls"},
                        "taskQueue": queue,
                        "workflows": [f"{APP}:ShortWorkflow"],
                        "autoscaling": {
                            "engine": "KEDA",
                            "minReplicas": 0,
                            "maxReplicas": 2,
                            "pollIntervalSeconds": 5,
                        },
                    },
                },
            ],
            namespace=namespace,
        )

        def state() -> str:
            so = kube_cluster.get("scaledobject", name, namespace=namespace)
            seen = front.connections()[-5:]
            return f"ScaledObject status: {so.get('status')}\n{seen}\n{running.logs()}"

        async with deployed_operator(kube_cluster, namespace, tmp_path):
            await eventually(
                lambda: kube_cluster.exists("triggerauthentication", name, namespace=namespace),
                "the operator's TriggerAuthentication",
            )
            ta = kube_cluster.get("triggerauthentication", name, namespace=namespace)
            refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
            assert {p: (refs[p]["name"], refs[p]["key"]) for p in ("ca", "cert", "key")} == {
                "ca": ("temporal-mtls", "ca.crt"),
                "cert": ("temporal-mtls", "tls.crt"),
                "key": ("temporal-mtls", "tls.key"),
            }
            await eventually(
                lambda: replicas(kube_cluster, namespace, name) == 0, "KEDA scales to 0", state
            )
            client = await Client.connect(temporal.address, namespace=temporal.namespace)
            await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-0", task_queue=queue)
            await eventually(
                lambda: replicas(kube_cluster, namespace, name) >= 1,
                "KEDA activates 0 -> 1 through the mTLS front",
                state,
            )
            presented = {c.get("client_cert") for c in front.connections()}
            assert "commonName=keda-client" in presented, front.connections()
