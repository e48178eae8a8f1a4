"""Versioned rollouts through the operator process, with real workers polling.

Real kube-apiserver (kwok nodes), the operator as deployed (`python -m workerpool_operator`,
scoped to the test's namespace) and the real Temporal dev server, with Worker Versioning's
drainage and poller TTLs lowered (testbed.temporal.VERSIONING_DYNAMIC_CONFIG) so a rollout takes
seconds. kwok pods run no code, so the test runs one real `python -m worker_runtime` process for
each build Deployment the operator keeps above 0 replicas, with that Deployment's own worker
settings (workflows, activities, Worker Deployment name, build ID, default behavior), and stops
it when the operator scales the build to 0 or deletes it (`BuildWorkers`).

The two builds run tests/runtime/versioned_v1.py and versioned_v2.py, deliberately
replay-incompatible: a v1 workflow that moved to v2 would fail with a non-determinism error.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.runtime import runtime_env
from testbed.temporal import VERSIONING_DYNAMIC_CONFIG, TemporalDevServer
from testbed.wait import eventually
from tests.builders import condition
from tests.runtime.helpers import RuntimeProcess
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.execute import observe

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

V1 = "tests.runtime.versioned_v1"
V2 = "tests.runtime.versioned_v2"
# Settings a build's Deployment hands its workers that the test's processes take over as-is.
BUILD_SETTINGS = (
    "TWP_WORKFLOWS",
    "TWP_ACTIVITIES",
    "TWP_WORKER_DEPLOYMENT_NAME",
    "TWP_WORKER_BUILD_ID",
    "TWP_DEFAULT_VERSIONING_BEHAVIOR",
)


@pytest.fixture(scope="module")
def versioning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A dev server of its own: the lowered versioning settings must not leak into others."""
    srv = TemporalDevServer(
        Path(tmp_path_factory.mktemp("temporal-versioning-e2e")),
        dynamic_config=VERSIONING_DYNAMIC_CONFIG,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class BuildWorkers:
    """One runtime process per build Deployment of a pool that the operator keeps above 0."""

    def __init__(
        self, cluster: KubeCluster, ns: str, pool: str, server: TemporalDevServer, logs: Path
    ) -> None:
        self.cluster, self.ns, self.pool, self.server, self.logs = cluster, ns, pool, server, logs
        self.procs: dict[str, RuntimeProcess] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def deployments(self) -> list[dict[str, Any]]:
        listed = self.cluster.get(
            "deployments", namespace=self.ns, selector=f"workerpools.io/pool={self.pool}"
        )
        return [d for d in listed["items"] if BUILD_ID_LABEL in d["metadata"]["labels"]]

    def _sync(self) -> None:
        wanted: dict[str, dict[str, str]] = {}
        for dep in self.deployments():
            if not dep["spec"].get("replicas") or dep["metadata"].get("deletionTimestamp"):
                continue
            (container,) = [c for c in dep["spec"]["template"]["spec"]["containers"]
                            if c["name"] == "worker"]  # fmt: skip
            env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
            wanted[dep["metadata"]["labels"][BUILD_ID_LABEL]] = env
        for build, env in wanted.items():
            if build not in self.procs:
                settings = {k: env[k] for k in BUILD_SETTINGS if k in env}
                full = runtime_env(self.server, env["TWP_TASK_QUEUE"], settings.pop(
                    "TWP_WORKFLOWS"), settings.pop("TWP_ACTIVITIES", ""), **settings)  # fmt: skip
                self.procs[build] = RuntimeProcess(full, self.logs / f"worker-{build}.log")
                self.started.append(build)
        for build in [b for b in self.procs if b not in wanted]:
            self.procs.pop(build).kill()
            self.stopped.append(build)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._sync()
            except Exception:  # the API server may be busy: next round
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for proc in self.procs.values():
            proc.kill()


def versioned_pool(name: str, queue: str, server: TemporalDevServer, app: str,
                   **versioning: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name},
        "spec": {
            "connection": {"address": server.address, "namespace": server.namespace},
            "taskQueue": queue,
            "replicas": 1,
            "workflows": [f"{app}:OrderFlow", f"{app}:Smoke"],
            "activities": [f"{app}:ACTIVITIES"],
            "versioning": {"defaultBehavior": "Pinned", **versioning},
        },
    }


def status(cluster: KubeCluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.get("temporalworkerpool", name, namespace=ns).get("status") or {})


def events(cluster: KubeCluster, ns: str, name: str) -> list[str]:
    listed = cluster.get("events", namespace=ns)
    return [e["reason"] for e in listed["items"]
            if e["involvedObject"].get("name") == name]  # fmt: skip


async def nondeterminism(handle: WorkflowHandle[Any, Any]) -> int:
    """Workflow-task failures in the history (a non-determinism error shows up as one)."""
    failed = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed += 1
    return failed


