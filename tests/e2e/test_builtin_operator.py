"""The Builtin engine under the running operator: `python -m workerpool_operator` as a process.

Real kube-apiserver (kwok nodes), real Temporal dev server, the operator exactly as it is
deployed (its own process, its own /metrics, leader election on). What a user would notice:

- only Builtin pools are scaled, and only their Deployments get the scaler's field manager;
- the reconciler's resyncs and an operator restart never rewrite the replicas the scaler set
  (the Deployment's generation does not move);
- switching engines hands the replicas over without a drop, and back;
- the scaler reaches Temporal over TLS with an API key and over mTLS, from the Secrets of a
  TemporalConnection, and reports CredentialsUnavailable (holding replicas) while a Secret is
  not opted in, then recovers by itself;
- the API key is on the wire: a front that requires it (testbed/apikey_front.py) lets the
  scaler's calls through with the right key and refuses a wrong one.

`temporal server start-dev` has no TLS flags, so TLS is terminated by testbed/forward.py on
loopback in front of it (a test CA; for mTLS the forwarder requires a client certificate and
logs its subject, which is how the test proves the scaler presented it).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.apikey_front import api_key_front
from testbed.certs import issue, make_ca
from testbed.forward import Forwarder, forwarding
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests import builders
from tests.builders import condition, replicas_owners

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("pool_crd")]

WAIT_S = 180.0  # bounds a wait on a shared 2-core machine; never asserted on
SCALER = "workerpool-autoscaler"
CREDENTIALS = {"workerpools.io/temporal-credentials": "true"}


def pool(name: str, queue: str, connection: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A workflow-only pool on `queue`; `connection` holds "connection" or "connectionRef"."""
    return builders.pool(
        name,
        queue=queue,
        connection=connection.get("connection"),
        connection_ref=connection.get("connectionRef"),
        **spec,
    )


def builtin(**autoscaling: Any) -> dict[str, Any]:
    """Builtin autoscaling: 2 tasks per replica, polled as often as Temporal's stats change."""
    return {
        "engine": "Builtin",
        "minReplicas": 0,
        "maxReplicas": 5,
        "targetBacklogPerReplica": 2,
        "pollIntervalSeconds": 5,
        "scaleDownStabilizationSeconds": 0,  # an empty queue goes to 0 at once
        **autoscaling,
    }


def replica_managers(cluster: KubeCluster, ns: str, name: str) -> set[str]:
    """Field managers that own the Deployment's spec.replicas."""
    return {manager for manager, _ in replicas_owners(cluster, ns, name)}


async def start(client: Client, queue: str, n: int) -> None:
    """n workflows nobody polls: a backlog of n workflow tasks."""
    for _ in range(n):
        await client.start_workflow("Flow", id=f"{queue}-{uuid.uuid4().hex[:8]}", task_queue=queue)


def decisions(op: OperatorProcess, ns: str, name: str) -> float:
    return op.value("workerpool_scale_decisions_total", namespace=ns, pool=name)


