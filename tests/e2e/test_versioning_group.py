"""A release group through the operator process, with real workers polling: a workflow pool and
an activity pool naming one Worker Deployment roll from build 1 to build 2 as one.

Real kube-apiserver (kwok nodes), the operator as deployed (scoped to the test's namespace) and
the real Temporal dev server with Worker Versioning's TTLs lowered. kwok pods run no code, so
testbed/builds.py runs one real `python -m worker_runtime` per build Deployment of each pool.
The workflow (tests/runtime/group_v*.py) returns its own build and the build of the worker that
ran its activity, on the activity pool's queue.

The activity pool's build-2 workers are held back (their pods as if Pending) while the group's
build 2 is ready everywhere else: the group must not move new work to build 2 meanwhile
(ReleaseGroupHeld, naming the activity pool). With the hold switched off, the operator asked
Temporal to ramp build 2 every pass and the dev server refused each call ("missing active task
queues from the current version"): the server guards the queues the current version has, and
the hold is what makes the operator wait and say which pool it waits for instead of being
refused. Then the group ramps and promotes build 2, and no workflow of build 2 ever ran its
activity on a build-1 worker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.builds import BuildWorkers
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import API_VERSION
from tests.builders import describe_deployment as describe
from tests.builders import event_reasons as events
from tests.builders import pool_status as status

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

V1, V2 = "tests.runtime.group_v1", "tests.runtime.group_v2"


async def test_a_workflow_pool_and_its_activity_pool_release_as_one(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    ns, server = namespace, versioning_temporal_server
    suffix = uuid.uuid4().hex[:8]
    wf_queue, act_queue = f"flows-{suffix}", f"acts-{suffix}"
    deployment = f"{ns}/release"
    versioning = {
        "deploymentName": deployment,
        "defaultBehavior": "Pinned",
        "strategy": "Progressive",
        "steps": [{"rampPercentage": 50, "pauseSeconds": 4}],
        "sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 2},
    }

    def pools(app: str) -> list[dict[str, Any]]:
        def pool(name: str, queue: str, **code: list[str]) -> dict[str, Any]:
            return {
                "apiVersion": API_VERSION,
                "kind": "TemporalWorkerPool",
                "metadata": {"name": name},
                "spec": {
                    "connection": {"address": server.address, "namespace": server.namespace},
                    "taskQueue": queue,
                    "replicas": 1,
                    "versioning": versioning,
                    **code,
                },
            }

        return [
            pool("flows", wf_queue, workflows=[f"{app}:GroupFlow"]),
            pool("acts", act_queue, activities=[f"{app}:ACTIVITIES"]),
        ]

    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-group", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    flows = BuildWorkers(kube_cluster.kubeconfig, ns, "flows", server, tmp_path)
    acts = BuildWorkers(kube_cluster.kubeconfig, ns, "acts", server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)
    results: list[str] = []
    stop = asyncio.Event()

    def group(pool: str) -> dict[str, Any]:
        return dict(status(kube_cluster, ns, pool).get("releaseGroup") or {})

    async def state() -> str:
        temporal = await describe(client, deployment)
        return (
            f"temporal: {temporal}\n"
            + json.dumps({p: status(kube_cluster, ns, p) for p in ("flows", "acts")})[-4000:]
            + f"\nflows workers {list(flows.procs)}, acts workers {list(acts.procs)}\n"
            + op.log_path.read_text(errors="replace")[-3000:]
        )

    def current(build: str | None = None) -> str | None:
        """The group's build once both pools report it current (and it is `build`)."""
        a, f = group("acts"), group("flows")
        done = a.get("state") == f.get("state") == "Current" and a.get("buildId") == f.get(
            "buildId"
        )
        return a["buildId"] if done and build in (None, a["buildId"]) else None

    async def load() -> None:
        """New short workflows all through the rollout, each recording who ran its activity."""
        i = 0
        while not stop.is_set():
            i += 1
            handle = await client.start_workflow(
                "GroupFlow", {"order": str(i), "activities": act_queue},
                id=f"{wf_queue}-load-{i}", task_queue=wf_queue,
                execution_timeout=timedelta(seconds=120),
            )  # fmt: skip
            # A workflow whose activity nobody serves would wait here: the test then fails.
            results.append(await asyncio.wait_for(handle.result(), 120))
            await asyncio.sleep(0.2)

    try:
        kube_cluster.apply(pools(V1), namespace=ns)
        v1 = await eventually(current, "the group's build 1 current on both pools", state)
        assert status(kube_cluster, ns, "flows")["currentBuildId"] == v1
        assert group("flows")["members"] == ["acts", "flows"]
        assert group("flows")["driver"] == "acts"  # the first by name makes the routing calls
        # Workflows pinned to build 1, waiting: their activities need build 1's activity pool.
        pinned = [
            await client.start_workflow(
                "GroupFlow",
                {"order": f"old-{i}", "activities": act_queue, "wait": True},
                id=f"{wf_queue}-old-{i}",
                task_queue=wf_queue,
            )
            for i in range(2)
        ]
        loader = asyncio.create_task(load())
        await eventually(lambda: len(results) >= 2, "build-1 load running", state)

        # Build 2 of both pools in one apply; the activity pool's new workers do not start yet.
        acts.hold_new = True
        kube_cluster.apply(pools(V2), namespace=ns)
        held = await eventually(
            lambda: (g := group("flows")).get("state") == "Held" and g.get("buildId") != v1 and g,
            "the group held by the activity pool", state,
        )  # fmt: skip
        v2 = held["buildId"]
        assert "pool acts" in held["heldBy"], held
        assert group("acts")["state"] == "Held"
        await eventually(lambda: v2 in flows.running(), "build 2's workflow worker up", state)
        await asyncio.sleep(4)  # build 2's workflow worker polls; nothing may move meanwhile
        temporal = await describe(client, deployment)
        assert temporal.current_build == v1, temporal
        assert temporal.ramping_build is None, temporal
        await eventually(
            lambda: next(c for c in status(kube_cluster, ns, "acts")["conditions"]
                         if c["type"] == "VersionRollout")["reason"] == "ReleaseGroupHeld",
            "the driver's VersionRollout says ReleaseGroupHeld", state,
        )  # fmt: skip
        temporal = await describe(client, deployment)
        assert temporal.current_build == v1, temporal
        assert temporal.ramping_build is None, temporal
        assert "refused by Temporal" not in op.log_path.read_text(), "a held group was routed"
        await eventually(
            lambda: "ReleaseGroupHeld" in events(kube_cluster, ns, "acts"),
            "a ReleaseGroupHeld Event on the driver", state,
        )  # fmt: skip

        # The activity pool's build 2 comes up: the group ramps, then build 2 is current.
        acts.hold_new = False
        await eventually(lambda: current(v2), "the group's build 2 current", state)
        # It ramped first (the 4 s step is too short to be sure to see in a status: Events).
        assert "Ramping" in events(kube_cluster, ns, "acts")
        assert "Ramping" not in events(kube_cluster, ns, "flows")  # the driver alone routes
        await eventually(
            lambda: sum(r == "workflow=v2 activity=v2" for r in results) >= 3,
            "new workflows on build 2", state,
        )  # fmt: skip
        stop.set()
        await loader

        # Build 1 of the activity pool keeps running while build-1 workflows are open, though
        # that pool runs no workflow of its own: its pinned work is the group's.
        assert v1 in acts.running(), "the activity pool's build 1 went while build 1 had work"
        for handle in pinned:
            await handle.signal("finish")
        assert [await h.result() for h in pinned] == ["workflow=v1 activity=v1"] * 2
        await eventually(lambda: v1 in acts.stopped and v1 in flows.stopped,
                         "build 1 retired on both pools once its work ended", state)  # fmt: skip

        # The point of the group: no workflow of build 2 ran an activity on a build-1 worker.
        assert "workflow=v2 activity=v1" not in results, results
        assert set(results) <= {"workflow=v1 activity=v1", "workflow=v2 activity=v2"}, results
        assert "workflow=v1 activity=v1" in results
        assert op.tracebacks() == 0
    finally:
        stop.set()
        flows.close()
        acts.close()
        op.stop()