async def test_progressive_rollout_pinned_drain_rollback_and_sunset(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    ns, name = namespace, "orders"
    queue = f"ver-{uuid.uuid4().hex[:8]}"
    server = versioning_server
    rollout = {
        "strategy": "Progressive",
        "steps": [{"rampPercentage": 50, "pauseSeconds": 6}],
        "sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 2},
    }
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    workers = BuildWorkers(kube_cluster, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)
    seen: list[dict[str, Any]] = []

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        seen.append(st)
        temporal = await observe(client, f"{ns}/{name}")
        return f"temporal: {temporal}\n" + json.dumps(
            {k: st.get(k) for k in ("currentBuildId", "targetBuildId", "rampPercentage",
                                    "versions", "conditions")}, indent=1)[-3000:] + (
            f"\nworkers started {workers.started} stopped {workers.stopped}\n"
            + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    def current() -> str | None:
        st = status(kube_cluster, ns, name)
        seen.append(st)
        return st.get("currentBuildId") if st.get("currentBuildId") == st.get(
            "targetBuildId") else None  # fmt: skip

    try:
        # v1 from nothing: no unversioned worker to ramp from, so it becomes current at once.
        kube_cluster.apply([versioned_pool(name, queue, server, V1, **rollout)], namespace=ns)
        v1 = await eventually(current, "build 1 current", state)
        await eventually(
            lambda: condition(kube_cluster, ns, name, "Ready").get("status") == "True",
            "Ready once build 1 is current and available", state,
        )  # fmt: skip
        # Long-running workflows pinned to v1 (they wait for a signal).
        pinned = []
        for i in range(3):
            pinned.append(
                await client.start_workflow(
                    "OrderFlow", f"old-{i}", id=f"{queue}-old-{i}", task_queue=queue
                )
            )

        # v2: an incompatible build. It ramps to 50 % (held for the step's pause), then current.
        kube_cluster.apply([versioned_pool(name, queue, server, V2, **rollout)], namespace=ns)
        ramping = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 50
            and st.get("currentBuildId") == v1 and st,
            "build 2 ramping at 50 % while build 1 stays current", state,
        )  # fmt: skip
        v2 = ramping["targetBuildId"]
        assert v2 != v1
        ramp_seen = time.monotonic()
        await eventually(lambda: current() == v2, "build 2 current after the step", state)
        assert time.monotonic() - ramp_seen >= 3, "the step's pause was not honoured"
        assert condition(kube_cluster, ns, name, "VersionRollout")["reason"] in (
            "Promoted", "TargetCurrent")  # fmt: skip

        # New work runs on v2; v1's pinned workflows stay on v1 (v1's Deployment kept up).
        fresh = await client.execute_workflow("OrderFlow", "new", id=f"{queue}-new",
                                              task_queue=queue, start_signal="finish")  # fmt: skip
        assert fresh == "v2:new"
        versions = {v["buildId"]: v for v in status(kube_cluster, ns, name)["versions"]}
        assert versions[v1]["state"] == "Draining"
        assert versions[v1]["openPinnedWorkflows"] == 3
        assert v1 in workers.procs, "a build with open pinned work was scaled down"

        # git revert: the spec asks for v1 again, current within the rollback window -> at once,
        # no step, no pause. Then forward again to v2 the same way.
        kube_cluster.apply([versioned_pool(name, queue, server, V1, **rollout)], namespace=ns)
        await eventually(lambda: current() == v1, "rolled back to build 1", state)
        assert condition(kube_cluster, ns, name, "VersionRollout")["reason"] in (
            "RolledBack", "TargetCurrent")  # fmt: skip
        await eventually(lambda: "RolledBack" in events(kube_cluster, ns, name),
                         "a RolledBack Event", state)  # fmt: skip
        kube_cluster.apply([versioned_pool(name, queue, server, V2, **rollout)], namespace=ns)
        await eventually(lambda: current() == v2, "build 2 current again", state)

        # The pinned v1 workflows finish on v1, with no workflow-task failure anywhere.
        for handle in pinned:
            await handle.signal("finish")
        results = [await handle.result() for handle in pinned]
        assert results == [f"v1:old-{i}" for i in range(3)]
        for handle in [*pinned, client.get_workflow_handle(f"{queue}-new")]:
            assert await nondeterminism(handle) == 0

        # v1 drains (exact count 0): scaled to 0, its Deployment deleted, its version removed.
        await eventually(lambda: v1 in workers.stopped, "build 1 scaled to 0", state)
        await eventually(
            lambda: not [d for d in workers.deployments()
                         if d["metadata"]["labels"][BUILD_ID_LABEL] == v1],
            "build 1's Deployment deleted", state,
        )  # fmt: skip
        await eventually(
            lambda: v1 not in {v["buildId"] for v in status(kube_cluster, ns, name)["versions"]},
            "build 1's Temporal version deleted", state,
        )  # fmt: skip
        reasons = events(kube_cluster, ns, name)
        assert {"Ramping", "Promoted", "VersionRetired"} <= set(reasons), reasons
        assert op.tracebacks() == 0
    finally:
        workers.close()
        op.stop()
