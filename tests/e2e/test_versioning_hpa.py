"""A versioned HPA pool through a rollout (issue 19): one HorizontalPodAutoscaler per live
build, created with the build and removed when it retires, each scaling its own build's
Deployment on that build's pods' CPU utilization, with real workers polling.

The operator as deployed (`python -m workerpool_operator`, scoped to the test's namespace), the
bed's real kube-controller-manager (HPA controller) reading `metrics.k8s.io` from a real
metrics-server (as in tests/e2e/test_hpa.py), and the Temporal dev server with versioning's
drainage and poller TTLs lowered. kwok pods run no code, so two things are played for them:
testbed/builds.py runs one real runtime process per build Deployment above 0 replicas (the
workers that register the build, take its work and its pinned workflows), and kwok simulates
the pods' CPU from a ClusterResourceUsage whose expression picks the busy build by the pods'
build-ID label (the load: a fake for what kwok pods cannot do, said so here).

The story: build 1 is current with its own HPA; its pods get busy and its HPA takes it 1 -> 3.
Two workflows are pinned to build 1, waiting for a signal; build 2 is rolled out (AllAtOnce)
and gets its own HPA on its own Deployment, while build 1 drains and keeps its HPA. Build 2's
pods get busy and build 1's go idle: build 2's HPA takes it 1 -> 3 while build 1's takes it
back to 1 (its floor while pinned work is open). The pinned workflows finish on build 1; then
its HPA goes and the build retires, and build 2's HPA stays.

Missing metrics-server skips locally and fails under CI=true (make setup builds it).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed import metrics_server as msbed
from testbed.builds import BuildWorkers
from testbed.operator import deployed_operator
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import (
    autoscaled_versioned_pool,
    deployment_replicas,
    never_below,
    patch_spec,
    replicas_owners,
)
from tests.builders import pool_status as status
from workerpool_operator.names import MANAGERS
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

V1 = "tests.runtime.versioned_v1"
V2 = "tests.runtime.versioned_v2"
MIN, MAX = 1, 3
# 400m of a 200m request = 200 % against a 50 % target: ceil(n x 4) -> capped at MAX.
# 10m = 5 %: ceil(n x 0.1) = MIN.
REQUEST, BUSY, IDLE, TARGET = "200m", "400m", "10m", 50


async def test_builtin_to_hpa_hands_each_builds_replicas_over(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """A versioned Builtin pool runs its current build at 3 (its minReplicas); switching it to
    HPA applies that build's Deployment without replicas from then on. The operator hands the
    count to its handover manager first, so it is never reset to 1. This test runs before the
    module's metrics-server starts: the HPA has no metrics, so it does not act, and whatever
    the Deployment shows is the handover's doing (as test_trust.py does unversioned)."""
    kube, ns, name = kube_cluster, namespace, "switch"
    queue = f"vhpa-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    builtin = {"engine": "Builtin", "minReplicas": 3, "maxReplicas": 5}
    body = autoscaled_versioned_pool(name, queue, server, V1, builtin)
    # The requests are there from the start: they are part of the build (the pod template).
    body["spec"]["resources"] = {"requests": {"cpu": REQUEST, "memory": "100Mi"}}
    workers = BuildWorkers(kube.kubeconfig, ns, name, server, tmp_path)

    def current() -> str | None:
        st = status(kube, ns, name)
        same = st.get("currentBuildId") == st.get("targetBuildId")
        return str(st["currentBuildId"]) if same and st.get("currentBuildId") else None

    def build_deployment(build: str) -> str | None:
        for dep in workers.deployments():
            if dep["metadata"]["labels"][BUILD_ID_LABEL] == build:
                return str(dep["metadata"]["name"])
        return None

    def state() -> str:
        st = status(kube, ns, name)
        deps = {d["metadata"]["name"]: d["spec"].get("replicas") for d in workers.deployments()}
        return json.dumps({k: st.get(k) for k in ("currentBuildId", "versionReplicas")}) + (
            f"\nDeployments {deps}"
        )

    try:
        kube.apply([body], namespace=ns)
        async with deployed_operator(kube, ns, tmp_path) as op:
            build = await eventually(current, "the build current", state)
            dep = build_deployment(build)
            assert dep is not None
            await eventually(lambda: deployment_replicas(kube, ns, dep) == 3,
                             "Builtin keeps the build at its minReplicas 3", state)  # fmt: skip

            hpa = {"engine": "HPA", "minReplicas": 1, "maxReplicas": 5, "cpuUtilization": TARGET}
            patch_spec(kube, ns, name, {"autoscaling": hpa})
            await eventually(lambda: kube.exists("hpa", dep, namespace=ns), "the build's HPA",
                             state)  # fmt: skip
            assert current() == build, "the engine is not part of the build"
            await never_below(kube, ns, dep, 3, 10)
            owners = replicas_owners(kube, ns, dep)
            assert (op.manager(MANAGERS.handover), "Apply") in owners, owners
            assert (op.manager(MANAGERS.operator), "Apply") not in owners, owners
    finally:
        workers.close()


