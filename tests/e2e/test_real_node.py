"""The pod the operator renders, run for real: the bed's kubelet node and the runtime image.

The operator runs as a process (`python -m workerpool_operator -n NS`) against the local bed;
pools are placed on the real node `real-0` (testbed/realnode.py), where containerd runs the
runtime image built by hack/build-images.sh with `imagePullPolicy: Never`. The pools' user code
(tests/e2e/realnode_app.py) is mounted from a ConfigMap. Pods reach the Temporal dev server
through testbed/forward.py on the bridge address (plain, TLS, or mTLS), the tests reach it on
loopback and the pods on their own addresses; nothing else is contacted.

Every activity here runs with maximum_attempts=1: an activity lost when a pod stops fails its
workflow, so "all workflows completed, attempt 1" means nothing was lost or retried.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from testbed.certs import issue, make_ca
from testbed.forward import Forwarder, forwarding
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.pytest_realnode import RUNTIME_TAG
from testbed.realnode import GATEWAY, NODE_NAME, RUNTIME_REPO, SUBNET, RealNode, placement
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests import builders
from tests.builders import condition
from tests.runtime.helpers import metric_sum
from workerpool_operator.names import CREDENTIALS_LABEL

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = Path(__file__).with_name("realnode_app.py")
APP = "e2eapp.realnode_app"
SECOND_TAG = f"{RUNTIME_TAG}-b"
SERVER_NAME = "temporal.twp.test"
RUNTIME_UID = 10001
# Full resource name: other tests' CRDs (e.g. a chart test's renamed group) may share "twp".
TWP = "temporalworkerpools.workerpools.io"
WAIT_S = 300.0  # bounds a wait on a shared 2-core machine; never asserted on


# --- plumbing ------------------------------------------------------------------------------


def forwarder(server: TemporalDevServer, log: Path, *tls_args: str) -> Any:
    """testbed/forward.py on the bridge address, in front of the loopback dev server."""
    return forwarding(GATEWAY, server.address, log, *tls_args)


@pytest.fixture(scope="module")
def plain(
    real_node: RealNode, temporal_server: TemporalDevServer, tmp_path_factory: Any
) -> Iterator[Forwarder]:
    with forwarder(temporal_server, tmp_path_factory.mktemp("fwd") / "plain.log") as fwd:
        yield fwd


@pytest.fixture
def operator(
    kube_cluster: KubeCluster, namespace: str, pool_crd: Path, tmp_path: Path
) -> Iterator[Path]:
    """The operator as a process, watching only this test's namespace; yields its log path."""
    op = OperatorProcess(kube_cluster.kubeconfig, "realnode", "-n", namespace, log_dir=tmp_path)
    try:
        yield op.log_path
    finally:
        op.stop()


@pytest.fixture
def app(kube_cluster: KubeCluster, namespace: str) -> None:
    """The pools' user code as a ConfigMap (mounted at /app/e2eapp by `pool_doc`)."""
    kube_cluster.kubectl(
        "create", "configmap", "e2e-app", "-n", namespace,
        f"--from-file=realnode_app.py={APP_FILE}",
    )  # fmt: skip


def pool_doc(
    name: str,
    queue: str,
    address: str,
    *,
    replicas: int,
    tag: str = RUNTIME_TAG,
    connection: dict[str, Any] | None = None,
    connection_ref: str | None = None,
    worker: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return builders.pool(
        name,
        queue=queue,
        connection={"address": address, **(connection or {})},
        connection_ref=(
            {"kind": "TemporalConnection", "name": connection_ref} if connection_ref else None
        ),
        workflows=(f"{APP}:PodWorkflow", f"{APP}:InspectWorkflow"),
        replicas=replicas,
        image={"repository": RUNTIME_REPO, "tag": tag, "pullPolicy": "Never"},
        activities=[f"{APP}:pod_work", f"{APP}:inspect_pod"],
        worker={"gracefulShutdownSeconds": 30, **(worker or {})},
        template={
            **placement(),
            "volumes": [{"name": "app", "configMap": {"name": "e2e-app"}}],
            "volumeMounts": [{"name": "app", "mountPath": "/app/e2eapp", "readOnly": True}],
        },
    )


def temporal_connection(name: str, address: str, **spec: Any) -> dict[str, Any]:
    """A TemporalConnection: where pools' credentials live since 0.3."""
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalConnection",
        "metadata": {"name": name},
        "spec": {"address": address, **spec},
    }


def credentials_secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A Secret pools may reference: opted in with the credentials label."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {CREDENTIALS_LABEL: "true"}},
        "type": "Opaque",
        "stringData": data,
    }


