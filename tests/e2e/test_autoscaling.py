"""Queue-depth autoscaling end to end: real kube-apiserver (kwok nodes), real Temporal dev server.

The operator runs as it is deployed (`python -m workerpool_operator`: watch caches, reconciler,
the Builtin scaler, its own Temporal clients, default poll and back-off settings), scoped to the
test's namespace, against a pool created from the generated CRD: it creates the Deployment and
scales it, and no other operator writes there (`deployed_operator` checks). Workers are real
`python -m worker_runtime` processes (kwok pods run no containers). KEDA and HPA objects
rendered by `plan_autoscaling` are applied to the API server with the upstream CRDs the test
bed installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.operator import deployed_operator
from testbed.proc import stop as stop_process
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer, free_port
from testbed.wait import eventually
from tests.builders import condition
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.render.autoscaling import plan_autoscaling
from workerpool_operator.temporal.connections import Resolved, resolve_connection

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.scaling_app"
WAIT_S = 240.0  # generous: a shared 2-core machine; bounds a wait, never asserted on


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Every test here creates pools."""


def create_pool(
    cluster: KubeCluster, namespace: str, name: str, spec: dict[str, Any]
) -> api.TemporalWorkerPool:
    """Create the pool through the API (CRD validation applies)."""
    doc = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workflows": [f"{APP}:ShortWorkflow"], **spec},
    }
    cluster.apply(doc)
    return api.TemporalWorkerPool.from_body(cluster.get("twp", name, namespace=namespace))


def replicas(cluster: KubeCluster, ns: str, name: str) -> int:
    return int(cluster.get("deployment", name, namespace=ns)["spec"].get("replicas", 1))


def pool_status(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.get("twp", name, namespace=ns).get("status") or {})


def events(cluster: KubeCluster, ns: str, name: str) -> list[dict[str, Any]]:
    items = cluster.get("events", namespace=ns)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


