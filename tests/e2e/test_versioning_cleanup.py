"""The Temporal side of versioned pools over time, through the operator process, with real
workers polling: what a deleted pool left is removed, and the version cap never wedges a rollout.

Real kube-apiserver (kwok nodes, the garbage collector), the operator as deployed (scoped to
the test's namespace) and a real Temporal dev server of these tests' own
(testbed.temporal.VERSION_CAP_DYNAMIC_CONFIG): `matching.maxVersionsInDeployment` 5, Temporal's
drainage status at its production default (minutes late), stopped workers forgotten after 3 s.
kwok pods run no code, so each build Deployment the operator keeps above 0 replicas gets one
real `python -m worker_runtime` process with its worker settings (testbed/builds.py), stopped
when the build is scaled to 0 or deleted, as its pods would be.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    ListWorkerDeploymentsRequest,
)
from temporalio.client import Client
from temporalio.common import PinnedVersioningOverride, WorkerDeploymentVersion

from testbed.builds import BuildWorkers
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import VERSION_CAP, TemporalDevServer
from testbed.wait import eventually
from tests.builders import condition, versioned_pool
from tests.builders import describe_deployment as describe
from tests.builders import event_reasons as events
from tests.builders import pool_status as status
from workerpool_operator.versioning.execute import pinned_query

V1 = "tests.runtime.versioned_v1"

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]


def current(cluster: KubeCluster, ns: str, name: str) -> str | None:
    """The pool's build once it is current and the target, else None."""
    st = status(cluster, ns, name)
    build = st.get("currentBuildId")
    return str(build) if build and build == st.get("targetBuildId") else None


def ready(cluster: KubeCluster, ns: str, name: str) -> bool:
    return condition(cluster, ns, name, "Ready").get("status") == "True"


async def listed(client: Client) -> list[str]:
    resp = await client.workflow_service.list_worker_deployments(
        ListWorkerDeploymentsRequest(namespace=client.namespace)
    )
    return [d.name for d in resp.worker_deployments]


async def open_on(client: Client, deployment: str, build: str) -> int:
    resp = await client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(
            namespace=client.namespace, query=pinned_query(deployment, build)
        )
    )
    return int(resp.count)