def pods(cluster: KubeCluster, ns: str, name: str) -> list[dict[str, Any]]:
    """The pool's pods that are not being deleted."""
    items = cluster.get("pods", namespace=ns, selector=f"workerpools.io/pool={name}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def ready_pods(cluster: KubeCluster, ns: str, name: str) -> list[dict[str, Any]]:
    return [p for p in pods(cluster, ns, name) if is_ready(p)]


def endpoints(cluster: KubeCluster, ns: str, name: str) -> list[tuple[str, int]]:
    """Ready (address, port) pairs of the pool's Service, from its EndpointSlices."""
    slices = cluster.get(
        "endpointslices", namespace=ns, selector=f"kubernetes.io/service-name={name}"
    )["items"]
    out = []
    for es in slices:
        port = next(p["port"] for p in es.get("ports") or [] if p.get("name") == "metrics")
        for ep in es.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready"):
                out += [(addr, port) for addr in ep["addresses"]]
    return sorted(out)


def scrape(address: str, port: int) -> str:
    assert ip_address(address) in ip_network(SUBNET), address  # pod addresses only
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def debug(cluster: KubeCluster, node: RealNode, ns: str, name: str, operator_log: Path) -> str:
    """What a failure message needs: pods, events, container logs, the operator's log tail."""
    ps = cluster.run("get", "pods", "-n", ns, "-o", "wide").stdout
    ev = cluster.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp").stdout[-3000:]
    logs = "".join(node.pod_log(ns, p["metadata"]["name"])[-2000:] for p in pods(cluster, ns, name))
    return f"{ps}\n{ev}\n{logs}\noperator:\n{operator_log.read_text()[-2000:]}"


async def results(handles: list[WorkflowHandle[Any, Any]], state: Callable[[], Any]) -> list[Any]:
    try:
        return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), WAIT_S))
    except Exception as exc:
        pytest.fail(f"workflows did not complete: {exc!r}\n{await asyncio.to_thread(state)}")


async def activities_started(client: Client, handles: list[WorkflowHandle[Any, Any]]) -> bool:
    from temporalio.api.enums.v1 import PendingActivityState

    for h in handles:
        desc = await client.get_workflow_handle(h.id).describe()
        pending = desc.raw_description.pending_activities
        if not pending or pending[0].state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
            return False
    return True