@contextlib.contextmanager
def workers(server: TemporalDevServer, queue: str, n: int, logs: Path) -> Iterator[None]:
    """n real runtime processes, as the pool's pods would run them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWP_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        TWP_TEMPORAL_ADDRESS=server.address,
        TWP_TEMPORAL_NAMESPACE=server.namespace,
        TWP_TASK_QUEUE=queue,
        TWP_WORKFLOWS=f"{APP}:ShortWorkflow,{APP}:WaitForSignalWorkflow",
        TWP_ACTIVITIES=f"{APP}:short_work",
        TWP_LOG_FORMAT="text",
        TWP_GRACEFUL_SHUTDOWN_SECONDS="2",
    )
    procs = []
    for i in range(n):
        with (logs / f"worker-{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "worker_runtime"],
                    env={**env, "TWP_METRICS_PORT": str(free_port())},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            stop_process(p, grace_s=60, group=True)


async def test_builtin_scales_on_backlog_guards_zero_and_holds_through_outage(
    kube_cluster: KubeCluster,
    namespace: str,
    temporal: TemporalDevServer,
    tmp_path: Path,
) -> None:
    queue = f"as-{uuid.uuid4().hex[:8]}"
    name = "orders"
    create_pool(
        kube_cluster,
        namespace,
        name,
        {
            "connection": {"address": temporal.address, "namespace": temporal.namespace},
            "taskQueue": queue,
            "autoscaling": {
                "engine": "Builtin",
                "minReplicas": 0,
                "maxReplicas": 5,
                "targetBacklogPerReplica": 2,
                "pollIntervalSeconds": 1,
                "scaleDownStabilizationSeconds": 10,
            },
        },
    )
    async with deployed_operator(kube_cluster, namespace, tmp_path):
        # an idle queue: down to zero once the window has passed
        await eventually(
            lambda: replicas(kube_cluster, namespace, name) == 0, "idle pool scaled to 0"
        )
        ready = condition(kube_cluster, namespace, name, "AutoscalingReady")
        assert (ready["status"], ready["reason"]) == ("True", "BacklogPolled")
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name, "Ready").get("reason") == "ScaledToZero"
            ),
            "Ready True with reason ScaledToZero",
        )
        assert condition(kube_cluster, namespace, name, "Ready")["status"] == "True"

        # 10 workflows nobody polls: ceil(10 / 2) = 5 replicas
        client = await Client.connect(temporal.address, namespace=temporal.namespace)
        waiter = await client.start_workflow(
            "WaitForSignalWorkflow", id=f"{queue}-wait", task_queue=queue
        )
        for i in range(9):
            await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-{i}", task_queue=queue)
        await eventually(
            lambda: replicas(kube_cluster, namespace, name) == 5, "scale-up to 5 on backlog 10"
        )
        # out of ScaledToZero: kwok makes the 5 pods ready
        await eventually(
            lambda: condition(kube_cluster, namespace, name, "Ready").get("reason") == "Available",
            "Ready back to Available at 5 replicas",
        )
        status = pool_status(kube_cluster, namespace, name)
        assert status["desiredReplicas"] == 5
        assert status["backlog"]["count"] >= 9
        assert "observedAt" in status["backlog"]
        assert "lastScaleTime" in status
        scaled_up = [e for e in events(kube_cluster, namespace, name) if e["reason"] == "ScaledUp"]
        assert any("-> 5" in e["message"] and "backlog" in e["message"] for e in scaled_up)

        with workers(temporal, queue, 2, tmp_path):
            # workers drain the short workflows; one workflow keeps running: 1 replica, not 0
            def guarded() -> bool:
                msg = condition(kube_cluster, namespace, name, "AutoscalingReady").get("message")
                return (
                    replicas(kube_cluster, namespace, name) == 1
                    and "not scaling to 0" in (msg or "")
                    and "workflows running" in (msg or "")
                )

            await eventually(guarded, "drained pool held at 1 by the running workflow")

            # Temporal goes away: replicas are held and the conditions say why
            await asyncio.to_thread(temporal.stop)
            await eventually(
                lambda: (
                    condition(kube_cluster, namespace, name, "BacklogAvailable").get("reason")
                    == "TemporalUnavailable"
                ),
                "BacklogAvailable=False/TemporalUnavailable",
            )
            assert replicas(kube_cluster, namespace, name) == 1
            ready = condition(kube_cluster, namespace, name, "AutoscalingReady")
            assert (ready["status"], ready["reason"]) == ("False", "TemporalUnavailable")
            assert "holding 1" in ready["message"]

            # back: polling recovers by itself
            await asyncio.to_thread(temporal.start)
            await eventually(
                lambda: (
                    condition(kube_cluster, namespace, name, "BacklogAvailable").get("status")
                    == "True"
                ),
                "BacklogAvailable=True after the restart",
            )

            # the last workflow ends: now the pool is idle and may go to zero
            client = await Client.connect(temporal.address, namespace=temporal.namespace)
            await client.get_workflow_handle(waiter.id).terminate("test done")
            await eventually(
                lambda: replicas(kube_cluster, namespace, name) == 0, "idle pool scaled to 0"
            )
        reasons = {e["reason"] for e in events(kube_cluster, namespace, name)}
        assert {"ScaledUp", "ScaledDown"} <= reasons


async def test_gpu_pool_does_not_pile_up_pending_pods(
    kube_cluster: KubeCluster, namespace: str, temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    queue = f"gpu-{uuid.uuid4().hex[:8]}"
    name = "llm"
    create_pool(
        kube_cluster,
        namespace,
        name,
        {
            "connection": {"address": temporal_server.address},
            "taskQueue": queue,
            # 9 GPUs per pod: more than any test-bed GPU node has (8), so every pod stays
            # Pending whatever other tests run on the shared cluster
            "gpu": {"count": 9},
            "autoscaling": {
                "engine": "Builtin",
                "minReplicas": 1,
                "maxReplicas": 8,
                "targetBacklogPerReplica": 1,
                "scaleDownStabilizationSeconds": 600,
            },
        },
    )
    client = await Client.connect(temporal_server.address)

    async with deployed_operator(kube_cluster, namespace, tmp_path):
        for i in range(3):
            await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-{i}", task_queue=queue)
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name, "GPUCapacityAvailable").get("reason")
                == "InsufficientGPU"
            ),
            "GPUCapacityAvailable=False/InsufficientGPU",
        )
        gpu = condition(kube_cluster, namespace, name, "GPUCapacityAvailable")
        assert gpu["status"] == "False"
        assert "nvidia.com/gpu" in gpu["message"]
        held = replicas(kube_cluster, namespace, name)

        # much more backlog: the scaler would want 8, but pods already wait for GPUs
        for i in range(3, 8):
            await client.start_workflow("ShortWorkflow", 1.0, id=f"{queue}-{i}", task_queue=queue)
        await eventually(
            lambda: (
                "capped at"
                in condition(kube_cluster, namespace, name, "AutoscalingReady").get("message", "")
                and "wants 8"
                in condition(kube_cluster, namespace, name, "AutoscalingReady").get("message", "")
            ),
            "scale-up capped by GPU capacity",
            state=lambda: (
                replicas(kube_cluster, namespace, name),
                pool_status(kube_cluster, namespace, name),
            ),
        )
        assert replicas(kube_cluster, namespace, name) == held


def contains(want: Any, have: Any) -> bool:
    """Every field we rendered is in the stored object (the server may add defaults)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contains(v, have[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(contains(w, h) for w, h in zip(want, have, strict=True))
        )
    return bool(want == have)


def test_keda_and_hpa_objects_are_accepted_by_the_api_server(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    assert kube_cluster.exists("crd", "scaledobjects.keda.sh"), "test bed installs KEDA's CRDs"
    connections = {  # the credentials live in TemporalConnections since 0.3
        "keda-cloud": {
            "address": "prod.a1b2c.tmprl.cloud:7233",
            "namespace": "prod.a1b2c",
            "tls": {},
            "apiKeySecretRef": {"name": "temporal-cloud"},
        },
        "keda-mtls": {"address": "temporal:7233", "tls": {"secretName": "temporal-mtls"}},
    }
    cases = {
        "keda-cloud": {
            "connectionRef": {"name": "keda-cloud"},
            "autoscaling": {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 20},
        },
        "keda-mtls": {
            "connectionRef": {"name": "keda-mtls"},
            "autoscaling": {"engine": "KEDA", "activationBacklog": 3},
        },
        "hpa": {
            "connection": {"address": "temporal:7233"},
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
            "autoscaling": {"engine": "HPA", "cpuUtilization": 70, "memoryUtilization": 80},
        },
    }
    for name, conn in connections.items():
        kube_cluster.apply(
            {"apiVersion": api.API_VERSION, "kind": api.CONNECTION_KIND,
             "metadata": {"name": name, "namespace": namespace}, "spec": conn}
        )  # fmt: skip
    for name, spec in cases.items():
        pool = create_pool(kube_cluster, namespace, name, {"taskQueue": name, **spec})
        if name in connections:  # what the planner renders from: the resolved connection
            cached = kube_cluster.get("temporalconnection", name, namespace=namespace)
            resolved = resolve_connection(
                pool, connection=cached, namespace_labels={}, credentials_namespace=""
            )
            assert isinstance(resolved, Resolved), resolved
            pool = resolved.pool
        plan = plan_autoscaling(pool, keda_installed=True)
        assert plan.children
        for child in plan.children:
            kube_cluster.apply(child, server_side=True)  # raises on a schema rejection
            live = kube_cluster.get(child["kind"].lower(), name, namespace=namespace)
            assert contains(child["spec"], live["spec"])  # stored as rendered, nothing pruned

    so = kube_cluster.get("scaledobject", "keda-cloud", namespace=namespace)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    assert trigger["metadata"]["taskQueue"] == "keda-cloud"
    auth = kube_cluster.get("triggerauthentication", "keda-mtls", namespace=namespace)
    params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]}
    assert params == {"ca", "cert", "key"}
    hpa = kube_cluster.get("hpa", "hpa", namespace=namespace)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