async def test_a_deleted_pool_is_removed_from_temporal_once_its_work_is_done(
    kube_cluster: KubeCluster,
    namespace: str,
    version_cap_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """Three pools on one connection: `keep` lives on; `gone` is deleted with a pinned workflow
    open on its build; `back` is deleted and created again. No finalizer: the operator's
    janitor keeps `gone` in Temporal while its workflow is open, removes it (routing unset,
    version and Worker Deployment deleted) once it is not, and leaves `keep` and `back` alone."""
    ns, server = namespace, version_cap_temporal_server
    queues = {p: f"{p}-{uuid.uuid4().hex[:8]}" for p in ("keep", "gone", "back")}
    manifests = {p: versioned_pool(p, q, server, V1) for p, q in queues.items()}
    op = OperatorProcess(
        kube_cluster.kubeconfig, "janitor", "-n", ns, "--cluster-name", "e2e-janitor",
        "--janitor-seconds", "2", log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    workers = {p: BuildWorkers(kube_cluster.kubeconfig, ns, p, server, tmp_path) for p in queues}
    client = await Client.connect(server.address, namespace=server.namespace)
    gone = f"{ns}/gone"

    async def state() -> str:
        temporal = {p: await describe(client, f"{ns}/{p}") for p in queues}
        return (
            f"listed: {await listed(client)}\ntemporal: {temporal}\n"
            + json.dumps({p: status(kube_cluster, ns, p) for p in ("keep", "back")
                          if kube_cluster.exists("temporalworkerpool", p, namespace=ns)},
                         indent=1)[-3000:]
            + op.log_path.read_text(errors="replace")[-4000:]
        )  # fmt: skip

    try:
        kube_cluster.apply(list(manifests.values()), namespace=ns)
        builds = {}
        for p in queues:
            builds[p] = await eventually(partial(current, kube_cluster, ns, p),
                                         f"{p}: its build current", state)  # fmt: skip
        # A workflow pinned to gone's build, counted on it before the pool goes.
        pinned = await client.start_workflow(
            "OrderFlow", "late", id=f"{queues['gone']}-late", task_queue=queues["gone"]
        )
        await eventually(lambda: open_on(client, gone, builds["gone"]), "the pinned workflow "
                         "counted on gone's build", state)  # fmt: skip

        kube_cluster.kubectl("delete", "temporalworkerpool", "gone", "back", "-n", ns)
        await eventually(lambda: not workers["back"].builds(), "back's Deployment collected",
                         state)  # fmt: skip
        kube_cluster.apply([manifests["back"]], namespace=ns)
        await eventually(lambda: builds["gone"] in workers["gone"].stopped,
                         "gone's worker stopped with its Deployment", state)  # fmt: skip

        # The janitor looks (at once after the deletion, then every 2 s) and keeps gone: its
        # build still has an open workflow, so neither its routing nor its version is touched.
        await eventually(
            lambda: "1 open workflow(s)" in op.log_path.read_text(errors="replace"),
            "the janitor keeps gone while its pinned workflow is open", state,
        )  # fmt: skip
        kept = await describe(client, gone)
        assert kept.exists
        assert kept.current_build == builds["gone"]
        assert [v.build_id for v in kept.versions] == [builds["gone"]]

        # The workflow ends (its workers are gone: terminated, as an operator would): the whole
        # Worker Deployment goes.
        await pinned.terminate("its pool was deleted")
        await eventually(lambda: _gone(client, gone), "gone removed from Temporal", state)
        assert gone not in await listed(client)

        # The live pool and the re-created one are untouched, their builds current and Ready.
        for p in ("keep", "back"):
            described = await describe(client, f"{ns}/{p}")
            assert described.current_build == builds[p], p
            await eventually(partial(ready, kube_cluster, ns, p), f"{p} Ready", state)
        calls = "workerpool_temporal_calls_total"
        assert op.value(calls, method="DeleteWorkerDeployment", result="ok") == 1
        assert op.value(calls, method="DeleteWorkerDeploymentVersion", result="ok") >= 1
        assert op.value(calls, method="SetWorkerDeploymentCurrentVersion", result="ok") >= 1
        assert op.tracebacks() == 0
    finally:
        for w in workers.values():
            w.close()
        op.stop()


async def _gone(client: Client, deployment: str) -> bool:
    return not (await describe(client, deployment)).exists


async def test_version_cap_idle_builds_retired_and_the_limit_reported(
    kube_cluster: KubeCluster,
    namespace: str,
    version_cap_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """Against a server that allows 5 versions per Worker Deployment: builds minted one after
    another (a template change each) all become current, because idle builds are retired to
    keep a slot free (Temporal's own clean-up cannot: its drainage status still says Draining);
    builds that hold pinned work are kept, and when they fill 80% of the cap VersionLimitNear
    is reported, as a condition and a Warning Event, until their work ends."""
    ns, name, server = namespace, "capped", version_cap_temporal_server
    queue = f"cap-{uuid.uuid4().hex[:8]}"
    deployment = f"{ns}/{name}"
    op = OperatorProcess(
        kube_cluster.kubeconfig, "version-cap", "-n", ns, "--cluster-name", "e2e-cap",
        "--version-cap", str(VERSION_CAP), log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    workers = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    def pool(n: int) -> dict[str, Any]:
        body = versioned_pool(name, queue, server, V1)
        body["spec"]["env"] = [{"name": "BUILD_NUMBER", "value": str(n)}]  # a new build each
        body["spec"]["versioning"]["retention"] = 50  # only the cap retires builds here
        return body

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (
            f"temporal: {[(v.build_id, v.status) for v in temporal.versions]} current "
            f"{temporal.current_build}\n"
            + json.dumps({k: st.get(k) for k in ("currentBuildId", "targetBuildId", "versions",
                                                 "conditions")}, indent=1)[-4000:]
            + f"\nworkers {sorted(workers.running())}\n"
            + op.log_path.read_text(errors="replace")[-3000:]
        )  # fmt: skip

    def limit() -> dict[str, Any]:
        return condition(kube_cluster, ns, name, "VersionLimit")

    async def new_current(minted: list[str]) -> str | None:
        """A build not minted before, current in the pool's status and in Temporal: the status
        reads the routing as this pass's calls leave it, even while Temporal refuses
        SetCurrentVersion (its new workers not polling every queue yet), and a workflow pinned
        to a build that is not yet in the task queue is refused."""
        build = current(kube_cluster, ns, name)
        if build in (None, *minted):
            return None
        return build if (await describe(client, deployment)).current_build == build else None

    try:
        # Seven builds in a row, each applied as soon as the one before is current.
        minted: list[str] = []
        for n in range(1, 8):
            kube_cluster.apply([pool(n)], namespace=ns)
            build = await eventually(partial(new_current, minted), f"build {n} current", state)
            minted.append(str(build))
        # Retired oldest first: a free slot is left for the next build.
        await eventually(
            lambda: _versions(client, deployment, lambda n: n <= VERSION_CAP - 1),
            f"at most {VERSION_CAP - 1} versions left in Temporal", state,
        )  # fmt: skip
        remaining = {v.build_id for v in (await describe(client, deployment)).versions}
        assert minted[-1] in remaining
        assert not {minted[0], minted[1], minted[2]} & remaining
        assert limit()["reason"] == "WithinVersionLimit"
        assert "VersionRetired" in events(kube_cluster, ns, name)

        # Pinned work on three builds in a row: those builds cannot be retired.
        pinned = []
        for n in range(8, 11):
            build = minted[-1]
            # Pinned explicitly: a workflow started right after a SetCurrentVersion may still
            # be routed to the previous current build (Temporal propagates routing to the task
            # queue asynchronously), and this test needs one pinned workflow per build.
            handle = await client.start_workflow(
                "OrderFlow", f"o{n}", id=f"{queue}-o{n}", task_queue=queue,
                versioning_override=PinnedVersioningOverride(
                    WorkerDeploymentVersion(deployment_name=deployment, build_id=build)
                ),
            )  # fmt: skip
            pinned.append((build, handle))
            await eventually(partial(open_on, client, deployment, build),
                             f"a workflow pinned to {build}", state)  # fmt: skip
            kube_cluster.apply([pool(n)], namespace=ns)
            build = await eventually(partial(new_current, minted), f"build {n} current", state)
            minted.append(str(build))
        # Three draining builds and the current one: 4 of 5 hold work.
        near = await eventually(
            lambda: (c := limit()).get("reason") == "VersionLimitNear" and c,
            "VersionLimitNear", state,
        )  # fmt: skip
        assert near["status"] == "True"
        assert near["message"].startswith(f"4 of at most {VERSION_CAP} versions")
        await eventually(lambda: "VersionLimitNear" in events(kube_cluster, ns, name),
                         "a VersionLimitNear Event", state)  # fmt: skip
        versions = {v["buildId"]: v for v in status(kube_cluster, ns, name)["versions"]}
        for build, _ in pinned:
            assert versions[build]["state"] == "Draining", build
            assert build in workers.running(), f"{build} holds pinned work and was scaled down"

        # The pinned work ends on the builds that started it; the limit is no longer near.
        for i, (_, handle) in enumerate(pinned):
            await handle.signal("finish")
            assert await handle.result() == f"v1:o{8 + i}"
        await eventually(lambda: limit().get("reason") == "WithinVersionLimit",
                         "within the version limit again", state)  # fmt: skip
        assert op.tracebacks() == 0
    finally:
        workers.close()
        op.stop()


async def _versions(client: Client, deployment: str, ok: Any) -> bool:
    return bool(ok(len((await describe(client, deployment)).versions)))