async def test_scaler_in_the_operator_process_owns_only_builtin_replicas_and_keeps_them(
    kube_cluster: KubeCluster, namespace: str, temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    ns = namespace
    inline = {"connection": {"address": temporal_server.address,
                             "namespace": temporal_server.namespace}}  # fmt: skip
    queue = f"bi-{uuid.uuid4().hex[:8]}"
    kube_cluster.apply(
        [
            pool("scaled", queue, inline, autoscaling=builtin()),
            pool("fixed", f"{queue}-fixed", inline, replicas=2),
            pool(
                "keda",
                f"{queue}-keda",
                inline,
                autoscaling={"engine": "KEDA", "minReplicas": 1, "maxReplicas": 3},
            ),
        ],
        namespace=ns,
    )
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    # As deployed: leader election on. Resyncs every 2 s: any resync that rewrote replicas
    # would show within the waits below.
    op = OperatorProcess(
        kube_cluster.kubeconfig, "builtin", "-n", ns, "--leader-elect", log_dir=tmp_path,
        env={"WORKERPOOL_RESYNC_SECONDS": "2", "POD_NAMESPACE": ns},
    )  # fmt: skip

    def dep(name: str) -> dict[str, Any]:
        return kube_cluster.get("deployment", name, namespace=ns)

    def replicas(name: str) -> int:
        if not kube_cluster.exists("deployment", name, namespace=ns):
            return -1
        return int(dep(name)["spec"].get("replicas", 1))

    def state() -> str:
        return (
            json.dumps({n: replicas(n) for n in ("scaled", "fixed", "keda")})
            + "\n"
            + op.log_path.read_text(errors="replace")[-3000:]
        )

    try:
        # An empty queue: the scaler takes the pool to minReplicas 0.
        await eventually(lambda: replicas("scaled") == 0, "the scaler takes scaled to 0", state)
        await start(client, queue, 6)  # 6 tasks at 2 per replica: 3
        await eventually(lambda: replicas("scaled") == 3, "the scaler raises scaled to 3", state)
        assert op.manager(SCALER) in replica_managers(kube_cluster, ns, "scaled")
        # Only the Builtin pool was ever looked at by the scaler.
        for other in ("fixed", "keda"):
            owners = replica_managers(kube_cluster, ns, other)
            assert op.manager(SCALER) not in owners, owners
            assert decisions(op, ns, other) == 0
        assert decisions(op, ns, "scaled") > 0
        assert replicas("fixed") == 2

        # Resyncs (every 2 s) and a SIGKILL + restart (a full re-list and re-plan of every pool)
        # never rewrite the scaler's replicas: the Deployment's generation stays where it is.
        generation = dep("scaled")["metadata"]["generation"]
        reconciles = op.value("workerpool_operator_reconcile_duration_seconds_count")
        await eventually(
            lambda: (
                op.value("workerpool_operator_reconcile_duration_seconds_count") >= reconciles + 6
            ),
            "two more resyncs of the three pools",
            state,
        )
        op.restart()
        await eventually(lambda: op.leads() and decisions(op, ns, "scaled") >= 2,
                         "the restarted operator leads and its scaler polled twice",
                         state)  # fmt: skip
        await eventually(
            lambda: op.value("workerpool_operator_reconcile_duration_seconds_count") >= 6,
            "the restarted operator resynced every pool twice",
            state,
        )
        assert replicas("scaled") == 3
        assert dep("scaled")["metadata"]["generation"] == generation, "replicas were rewritten"

        # Builtin -> KEDA: the ScaledObject appears, the replicas stay, the scaler stops (its
        # field entry stays until KEDA's HPA first writes /scale, which takes it over).
        kube_cluster.run("patch", "temporalworkerpool", "scaled", "-n", ns, "--type=merge", "-p",
                         json.dumps({"spec": {"autoscaling": {"engine": "KEDA"}}}))  # fmt: skip
        await eventually(
            lambda: kube_cluster.exists("scaledobject", "scaled", namespace=ns),
            "the ScaledObject",
            state,
        )
        assert replicas("scaled") == 3
        held = decisions(op, ns, "scaled")
        await asyncio.sleep(12)  # two scaler periods: a scaler still at work would decide
        assert decisions(op, ns, "scaled") == held
        assert replicas("scaled") == 3
        # AutoscalingReady now speaks for the ScaledObject, not for the scaler's polls
        assert (
            "KEDA ScaledObject"
            in condition(kube_cluster, ns, "scaled", "AutoscalingReady")["message"]
        )

        # KEDA -> Builtin: the ScaledObject goes, the scaler takes the replicas back and acts.
        kube_cluster.run("patch", "temporalworkerpool", "scaled", "-n", ns, "--type=merge", "-p",
                         json.dumps({"spec": {"autoscaling": {"engine": "Builtin"}}}))  # fmt: skip
        await eventually(
            lambda: not kube_cluster.exists("scaledobject", "scaled", namespace=ns),
            "the ScaledObject pruned",
            state,
        )
        await start(client, queue, 4)  # 10 tasks: 5, the maximum
        await eventually(lambda: replicas("scaled") == 5, "the scaler raises scaled to 5", state)
        assert op.manager(SCALER) in replica_managers(kube_cluster, ns, "scaled")
        assert op.tracebacks() == 0
    finally:
        op.stop()


@pytest.fixture
def tls_fronts(temporal_server: TemporalDevServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two TLS fronts of the dev server, one of them requiring a client certificate."""
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    server = issue(ca, pki, "temporal", sans=["IP:127.0.0.1", "DNS:temporal.test"], client=False)
    client = issue(ca, pki, "scaler-client", sans=[], client=True)
    tls = ("--cert", str(server.cert), "--key", str(server.key))
    with (
        forwarding("127.0.0.1", temporal_server.address, tmp_path / "tls.log", *tls) as plain,
        forwarding("127.0.0.1", temporal_server.address, tmp_path / "mtls.log", *tls,
                   "--client-ca", str(ca.cert)) as mutual,
    ):  # fmt: skip
        yield {"ca": ca, "client": client, "tls": plain, "mtls": mutual}


async def test_scaler_reads_tls_and_api_key_secrets_and_reports_credentials_unavailable(
    kube_cluster: KubeCluster,
    namespace: str,
    temporal_server: TemporalDevServer,
    tls_fronts: dict[str, Any],
    tmp_path: Path,
) -> None:
    ns = namespace
    ca, client_pair = tls_fronts["ca"], tls_fronts["client"]
    tls_front: Forwarder = tls_fronts["tls"]
    mtls_front: Forwarder = tls_fronts["mtls"]
    key_queue, mtls_queue = (f"{k}-{uuid.uuid4().hex[:8]}" for k in ("key", "mtls"))

    def secret(name: str, labels: dict[str, str], **data: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": labels}, "stringData": data}  # fmt: skip

    def connection(name: str, address: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "workerpools.io/v1alpha1",
            "kind": "TemporalConnection",
            "metadata": {"name": name},
            "spec": {"address": address, "namespace": temporal_server.namespace, **spec},
        }

    # The API key's Secret is not opted in yet: the operator must not (and cannot) read it.
    kube_cluster.apply(
        [
            secret("api-key", {}, **{"api-key": "not-a-real-key"}),
            secret("ca-only", CREDENTIALS, **{"ca.crt": ca.cert.read_text()}),
            secret("client-cert", CREDENTIALS, **{"ca.crt": ca.cert.read_text(),
                   "tls.crt": client_pair.cert.read_text(),
                   "tls.key": client_pair.key.read_text()}),
            connection("cloud", tls_front.address,
                       tls={"secretName": "ca-only", "serverName": "temporal.test"},
                       apiKeySecretRef={"name": "api-key", "key": "api-key"}),
            connection("mtls", mtls_front.address,
                       tls={"secretName": "client-cert", "serverName": "temporal.test"}),
            pool("cloud", key_queue, {"connectionRef": {"kind": "TemporalConnection",
                                                        "name": "cloud"}},
                 autoscaling=builtin(minReplicas=1)),
            pool("mtls", mtls_queue, {"connectionRef": {"kind": "TemporalConnection",
                                                       "name": "mtls"}},
                 autoscaling=builtin()),
        ],
        namespace=ns,
    )  # fmt: skip
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    await start(client, key_queue, 6)
    await start(client, mtls_queue, 4)
    op = OperatorProcess(kube_cluster.kubeconfig, "creds", "-n", ns, log_dir=tmp_path)

    def replicas(name: str) -> int:
        if not kube_cluster.exists("deployment", name, namespace=ns):
            return -1
        dep = kube_cluster.get("deployment", name, namespace=ns)
        return int(dep["spec"].get("replicas", 1))

    def state() -> str:
        conds = {
            n: [condition(kube_cluster, ns, n, t) for t in ("Ready", "AutoscalingReady")]
            for n in ("cloud", "mtls")
        }
        return json.dumps(conds) + "\n" + op.log_path.read_text(errors="replace")[-3000:]

    try:
        # mTLS: the scaler presents the client certificate from the opted-in Secret.
        await eventually(lambda: replicas("mtls") == 2, "mtls scaled to 4 / 2 = 2", state)
        subjects = [c.get("client_cert") for c in mtls_front.connections()]
        assert "commonName=scaler-client" in subjects, mtls_front.connections()

        # The API key Secret is not opted in: the pool is CredentialsUnavailable before
        # anything is written (no Deployment would mount it, nothing dials Temporal with it).
        await eventually(
            lambda: (
                condition(kube_cluster, ns, "cloud", "Ready").get("reason")
                == "CredentialsUnavailable"
            ),
            "cloud reports CredentialsUnavailable",
            state,
        )
        held = condition(kube_cluster, ns, "cloud", "Ready")
        assert held["status"] == "False"
        assert "api-key" in held["message"]
        assert "kubectl label secret" in held["message"]  # the fix, in the message
        assert replicas("cloud") == -1  # no Deployment hands the Secret to pods
        assert not tls_front.connections()  # nothing was sent without the key

        # Opting the Secret in is all it takes: TLS + API key, backlog 6 at 2 per replica.
        kube_cluster.run("label", "secret", "api-key", "-n", ns,
                         "workerpools.io/temporal-credentials=true")  # fmt: skip
        await eventually(lambda: replicas("cloud") == 3, "cloud scaled to 6 / 2 = 3", state)
        ready = condition(kube_cluster, ns, "cloud", "AutoscalingReady")
        assert ready["status"] == "True"
        assert ready["reason"] == "BacklogPolled"
        assert tls_front.connections()
        assert all(c.get("tls") for c in tls_front.connections()), tls_front.connections()
        assert op.tracebacks() == 0
    finally:
        op.stop()


async def test_the_api_key_reaches_temporal_on_the_wire(
    kube_cluster: KubeCluster, namespace: str, temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    """In front of the dev server, a TLS front that lets a call through only with
    `authorization: Bearer <key>` (as Temporal Cloud does) and logs what each call carried:
    the scaler's calls carry the key of the pool's connection, a wrong key is refused by the
    front (not by the operator), and that pool holds its replicas saying why."""
    ns = namespace
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    server = issue(ca, pki, "temporal", sans=["IP:127.0.0.1", "DNS:temporal.test"], client=False)
    key = f"key-{uuid.uuid4().hex}"
    good_queue, wrong_queue = (f"{k}-{uuid.uuid4().hex[:8]}" for k in ("good", "wrong"))

    def secret(name: str, **data: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": CREDENTIALS}, "stringData": data}  # fmt: skip

    with api_key_front(temporal_server.address, server, key, tmp_path / "front") as front:

        def connection(name: str, key_secret: str) -> dict[str, Any]:
            return {
                "apiVersion": "workerpools.io/v1alpha1",
                "kind": "TemporalConnection",
                "metadata": {"name": name},
                "spec": {"address": front.address, "namespace": temporal_server.namespace,
                         "tls": {"secretName": "ca", "serverName": "temporal.test"},
                         "apiKeySecretRef": {"name": key_secret, "key": "api-key"}},
            }  # fmt: skip

        def via(name: str) -> dict[str, Any]:
            return {"connectionRef": {"kind": "TemporalConnection", "name": name}}

        kube_cluster.apply(
            [
                secret("ca", **{"ca.crt": ca.cert.read_text()}),
                secret("good-key", **{"api-key": key}),
                secret("wrong-key", **{"api-key": "not-the-key"}),
                connection("cloud", "good-key"),
                connection("cloud-wrong", "wrong-key"),
                pool("good", good_queue, via("cloud"), autoscaling=builtin(minReplicas=1)),
                pool("wrong", wrong_queue, via("cloud-wrong"), autoscaling=builtin(minReplicas=1)),
            ],
            namespace=ns,
        )
        client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
        await start(client, good_queue, 6)
        await start(client, wrong_queue, 6)
        op = OperatorProcess(kube_cluster.kubeconfig, "apikey", "-n", ns, log_dir=tmp_path)

        def replicas(name: str) -> int:
            if not kube_cluster.exists("deployment", name, namespace=ns):
                return -1
            return int(kube_cluster.get("deployment", name, namespace=ns)["spec"]["replicas"])

        def state() -> str:
            calls = json.dumps(front.calls()[-20:])
            return calls + "\n" + op.log_path.read_text(errors="replace")[-3000:]

        def refused() -> dict[str, Any]:
            return condition(kube_cluster, ns, "wrong", "AutoscalingReady")

        try:
            # Through the front, so with the key: backlog 6 at 2 per replica.
            await eventually(lambda: replicas("good") == 3, "good scaled to 6 / 2 = 3", state)
            await eventually(lambda: refused().get("reason") == "TemporalUnavailable",
                             "wrong reports the front's refusal", state)  # fmt: skip
            assert refused()["status"] == "False"
            assert "API key" in refused()["message"], refused()  # the server's own words
            assert replicas("wrong") == 1  # held: a refused reading never scales
            calls = front.calls()
            # Every call the operator made carried a key; the front let through exactly the
            # calls with the right one, and they were the scaler's backlog reads.
            assert calls, state()
            assert all(c["presented"] for c in calls), calls
            accepted = {c["method"] for c in calls if c["accepted"]}
            assert "/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue" in accepted
            assert any(not c["accepted"] for c in calls), calls
            assert op.tracebacks() == 0
        finally:
            op.stop()
