"""A versioned KEDA pool through a rollout (issue 19): one ScaledObject per live build, with a
real KEDA (hack/build-keda.sh, testbed/keda.py) scaling each build's Deployment on its own
Worker Deployment Version's backlog, and real workers polling.

The operator as deployed (`deployed_operator`: scoped to the test's namespace, field managers
of its own), KEDA's operator and metrics API server aggregated by the bed's kube-apiserver (the
bed's real kube-controller-manager runs the HPA that KEDA creates), and the Temporal dev server
with versioning's drainage and poller TTLs lowered. kwok pods run no code, so testbed/builds.py runs
one real runtime process per build Deployment above 0 replicas and stops it at 0.

The story: build 1 is current with three pinned workflows waiting for a signal; build 2 is
rolled out (AllAtOnce). Build 2's ScaledObject appears with its build ID; build 1 drains with a
backlog of 0 and keeps its worker (minReplicaCount 1 while its exact pinned count is open);
build 2 is scaled to 0 by KEDA, then taken up again from a real backlog of new workflows on its
version, held there (its new pods get no worker, as Pending pods would): KEDA activates it
0 -> 1 and its HPA takes it 1 -> 4 on that version's backlog, while build 1 stays at 1; then
its worker runs them. Once build 1's pinned workflows finish, its ScaledObject goes and the
build is retired.

Missing KEDA binaries skip locally and fail under CI=true (make setup builds them).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.builds import BuildWorkers
from testbed.operator import deployed_operator
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import autoscaled_versioned_pool
from tests.builders import pool_status as status
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

V1 = "tests.runtime.versioned_v1"
V2 = "tests.runtime.versioned_v2"
MAX, PER_REPLICA, NEW = 4, 2, 8  # 8 new workflows at 2 per replica: 4 replicas


async def test_keda_scaled_object_per_build_through_a_rollout_from_real_backlog(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    keda: Any,
    tmp_path: Path,
) -> None:
    ns, name = namespace, "orders"
    queue = f"vkeda-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"

    def pool(app: str) -> dict[str, Any]:
        return autoscaled_versioned_pool(
            name, queue, server, app,
            {"engine": "KEDA", "minReplicas": 0, "maxReplicas": MAX,
             "targetBacklogPerReplica": PER_REPLICA, "pollIntervalSeconds": 2,
             # KEDA's cooldown before the last replica goes
             "scaleDownStabilizationSeconds": 20},
        )  # fmt: skip

    workers = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    def scaled_objects() -> dict[str, dict[str, Any]]:
        """The pool's ScaledObjects by the build ID in their trigger."""
        listed = kube_cluster.get("scaledobjects", namespace=ns)["items"]
        return {
            so["spec"]["triggers"][0]["metadata"].get("workerDeploymentBuildId", ""): so
            for so in listed
        }

    def build_replicas(build: str) -> int | None:
        for dep in workers.deployments():
            if dep["metadata"]["labels"][BUILD_ID_LABEL] == build:
                return int(dep["spec"].get("replicas", 1))
        return None

    def state() -> str:
        st = status(kube_cluster, ns, name)
        sos = {b: (so["spec"].get("minReplicaCount"), so.get("status", {}).get("conditions"))
               for b, so in scaled_objects().items()}  # fmt: skip
        deps = {d["metadata"]["name"]: d["spec"].get("replicas") for d in workers.deployments()}
        return (
            json.dumps({k: st.get(k) for k in ("currentBuildId", "targetBuildId", "versions")},
                       indent=1)[-2500:]
            + f"\nScaledObjects {sos}\nDeployments {deps}\nworkers {sorted(workers.running())}"
            + f"\n{keda.logs()[-3000:]}\n" + op.log_path.read_text(errors="replace")[-3000:]
        )  # fmt: skip

    def current() -> str | None:
        st = status(kube_cluster, ns, name)
        same = st.get("currentBuildId") == st.get("targetBuildId")
        return str(st["currentBuildId"]) if same and st.get("currentBuildId") else None

    try:
        async with deployed_operator(kube_cluster, ns, tmp_path, "--cluster-name", "e2e") as op:
            kube_cluster.apply([pool(V1)], namespace=ns)
            v1 = await eventually(current, "build 1 current", state)
            # Its ScaledObject names its Worker Deployment Version and targets its Deployment.
            so1 = await eventually(
                lambda: scaled_objects().get(v1), "build 1's ScaledObject", state
            )
            meta = so1["spec"]["triggers"][0]["metadata"]
            assert (meta["workerDeploymentName"], meta["taskQueue"]) == (deployment, queue)
            assert so1["spec"]["scaleTargetRef"]["name"] == so1["metadata"]["name"]
            assert build_replicas(v1) is not None
            assert not kube_cluster.exists("scaledobject", name, namespace=ns)  # none pool-wide

            # Three workflows pinned to build 1, waiting for a signal: work, but no backlog. A
            # workflow is pinned by its first workflow task on a build-1 worker; KEDA may have
            # scaled build 1 to 0 (current, minReplicas 0), and then brings it back on that backlog.
            pinned = [
                await client.start_workflow(
                    "OrderFlow", f"old-{i}", id=f"{queue}-old-{i}", task_queue=queue
                )
                for i in range(3)
            ]

            def open_pinned(build: str) -> int | None:
                for v in status(kube_cluster, ns, name).get("versions") or []:
                    if v["buildId"] == build and v.get("openPinnedWorkflows") is not None:
                        return int(v["openPinnedWorkflows"])
                return None

            await eventually(lambda: open_pinned(v1) == 3, "3 workflows pinned to build 1", state)

            # Build 2: its own ScaledObject, with its build ID, while build 1's stays.
            kube_cluster.apply([pool(V2)], namespace=ns)
            v2 = await eventually(lambda: (c := current()) != v1 and c, "build 2 current", state)
            so2 = await eventually(
                lambda: scaled_objects().get(v2), "build 2's ScaledObject", state
            )
            assert so2["spec"]["triggers"][0]["metadata"]["workerDeploymentBuildId"] == v2
            assert so2["metadata"]["name"] != so1["metadata"]["name"]

            # Build 1 drains: the exact count says 3 pinned workflows are open, so its
            # ScaledObject keeps a worker although its backlog is 0.
            drain = await eventually(
                lambda: (so := scaled_objects().get(v1)) is not None
                and so["spec"]["minReplicaCount"] == 1 and so,
                "build 1's ScaledObject at minReplicaCount 1 while it drains", state,
            )  # fmt: skip
            assert drain["spec"]["scaleTargetRef"]["name"] == so1["metadata"]["name"]
            await eventually(lambda: (build_replicas(v1) or 0) >= 1, "build 1 kept up", state)

            # Build 2 is current with minReplicas 0 and no backlog: KEDA takes it to 0, and its
            # worker stops. Build 1 keeps its worker for the pinned work.
            await eventually(lambda: build_replicas(v2) == 0, "KEDA scales build 2 to 0", state)
            await eventually(lambda: v2 not in workers.running(), "build 2's worker stopped", state)
            assert (build_replicas(v1) or 0) >= 1, "a draining build was scaled down"
            assert v1 in workers.running()

            # Real backlog on build 2's version: eight new workflows, which only a build-2 worker
            # may take (new work goes to the current build). Build 2's pods get no worker yet
            # (as Pending pods on a full node), so the backlog stays: KEDA's scaler reads that
            # version's backlog and activates build 2's Deployment 0 -> 1, then the HPA KEDA
            # made for it takes it 1 -> 4 (8 tasks at 2 per replica) on the same metric. Build
            # 1, draining with no backlog of its own, stays at 1.
            before = workers.started.get(v2, 0.0)
            workers.hold_new = True
            for i in range(NEW):
                await client.start_workflow("Smoke", id=f"{queue}-new-{i}", task_queue=queue)
            seen: list[int | None] = []

            def sized() -> bool:
                seen.append(build_replicas(v2))
                return seen[-1] == MAX and build_replicas(v1) == 1

            await eventually(sized, f"KEDA and its HPA scale build 2 0 -> 1 -> {MAX} on its "
                             "version's backlog, build 1 at 1", state)  # fmt: skip
            assert workers.started.get(v2, 0.0) == before, "the backlog was not held"
            hpa = kube_cluster.get("hpa", f"keda-hpa-{so2['metadata']['name']}", namespace=ns)
            assert hpa["status"]["desiredReplicas"] == MAX, (hpa["status"], seen)
            # Build 2's worker comes: it runs the eight workflows, so KEDA's backlog was theirs.
            workers.hold_new = False
            await eventually(lambda: workers.started.get(v2, 0.0) > before,
                             "build 2's worker started", state)  # fmt: skip
            for i in range(NEW):
                assert await client.get_workflow_handle(f"{queue}-new-{i}").result() == "ok"
            # The HPA KEDA made for build 2 scales on that version's own metric (deployment name and
            # build ID in its name), so the two builds' HPAs never read each other's backlog.
            metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
            assert metric.endswith(v2.replace(".", "-")), metric
            assert (build_replicas(v1) or 0) >= 1, "a draining build was scaled down"

            # The pinned workflows finish on build 1; then its ScaledObject goes and it retires.
            for handle in pinned:
                await handle.signal("finish")
            assert [await h.result() for h in pinned] == [f"v1:old-{i}" for i in range(3)]
            await eventually(lambda: v1 not in scaled_objects(), "build 1's ScaledObject removed",
                             state)  # fmt: skip
            await eventually(lambda: build_replicas(v1) is None, "build 1's Deployment retired",
                             state)  # fmt: skip
            assert v2 in scaled_objects()
            assert op.tracebacks() == 0
    finally:
        workers.close()