async def start(
    client: Client, queue: str, n: int, seconds: float
) -> list[WorkflowHandle[Any, Any]]:
    return [
        await client.start_workflow(
            "PodWorkflow", seconds, id=f"{queue}-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        for _ in range(n)
    ]


SIGTERM_LOG = "Received SIGTERM: stopping polling, draining in-flight activities"
DRAINED = "Worker drained and stopped"


class LogTail:
    """Keeps the last container log of each named pod: the kubelet deletes a stopped pod's
    log files soon after the container exits, so they are copied while they exist."""

    def __init__(self, node: RealNode, namespace: str, names: set[str]) -> None:
        self.node, self.namespace, self.names = node, namespace, names
        self.seen: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            for pod in self.names:
                text = self.node.pod_log(self.namespace, pod)
                if len(text) >= len(self.seen.get(pod, "")):
                    self.seen[pod] = text

    def text(self, pod: str) -> str:
        return self.seen.get(pod, "")

    def __enter__(self) -> LogTail:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def assert_on_real_node(pod: dict[str, Any]) -> None:
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert ip_address(pod["status"]["podIP"]) in ip_network(SUBNET)


# --- tests ---------------------------------------------------------------------------------


async def test_rendered_pool_runs_on_the_real_node_consumes_backlog_and_drains_on_scale_down(
    kube_cluster: KubeCluster,
    namespace: str,
    operator: Path,
    app: None,
    real_node: RealNode,
    runtime_image: str,
    temporal_server: TemporalDevServer,
    plain: Forwarder,
) -> None:
    name, queue = "orders", f"real-{uuid.uuid4().hex[:8]}"
    ns = namespace
    state = lambda: debug(kube_cluster, real_node, ns, name, operator)  # noqa: E731
    client = await Client.connect(temporal_server.address)
    # A backlog first, then the pool: its pods must consume it.
    backlog = await start(client, queue, 12, 0.5)
    kube_cluster.apply(
        pool_doc(name, queue, plain.address, replicas=2, worker={"maxConcurrentActivities": 2}),
        namespace=ns,
    )
    await eventually(lambda: len(ready_pods(kube_cluster, ns, name)) == 2, "2 Ready pods", state)
    done = await results(backlog, state)

    live = ready_pods(kube_cluster, ns, name)
    for pod in live:
        assert_on_real_node(pod)
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"], status
        assert status["restartCount"] == 0, status
    names = {p["metadata"]["name"] for p in live}
    assert {r["pod"] for r in done} <= names
    assert all(r["attempt"] == 1 and r["uid"] == RUNTIME_UID for r in done), done
    await eventually(
        lambda: condition(kube_cluster, ns, name, "Ready").get("status") == "True",
        "pool condition Ready=True",
        state,
    )

    # /metrics through the Service's endpoints: one per Ready pod, together all 12 activities.
    await eventually(
        lambda: (
            {a for a, _ in endpoints(kube_cluster, ns, name)}
            == {p["status"]["podIP"] for p in live}
        ),
        "the Service's endpoints to be the two pods",
        state,
    )
    texts = [scrape(a, port) for a, port in endpoints(kube_cluster, ns, name)]
    assert all("temporal_worker_task_slots_available" in t for t in texts)
    assert sum(metric_sum(t, "twp_activities_succeeded_total") for t in texts) == 12

    # In-flight work on both pods (2 slots each, 4 long activities), then scale down to 1:
    # the stopped pod gets SIGTERM, stops polling and finishes its 2 activities.
    inflight = await start(client, queue, 4, 12.0)
    deadline = time.monotonic() + WAIT_S
    while not await activities_started(client, inflight):
        assert time.monotonic() < deadline, await asyncio.to_thread(state)
        await asyncio.sleep(0.5)
    with LogTail(real_node, ns, names) as logs:
        kube_cluster.kubectl("scale", TWP, name, "-n", ns, "--replicas=1")  # kubectl scale twp
        await eventually(
            lambda: len(pods(kube_cluster, ns, name)) == 1, "scale-down to 1 pod", state
        )
        drained = await results(inflight, state)
        (survivor,) = pods(kube_cluster, ns, name)
        (stopped,) = names - {survivor["metadata"]["name"]}
        await eventually(lambda: DRAINED in logs.text(stopped), "the drain in its log", state)
    assert all(r["attempt"] == 1 for r in drained), drained
    assert stopped in {r["pod"] for r in drained}, f"no activity ran on {stopped}: {drained}"
    # the container got SIGTERM (not a kill) and drained before it exited
    assert SIGTERM_LOG in logs.text(stopped), logs.text(stopped)
    assert "Traceback" not in logs.text(stopped), logs.text(stopped)
    assert kube_cluster.get("deployment", name, namespace=ns)["spec"]["replicas"] == 1


async def test_rolling_image_update_replaces_pods_without_losing_an_activity(
    kube_cluster: KubeCluster,
    namespace: str,
    operator: Path,
    app: None,
    real_node: RealNode,
    runtime_image: str,
    temporal_server: TemporalDevServer,
    plain: Forwarder,
) -> None:
    name, queue, ns = "rolling", f"roll-{uuid.uuid4().hex[:8]}", namespace
    state = lambda: debug(kube_cluster, real_node, ns, name, operator)  # noqa: E731
    second = f"{RUNTIME_REPO}:{SECOND_TAG}"

    def import_second_tag() -> None:
        tagged = subprocess.run(["docker", "tag", runtime_image, second], capture_output=True)
        assert tagged.returncode == 0, tagged.stderr
        with real_node.lock():
            real_node.import_image(second)

    await asyncio.to_thread(import_second_tag)

    worker = {"maxConcurrentActivities": 2}
    kube_cluster.apply(
        pool_doc(name, queue, plain.address, replicas=2, worker=worker), namespace=ns
    )
    await eventually(lambda: len(ready_pods(kube_cluster, ns, name)) == 2, "2 Ready pods", state)
    old = {p["metadata"]["name"] for p in ready_pods(kube_cluster, ns, name)}

    client = await Client.connect(temporal_server.address)
    inflight = await start(client, queue, 4, 10.0)
    deadline = time.monotonic() + WAIT_S
    while not await activities_started(client, inflight):
        assert time.monotonic() < deadline, await asyncio.to_thread(state)
        await asyncio.sleep(0.5)

    def rolled() -> bool:
        now = pods(kube_cluster, ns, name)
        return (
            len(now) == 2
            and all(is_ready(p) for p in now)
            and all(p["spec"]["containers"][0]["image"] == second for p in now)
            and not old & {p["metadata"]["name"] for p in now}
        )

    with LogTail(real_node, ns, old) as logs:
        kube_cluster.apply(
            pool_doc(name, queue, plain.address, replicas=2, tag=SECOND_TAG, worker=worker),
            namespace=ns,
        )
        await eventually(rolled, "both pods replaced by the second image", state)
        done = await results(inflight, state)
        await eventually(
            lambda: all(DRAINED in logs.text(pod) for pod in old), "old pods' drains", state
        )
    assert all(r["attempt"] == 1 for r in done), done
    assert {r["pod"] for r in done} & old, "the in-flight work ran on the replaced pods"
    for pod in old:  # each old pod was stopped with SIGTERM and drained, none was killed
        assert SIGTERM_LOG in logs.text(pod), logs.text(pod)
        assert "Traceback" not in logs.text(pod), logs.text(pod)
    for pod in pods(kube_cluster, ns, name):
        assert_on_real_node(pod)


async def test_mtls_and_api_key_pools_run_and_become_ready(
    kube_cluster: KubeCluster,
    namespace: str,
    operator: Path,
    app: None,
    real_node: RealNode,
    runtime_image: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """`temporal server start-dev` has no TLS flags: testbed/forward.py terminates TLS."""
    ns = namespace
    ca = make_ca(tmp_path / "pki")
    sans = [f"DNS:{SERVER_NAME}", f"IP:{GATEWAY}"]
    server = issue(ca, tmp_path / "pki", "server", sans=sans, client=False)
    worker_cert = issue(ca, tmp_path / "pki", "orders-worker", sans=[], client=True)
    tls_args = ("--cert", str(server.cert), "--key", str(server.key))
    mtls_args = (*tls_args, "--client-ca", str(ca.cert))
    with (
        forwarder(temporal_server, tmp_path / "mtls.log", *mtls_args) as mtls,
        forwarder(temporal_server, tmp_path / "tls.log", *tls_args) as tls,
    ):
        kube_cluster.apply(
            [
                credentials_secret("temporal-mtls", {
                    "ca.crt": ca.cert.read_text(),
                    "tls.crt": worker_cert.cert.read_text(),
                    "tls.key": worker_cert.key.read_text(),
                }),
                credentials_secret("temporal-ca", {"ca.crt": ca.cert.read_text()}),
                credentials_secret("temporal-api-key", {"api-key": "test-key-" + uuid.uuid4().hex}),
            ],
            namespace=ns,
        )  # fmt: skip
        q_mtls, q_key = f"mtls-{uuid.uuid4().hex[:8]}", f"key-{uuid.uuid4().hex[:8]}"
        kube_cluster.apply(
            [
                temporal_connection("mtls", mtls.address, tls={
                    "secretName": "temporal-mtls", "serverName": SERVER_NAME,
                }),
                temporal_connection("apikey", tls.address, tls={
                    "secretName": "temporal-ca", "serverName": SERVER_NAME,
                }, apiKeySecretRef={"name": "temporal-api-key"}),
                pool_doc("mtls", q_mtls, mtls.address, replicas=1, connection_ref="mtls"),
                pool_doc("apikey", q_key, tls.address, replicas=1, connection_ref="apikey"),
            ],
            namespace=ns,
        )  # fmt: skip
        client = await Client.connect(temporal_server.address)

        def one_ready_pod(n: str) -> bool:
            return len(ready_pods(kube_cluster, ns, n)) == 1

        def pool_ready(n: str) -> bool:
            return condition(kube_cluster, ns, n, "Ready").get("status") == "True"

        for name, queue, fwd in (("mtls", q_mtls, mtls), ("apikey", q_key, tls)):
            state = functools.partial(debug, kube_cluster, real_node, ns, name, operator)
            await eventually(functools.partial(one_ready_pod, name), f"{name} Ready", state)
            await eventually(
                functools.partial(pool_ready, name), f"pool {name} condition Ready=True", state
            )
            (pod,) = ready_pods(kube_cluster, ns, name)
            assert_on_real_node(pod)
            handle = await client.start_workflow(
                "InspectWorkflow", id=f"{queue}-inspect", task_queue=queue
            )
            (inside,) = await results([handle], state)
            assert inside["pod"] == pod["metadata"]["name"]
            assert inside["uid"] == RUNTIME_UID
            assert RUNTIME_UID in inside["groups"]
            assert not inside["root_writable"]  # readOnlyRootFilesystem
            assert inside["tmp_writable"]  # the emptyDir on /tmp
            # the Secret is mounted 0440, readable through the pod's fsGroup
            files = inside["tls_files"]
            want = {"ca.crt", "tls.crt", "tls.key"} if name == "mtls" else {"ca.crt"}
            assert set(files) == want, files
            assert all(f["mode"] == "0o440" and f["readable"] for f in files.values()), files
            assert inside["api_key_set"] is (name == "apikey")
            # the pod really spoke TLS 1.2+ with ALPN h2, with its client certificate for mTLS
            conns = [c for c in fwd.connections() if c["peer"] == pod["status"]["podIP"]]
            assert conns, fwd.log.read_text()
            assert all(c["tls"] in ("TLSv1.2", "TLSv1.3") and c["alpn"] == "h2" for c in conns)
            if name == "mtls":
                assert all(c["client_cert"] == "commonName=orders-worker" for c in conns), conns
            else:
                assert all(c["client_cert"] is None for c in conns), conns
            texts = [scrape(a, port) for a, port in endpoints(kube_cluster, ns, name)]
            assert sum(metric_sum(t, "twp_activities_succeeded_total") for t in texts) == 1
