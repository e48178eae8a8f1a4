"""Per-version Builtin scaling of a versioned pool during a ramp, with real workers (issue 19).

Real kube-apiserver (kwok nodes), the operator process scoped to the test's namespace and the
real Temporal dev server with Worker Versioning settings lowered. kwok pods run no code: real
`python -m worker_runtime` processes play each build's workers, with that build Deployment's
own worker settings (testbed/builds.py while the builds register; then processes started here,
several for one build, so that several of its workers can be busy at once).

1. Build 1 current, build 2 ramping at 50 %, then no worker polls: 30 workflows started on the
   queue wait in the two versions' backlogs (Temporal splits them by the ramp). Each build is
   sized on its share of the backlog-derived total, about 15 tasks at 5 per replica = 3
   replicas each, whatever its own part of the split.
2. Workers come back: three processes of build 1 with one activity slot each, one of build 2.
   Three `Hold` workflows pinned to build 1 keep its three workers busy while both backlogs fall
   to 0: build 2 (idle) is scaled down to the ramping floor of 1, build 1 is held at 3 (its busy
   workers, from their heartbeats), not 1 (the zero guard alone).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import PinnedVersioningOverride, WorkerDeploymentVersion

from testbed.builds import BUILD_SETTINGS, BuildWorkers
from testbed.cluster import kubectl
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.runtime import runtime_env
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import pool_status as status
from workerpool_operator.api.v1alpha1 import API_VERSION
from workerpool_operator.names import POOL_LABEL
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

APP = "tests.runtime.versioned_hold"
HOLD_SECONDS = 600.0


def pool(name: str, queue: str, server: TemporalDevServer, release: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name},
        "spec": {
            "connection": {"address": server.address, "namespace": server.namespace},
            "taskQueue": queue,
            "workflows": [f"{APP}:Hold", f"{APP}:Smoke"],
            "activities": [f"{APP}:ACTIVITIES"],
            "env": [{"name": "RELEASE", "value": release}],
            "autoscaling": {
                "engine": "Builtin",
                "minReplicas": 0,
                "maxReplicas": 10,
                "targetBacklogPerReplica": 5,
                "pollIntervalSeconds": 5,
                "scaleDownStabilizationSeconds": 20,
            },
            "versioning": {
                "defaultBehavior": "Pinned",
                "strategy": "Progressive",
                "steps": [{"rampPercentage": 50, "pauseSeconds": 3600}],
            },
        },
    }


def build_deployments(kubeconfig: str, ns: str, name: str) -> dict[str, dict[str, Any]]:
    out = kubectl(kubeconfig, "get", "deployments", "-n", ns, "-o", "json",
                  "-l", f"{POOL_LABEL}={name},{BUILD_ID_LABEL}")  # fmt: skip
    return {d["metadata"]["labels"][BUILD_ID_LABEL]: d for d in json.loads(out.stdout)["items"]}


def worker(dep: dict[str, Any], server: TemporalDevServer, log: Path) -> subprocess.Popen[bytes]:
    """One runtime process with the build Deployment's worker settings, one activity slot."""
    container = next(c for c in dep["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "worker")  # fmt: skip
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    settings = {k: env[k] for k in BUILD_SETTINGS if k in env}
    workflows, activities = settings.pop("TWP_WORKFLOWS", ""), settings.pop("TWP_ACTIVITIES", "")
    full = runtime_env(server, env["TWP_TASK_QUEUE"], workflows, activities, **settings,
                       TWP_MAX_CONCURRENT_ACTIVITIES="1")  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "worker_runtime"], env=full, stdout=log.open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


async def test_builtin_scales_each_version_to_its_share_and_keeps_busy_workers(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    ns, name = namespace, "ramped"
    queue = f"vscale-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    kubeconfig = kube_cluster.kubeconfig
    op = OperatorProcess(kubeconfig, "vscale", "-n", ns, "--cluster-name", "e2e",
                         log_dir=tmp_path, env={"POD_NAMESPACE": ns})  # fmt: skip
    workers = BuildWorkers(kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)
    procs: list[subprocess.Popen[bytes]] = []
    holds: list[str] = []

    def replicas() -> dict[str, int]:
        return {b: int(d["spec"].get("replicas") or 0)
                for b, d in build_deployments(kubeconfig, ns, name).items()}  # fmt: skip

    def decided() -> dict[str, dict[str, Any]]:
        return {
            e["buildId"]: e for e in status(kube_cluster, ns, name).get("versionReplicas") or []
        }

    def state() -> str:
        st = status(kube_cluster, ns, name)
        keep = ("currentBuildId", "targetBuildId", "rampPercentage", "versionReplicas",
                "desiredReplicas", "conditions")  # fmt: skip
        log = op.log_path.read_text(errors="replace")[-3000:]
        return (
            json.dumps({k: st.get(k) for k in keep}, indent=1) + f"\nreplicas {replicas()}\n" + log
        )

    try:
        kube_cluster.apply([pool(name, queue, server, "1")], namespace=ns)
        v1 = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            == st.get("targetBuildId") and st.get("currentBuildId"),
            "build 1 current", state,
        )  # fmt: skip
        kube_cluster.apply([pool(name, queue, server, "2")], namespace=ns)
        ramping = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 50
            and st.get("currentBuildId") == v1 and st,
            "build 2 ramping at 50 %", state,
        )  # fmt: skip
        v2 = ramping["targetBuildId"]
        workers.close()  # no worker polls from here: the backlogs build up

        # 1. 30 workflows split between the versions by the ramp; each sized on its share.
        for i in range(30):
            await client.start_workflow("Smoke", id=f"{queue}-smoke-{i}", task_queue=queue)

        def split() -> dict[str, int] | None:
            """Each build's replicas when both decided on the same half of the total (Temporal's
            approximate count may say a task or two more than the 30 started) and their
            Deployments follow; None before."""
            d = decided()
            if set(d) != {v1, v2} or d[v1].get("backlog") != d[v2].get("backlog"):
                return None
            half = int(d[v1]["backlog"])
            want = {v1: -(-half // 5), v2: -(-half // 5)}
            ok = half >= 15 and {b: e["desiredReplicas"] for b, e in d.items()} == want
            return want if ok and replicas() == want else None

        want = await eventually(split, "each build at its half of ceil(backlog / 5)", state)
        assert want[v1] >= 3
        assert status(kube_cluster, ns, name)["desiredReplicas"] == 2 * want[v1]

        # 2. Three workers of build 1 busy with pinned Hold activities, none of build 2.
        deps = build_deployments(kubeconfig, ns, name)
        version = WorkerDeploymentVersion(deployment_name=f"{ns}/{name}", build_id=v1)
        for i in range(3):
            holds.append(f"{queue}-hold-{i}")
            await client.start_workflow(
                "Hold", HOLD_SECONDS, id=holds[-1], task_queue=queue,
                versioning_override=PinnedVersioningOverride(version),
            )  # fmt: skip
        procs += [worker(deps[v1], server, tmp_path / f"worker-{i}.log") for i in range(3)]
        procs.append(worker(deps[v2], server, tmp_path / "worker-v2.log"))
        await eventually(
            lambda: replicas().get(v2) == 1 and decided()[v2]["desiredReplicas"] == 1,
            "build 2 (idle, no backlog) scaled down to the ramping floor of 1", state,
        )  # fmt: skip
        # Build 1's backlog is 0 too and its window has passed as well: its three busy workers
        # hold it at 3 (the zero guard alone would keep 1).
        assert replicas()[v1] == 3, state()
        assert decided()[v1]["desiredReplicas"] == 3, state()
        assert "3 workers running tasks" in state()
        assert op.tracebacks() == 0
    finally:
        for wid in holds:
            with contextlib.suppress(Exception):  # clean-up: one that already ended is fine
                await client.get_workflow_handle(wid).terminate()
        for proc in procs:
            proc.kill()
            proc.wait(30)
        workers.close()
        op.stop()