async def test_hpa_per_build_through_a_rollout_each_scaled_on_its_own_pods(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    metrics_server: msbed.MetricsServer,
    tmp_path: Path,
) -> None:
    kube, ns, name = kube_cluster, namespace, "orders"
    queue = f"vhpa-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server

    def pool(app: str) -> dict[str, Any]:
        body = autoscaled_versioned_pool(
            name, queue, server, app,
            {"engine": "HPA", "minReplicas": MIN, "maxReplicas": MAX, "cpuUtilization": TARGET,
             "scaleDownStabilizationSeconds": 0},
        )  # fmt: skip
        body["spec"]["resources"] = {"requests": {"cpu": REQUEST, "memory": "100Mi"}}
        return body

    def busy(build: str | None) -> None:
        """`build`'s pods use BUSY CPU, every other pod of the namespace IDLE."""
        by_label = None if build is None else (BUILD_ID_LABEL, {build: BUSY})
        msbed.set_usage(kube.kubeconfig, ns, cpu=IDLE, memory="50Mi", cpu_by_label=by_label)

    workers = BuildWorkers(kube.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    def hpas() -> dict[str, dict[str, Any]]:
        """The pool's HPAs by their build-ID label ("" for a pool-wide one)."""
        listed = kube.get("hpa", namespace=ns)["items"]
        return {h["metadata"].get("labels", {}).get(BUILD_ID_LABEL, ""): h for h in listed}

    def deployments() -> dict[str, dict[str, Any]]:
        return {d["metadata"]["labels"][BUILD_ID_LABEL]: d for d in workers.deployments()}

    def replicas(build: str) -> int | None:
        dep = deployments().get(build)
        return None if dep is None else int(dep["spec"].get("replicas", 1))

    def state() -> str:
        st = status(kube, ns, name)
        listed = {b: (h["spec"]["scaleTargetRef"]["name"], h["spec"]["minReplicas"],
                      h.get("status", {}).get("currentMetrics"),
                      h.get("status", {}).get("desiredReplicas"))
                  for b, h in hpas().items()}  # fmt: skip
        deps = {b: d["spec"].get("replicas") for b, d in deployments().items()}
        served = kube.run(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"
        )  # fmt: skip
        return (
            json.dumps({k: st.get(k) for k in ("currentBuildId", "targetBuildId", "versions")},
                       indent=1)[-2500:]
            + f"\nHPAs {listed}\nDeployments {deps}\nworkers {sorted(workers.running())}"
            + f"\nPodMetrics {served.stdout[-1500:]}{served.stderr[-300:]}"
        )  # fmt: skip

    def current() -> str | None:
        st = status(kube, ns, name)
        same = st.get("currentBuildId") == st.get("targetBuildId")
        return str(st["currentBuildId"]) if same and st.get("currentBuildId") else None

    def hpa_of(build: str) -> dict[str, Any] | None:
        return hpas().get(build)

    def targets_own_deployment(build: str) -> dict[str, Any]:
        """The build's HPA: named after its Deployment and scaling exactly that Deployment,
        on the pool's CPU target and bounds."""
        hpa = hpa_of(build)
        assert hpa is not None, build
        dep = deployments()[build]["metadata"]["name"]
        spec = hpa["spec"]
        assert hpa["metadata"]["name"] == dep
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": dep}  # fmt: skip
        assert (spec["minReplicas"], spec["maxReplicas"]) == (MIN, MAX)
        (metric,) = spec["metrics"]
        assert metric["resource"] == {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET},
        }  # fmt: skip
        return hpa

    try:
        with msbed.simulated_usage(kube.kubeconfig, ns, cpu=IDLE, memory="50Mi"):
            kube.apply([pool(V1)], namespace=ns)
            async with deployed_operator(kube, ns, tmp_path):
                v1 = await eventually(current, "build 1 current", state)
                await eventually(lambda: hpa_of(v1), "build 1's HPA", state)
                targets_own_deployment(v1)
                assert "" not in hpas(), "a versioned pool has no pool-wide HPA"

                # Build 1's pods are busy: its HPA reads their CPU and scales it 1 -> MAX.
                busy(v1)
                await eventually(lambda: replicas(v1) == MAX, f"build 1 scaled 1 -> {MAX}",
                                 state)  # fmt: skip

                # Two workflows pinned to build 1, waiting for a signal: it must drain them.
                pinned = [
                    await client.start_workflow(
                        "OrderFlow", f"old-{i}", id=f"{queue}-old-{i}", task_queue=queue
                    )
                    for i in range(2)
                ]

                def open_pinned(build: str) -> int | None:
                    for v in status(kube, ns, name).get("versions") or []:
                        if v["buildId"] == build and v.get("openPinnedWorkflows") is not None:
                            return int(v["openPinnedWorkflows"])
                    return None

                await eventually(lambda: open_pinned(v1) == 2, "2 workflows pinned to build 1",
                                 state)  # fmt: skip

                # Build 2 is rolled out: its own HPA on its own Deployment; build 1 keeps its.
                busy(None)
                kube.apply([pool(V2)], namespace=ns)
                v2 = await eventually(lambda: (c := current()) != v1 and c, "build 2 current",
                                      state)  # fmt: skip
                await eventually(lambda: hpa_of(v2), "build 2's HPA", state)
                hpa2 = targets_own_deployment(v2)
                hpa1 = targets_own_deployment(v1)
                assert hpa1["metadata"]["name"] != hpa2["metadata"]["name"]
                assert set(hpas()) == {v1, v2}

                # Build 2 busy, build 1 idle: each HPA reads only its own build's pods.
                busy(v2)
                await eventually(
                    lambda: replicas(v2) == MAX and replicas(v1) == MIN,
                    f"build 2 scaled 1 -> {MAX} while draining build 1 goes back to {MIN}",
                    state,
                )
                scaled = hpa_of(v2)
                assert scaled is not None
                assert scaled["status"]["desiredReplicas"] == MAX
                idle = hpa_of(v1)
                assert idle is not None
                assert idle["status"]["desiredReplicas"] == MIN
                assert v1 in workers.running(), "a draining build lost its worker"

                # The pinned workflows finish on build 1; then its HPA goes and it retires.
                for handle in pinned:
                    await handle.signal("finish")
                assert [await h.result() for h in pinned] == [f"v1:old-{i}" for i in range(2)]
                await eventually(lambda: v1 not in hpas(), "build 1's HPA removed", state)
                await eventually(lambda: replicas(v1) is None, "build 1's Deployment retired",
                                 state)  # fmt: skip
                assert set(hpas()) == {v2}
                assert replicas(v2) == MAX, "build 2's HPA lost its build"
                # New work runs on build 2.
                result = await client.execute_workflow("Smoke", id=f"{queue}-new",
                                                       task_queue=queue)  # fmt: skip
                assert result == "ok"
    finally:
        workers.close()
