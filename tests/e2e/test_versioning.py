"""Versioned rollouts through the operator process, with real workers polling.

Real kube-apiserver (kwok nodes), the operator as deployed (`python -m workerpool_operator`,
scoped to the test's namespace) and the real Temporal dev server, with Worker Versioning's
drainage and poller TTLs lowered (testbed.temporal.VERSIONING_DYNAMIC_CONFIG) so a rollout takes
seconds. kwok pods run no code, so the test runs one real `python -m worker_runtime` process for
each build Deployment the operator keeps above 0 replicas, with that Deployment's own worker
settings (workflows, activities, Worker Deployment name, build ID, default behavior), and stops
it when the operator scales the build to 0 or deletes it (testbed/builds.py).

The two builds run tests/runtime/versioned_v1.py and versioned_v2.py, whose `charge` activities
answer "v1:" and "v2:", so a result names the build that ran it. (v2's extra timer does not make a
v1 workflow that waits for its signal fail on replay: the SDK accepts it. The build that does fail
on replay is tests/runtime/versioned_renewal.py, used by the analysis test.)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentManagerRequest
from temporalio.client import Client, WorkflowHandle

from testbed.builds import BuildWorkers
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import condition, versioned_pool
from tests.builders import describe_deployment as describe
from tests.builders import event_reasons as events
from tests.builders import pool_status as status
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.temporal, pytest.mark.usefixtures("pool_crd")]

V1 = "tests.runtime.versioned_v1"
V2 = "tests.runtime.versioned_v2"


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
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    ns, name = namespace, "orders"
    queue = f"ver-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    rollout = {
        "strategy": "Progressive",
        "steps": [{"rampPercentage": 50, "pauseSeconds": 6}],
        "sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 2},
    }
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    workers = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)
    seen: list[dict[str, Any]] = []

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        seen.append(st)
        temporal = await describe(client, f"{ns}/{name}")
        return f"temporal: {temporal}\n" + json.dumps(
            {k: st.get(k) for k in ("currentBuildId", "targetBuildId", "rampPercentage",
                                    "versions", "conditions")}, indent=1)[-3000:] + (
            f"\nworkers started {list(workers.started)} stopped {list(workers.stopped)}\n"
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


async def test_migration_autoscaled_restart_mid_ramp_gate_and_foreign_routing(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """An unversioned, Builtin-autoscaled pool becomes versioned (through a gate) without
    stranding its running workflow; an operator killed mid-ramp resumes at the same step; a
    failing gate stops the next build; a foreign routing owner is reported, not fought."""
    ns, name = namespace, "pay"
    queue = f"mig-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"
    autoscaling = {"engine": "Builtin", "minReplicas": 1, "maxReplicas": 3,
                   "pollIntervalSeconds": 5}  # fmt: skip

    def pool(app: str, versioning: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
        body = versioned_pool(name, queue, server, app)
        del body["spec"]["replicas"]
        body["spec"]["autoscaling"] = autoscaling
        body["spec"].pop("versioning")
        if versioning is not None:
            body["spec"]["versioning"] = {"defaultBehavior": "Pinned", **versioning}
        body["spec"].update(spec)
        return body

    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-mig", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    plain = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path, versioned=False)
    builds = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (f"temporal: {temporal}\n" + json.dumps(st, indent=1)[-4000:]
                + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    def rollout() -> dict[str, Any]:
        return condition(kube_cluster, ns, name, "VersionRollout")

    try:
        # Unversioned first, with a workflow running on its (unversioned) worker.
        kube_cluster.apply([pool(V1, None)], namespace=ns)
        await eventually(lambda: plain.ready_at, "the unversioned worker polls", state)
        running = await client.start_workflow("OrderFlow", "m", id=f"{queue}-m", task_queue=queue)

        # Versioned, AllAtOnce behind a gate (Smoke, pinned to the new build).
        kube_cluster.apply([pool(V1, {"gate": {"workflowType": "Smoke"}})], namespace=ns)
        first = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "the first build current after its gate", state,
        )  # fmt: skip
        gate = client.get_workflow_handle(f"{deployment}/gate/{first}")
        assert await gate.result() == "ok"
        await eventually(lambda: not kube_cluster.exists("deployment", name, namespace=ns),
                         "the unversioned Deployment deleted once a build is current",
                         state)  # fmt: skip
        await running.signal("finish")
        assert await running.result() == "v1:m"  # not stranded: it went on on the build

        # Autoscaled: the scaler's decision reaches the target build's Deployment.
        def scaled() -> bool:
            desired = status(kube_cluster, ns, name).get("desiredReplicas")
            deps = [d for d in builds.deployments()
                    if d["metadata"]["labels"][BUILD_ID_LABEL] == first]  # fmt: skip
            return (
                desired is not None
                and len(deps) == 1
                and deps[0]["spec"]["replicas"] == max(1, desired)
            )

        await eventually(scaled, "the scaler's decision on the build's Deployment", state)

        # Progressive to v2; the operator is SIGKILLed during the step's pause and resumes it.
        progressive = {"strategy": "Progressive",
                       "steps": [{"rampPercentage": 30, "pauseSeconds": 20}]}  # fmt: skip
        kube_cluster.apply([pool(V2, progressive)], namespace=ns)
        ramp = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 30 and st,
            "build 2 ramping at 30 %", state,
        )  # fmt: skip
        second = ramp["targetBuildId"]
        op.restart()
        await eventually(lambda: op.value("workerpool_operator_reconcile_duration_seconds_count")
                         >= 2, "the restarted operator reconciles", state)  # fmt: skip
        described = await describe(client, deployment)
        assert (described.ramping_build, described.ramp_percentage) == (second, 30.0)
        assert described.current_build == first  # resumed mid-step, not promoted early
        await eventually(lambda: status(kube_cluster, ns, name).get("currentBuildId") == second,
                         "build 2 current after the pause", state)  # fmt: skip
        ramped = [e for e in events(kube_cluster, ns, name) if e == "Ramping"]
        assert len(ramped) == 1, "the step was repeated after the restart"

        # A build whose gate fails: no traffic moves, Degraded says why.
        failing = {"gate": {"workflowType": "FailingSmoke"}}
        gated = pool(V2, failing, workflows=[f"{V2}:OrderFlow", f"{V2}:Smoke",
                                             f"{V2}:FailingSmoke"])  # fmt: skip
        kube_cluster.apply([gated], namespace=ns)
        await eventually(lambda: rollout().get("reason") == "GateFailed", "GateFailed", state)
        await eventually(lambda: condition(kube_cluster, ns, name, "Degraded").get("status")
                         == "True", "Degraded set by the failed analysis", state)  # fmt: skip
        assert status(kube_cluster, ns, name)["currentBuildId"] == second

        # Someone else takes routing over: reported, not fought.
        await client.workflow_service.set_worker_deployment_manager(
            SetWorkerDeploymentManagerRequest(namespace=server.namespace,
                                              deployment_name=deployment,
                                              manager_identity="alice", identity="alice")
        )  # fmt: skip
        await eventually(lambda: rollout().get("reason") == "RoutingOwnedElsewhere",
                         "the foreign owner reported", state)  # fmt: skip
        assert (await describe(client, deployment)).manager_identity == "alice"
        assert op.tracebacks() == 0
    finally:
        plain.close()
        builds.close()
        op.stop()


async def test_leaving_versioning_routes_back_to_unversioned_and_retires_builds(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """AllAtOnce from v1 to v2, then spec.versioning removed: the pool's unversioned Deployment
    comes back, new work goes to its workers once they poll, pinned workflows finish on their
    builds, and then each build's Deployment and Temporal version are retired."""
    ns, name = namespace, "refunds"
    queue = f"back-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-back", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    plain = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path, versioned=False)
    builds = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (f"temporal: {temporal}\n" + json.dumps(st, indent=1)[-4000:]
                + f"\nplain {plain.running()} builds {builds.running()}\n"
                + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    try:
        kube_cluster.apply([versioned_pool(name, queue, server, V1)], namespace=ns)
        v1 = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "build v1 current", state,
        )  # fmt: skip
        pinned = await client.start_workflow("OrderFlow", "p", id=f"{queue}-p", task_queue=queue)
        await eventually(lambda: _started(pinned), "the pinned workflow runs on v1", state)

        # AllAtOnce (the default strategy) to v2: current as soon as it has registered.
        kube_cluster.apply([versioned_pool(name, queue, server, V2)], namespace=ns)
        v2 = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId") not in (None, v1)
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "build v2 current", state,
        )  # fmt: skip
        on_v2 = await client.start_workflow("OrderFlow", "q", id=f"{queue}-q", task_queue=queue)
        await eventually(lambda: _started(on_v2), "a pinned workflow runs on v2", state)

        # Versioning removed, with v1's code: a new workflow that returns "v1:" can only have
        # run on the unversioned workers (build v1 is no longer current, build v2 says "v2:").
        unversioned = versioned_pool(name, queue, server, V1)
        del unversioned["spec"]["versioning"]
        kube_cluster.apply([unversioned], namespace=ns)
        await eventually(lambda: plain.ready_at, "the unversioned worker polls", state)

        async def routed_back() -> bool:
            return (await describe(client, deployment)).current_build is None

        await eventually(routed_back, "new work routed back to unversioned workers", state)
        await eventually(
            lambda: "versioning removed" in condition(kube_cluster, ns, name, "VersionRollout")
            .get("message", ""), "the status says the pool left versioning", state,
        )  # fmt: skip
        fresh = await client.start_workflow("OrderFlow", "n", id=f"{queue}-n", task_queue=queue)
        await fresh.signal("finish")
        assert await fresh.result() == "v1:n"  # new work ran on the unversioned worker
        assert {v1, v2} <= builds.running()  # pinned work open: each build keeps its worker

        for handle, result in ((pinned, "v1:p"), (on_v2, "v2:q")):
            await handle.signal("finish")
            assert await handle.result() == result  # finished on the build that started it
            assert await nondeterminism(handle) == 0
        await eventually(lambda: not builds.builds(), "every build's Deployment deleted",
                         state)  # fmt: skip
        await eventually(
            lambda: "versions" not in status(kube_cluster, ns, name),
            "status.versions emptied once the Temporal version is gone", state,
        )  # fmt: skip
        assert (await describe(client, deployment)).versions == ()
        st = status(kube_cluster, ns, name)
        assert "workerDeploymentName" not in st
        assert "currentBuildId" not in st
        assert op.tracebacks() == 0
    finally:
        plain.close()
        builds.close()
        op.stop()


async def _started(handle: WorkflowHandle[Any, Any]) -> bool:
    """A workflow task completed: a worker took it."""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


BAD = "tests.runtime.versioned_bad"


async def test_analysis_rolls_a_failing_build_back_during_its_ramp(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """A build whose workflows fail is rolled back while it ramps (not at the end of the
    pause), is not ramped again, and no workflow of the good build is lost; then a ramping
    build is aborted and promoted by annotation (kubectl annotate, no spec edit)."""
    ns, name = namespace, "billing"
    queue = f"bad-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-analysis", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    builds = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (f"temporal: {temporal}\n" + json.dumps(st, indent=1)[-4000:]
                + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    try:
        kube_cluster.apply([versioned_pool(name, queue, server, V1)], namespace=ns)
        good = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "the good build current", state,
        )  # fmt: skip
        ramp = {"strategy": "Progressive", "steps": [{"rampPercentage": 50, "pauseSeconds": 600}],
                "analysis": {"maxFailedPercent": 20, "minClosedWorkflows": 3}}  # fmt: skip
        kube_cluster.apply([versioned_pool(name, queue, server, BAD, **ramp)], namespace=ns)
        bad = (await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 50 and st,
            "the bad build ramping at 50 %", state,
        ))["targetBuildId"]  # fmt: skip

        # Load: about half of it lands on the bad build and fails there at once.
        started = []
        for i in range(16):
            started.append(await client.start_workflow(
                "OrderFlow", f"o{i}", id=f"{queue}-{i}", task_queue=queue))  # fmt: skip
            await asyncio.sleep(0.2)
        await eventually(
            lambda: condition(kube_cluster, ns, name, "VersionRollout").get("reason")
            == "AnalysisFailed", "the bad build rolled back by analysis", state,
        )  # fmt: skip
        after = await describe(client, deployment)
        assert (after.current_build, after.ramping_build) == (good, None)
        assert "AnalysisFailed" in events(kube_cluster, ns, name)
        await eventually(lambda: condition(kube_cluster, ns, name, "Degraded").get("status")
                         == "True", "Degraded set by the failed analysis", state)  # fmt: skip
        entry = next(v for v in status(kube_cluster, ns, name)["versions"]
                     if v["buildId"] == bad)  # fmt: skip
        assert "closed workflows failed" in entry["rejected"]

        # Not ramped again (the pause was 600 s: a rollback, not the end of a step).
        await asyncio.sleep(5)
        assert (await describe(client, deployment)).ramping_build is None
        # Every workflow that went to the good build completes there.
        outcomes = []
        for handle in started:
            desc = await handle.describe()
            if desc.status is not None and desc.status.name == "RUNNING":
                await handle.signal("finish")
                outcomes.append(await handle.result())
        assert outcomes
        assert all(o.startswith("v1:") for o in outcomes)

        # By hand, without a spec edit: abort a ramping build, let it go on, promote it.
        slow = {"strategy": "Progressive", "steps": [{"rampPercentage": 50, "pauseSeconds": 600}]}
        kube_cluster.apply([versioned_pool(name, queue, server, V2, **slow)], namespace=ns)
        v2 = (await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 50
            and st.get("targetBuildId") not in (None, bad) and st,
            "build v2 ramping at 50 %", state,
        ))["targetBuildId"]  # fmt: skip

        def annotate(*args: str) -> None:
            kube_cluster.kubectl("annotate", "twp", name, "-n", ns, "--overwrite", *args)

        async def ramping() -> str | None:
            return (await describe(client, deployment)).ramping_build

        annotate(f"workerpools.io/abort={v2}")
        await eventually(
            lambda: condition(kube_cluster, ns, name, "VersionRollout").get("reason")
            == "AbortedByUser", "the abort reported", state,
        )  # fmt: skip
        assert await ramping() is None
        annotate("workerpools.io/abort-")
        await eventually(lambda: _is(ramping, v2), "build v2 ramping again", state)
        annotate(f"workerpools.io/promote={v2}")
        await eventually(lambda: status(kube_cluster, ns, name).get("currentBuildId") == v2,
                         "build v2 promoted mid-pause", state)  # fmt: skip
        assert (await describe(client, deployment)).current_build == v2
        assert op.tracebacks() == 0
    finally:
        builds.close()
        op.stop()


BAD_ACTIVITY = "tests.runtime.versioned_bad_activity"
RENEWAL = "tests.runtime.versioned_renewal"


async def test_analysis_rolls_back_a_build_whose_workflow_tasks_or_activities_fail(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """Two failures that close no workflow, so the closed-workflow rule never sees them, each
    caught by its own rule from the workers' heartbeats while the build ramps, with no
    workflow lost:

    1. a build whose Renewal workflow is not replay-compatible: v1's AutoUpgrade workflows that
       the ramp moves to it fail their workflow tasks there (non-determinism) and stay Running;
       maxWorkflowTaskFailurePercent rolls it back and they retry the task on v1 and finish;
    2. a build whose activity fails on every attempt (retried, the workflow stays Running):
       maxActivityFailurePercent rolls it back and the retries finish on v1."""
    ns, name = namespace, "payments"
    queue = f"tasks-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-task-analysis", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    builds = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)
    auto = {"defaultBehavior": "AutoUpgrade"}
    rules = {"strategy": "Progressive", "steps": [{"rampPercentage": 50, "pauseSeconds": 600}],
             "analysis": {"maxFailedPercent": 20, "minClosedWorkflows": 3,
                          "maxWorkflowTaskFailurePercent": 20, "maxActivityFailurePercent": 50,
                          "minTasks": 4}}  # fmt: skip

    def build(app: str, renewal: str, **versioning: Any) -> dict[str, Any]:
        body = versioned_pool(name, queue, server, app, **auto, **versioning)
        body["spec"]["workflows"].append(f"{RENEWAL}:{renewal}")
        return body

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (f"temporal: {temporal}\n" + json.dumps(st, indent=1)[-4000:]
                + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    def rejected(build: str) -> str:
        entry = next(v for v in status(kube_cluster, ns, name)["versions"]
                     if v["buildId"] == build)  # fmt: skip
        return str(entry.get("rejected") or "")

    async def ramped(what: str, *not_: str) -> str:
        """The next build ramping at 50 %, in the status and then in Temporal."""
        target = str((await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 50
            and st.get("targetBuildId") not in not_ and st,
            f"{what} ramping at 50 %", state,
        ))["targetBuildId"])  # fmt: skip
        await eventually(lambda: _ramping_in_temporal(client, deployment, target),
                         f"Temporal routing 50 % to {what}", state)  # fmt: skip
        return target

    async def rolled_back(build: str, rule: str) -> None:
        await eventually(lambda: rule in rejected(build), f"rolled back by {rule}", state)
        await eventually(
            lambda: condition(kube_cluster, ns, name, "VersionRollout").get("reason")
            == "AnalysisFailed", "the rollback reported", state,
        )  # fmt: skip
        after = await describe(client, deployment)
        assert (after.current_build, after.ramping_build) == (v1, None)
        assert "closed workflows" not in rejected(build)  # none of its workflows closed

    try:
        kube_cluster.apply([build(V1, "Renewal")], namespace=ns)
        v1 = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "build v1 current", state,
        )  # fmt: skip
        # 12 renewals charge on v1, then wait for their signal there.
        renewals = [
            await client.start_workflow("Renewal", f"r{i}", id=f"{queue}-r{i}", task_queue=queue)
            for i in range(12)
        ]
        for handle in renewals:
            await eventually(partial(_charged, handle), f"{handle.id} charged on v1", state)

        # 1. Non-determinism: the signal gives each renewal its next workflow task, and the
        # ramp sends about half of them to the new build, whose code contradicts the history.
        kube_cluster.apply([build(V1, "RenewalReordered", **rules)], namespace=ns)
        reordered = await ramped("the reordered build", v1)
        for handle in renewals:
            await handle.signal("finish")
        await rolled_back(reordered, "maxWorkflowTaskFailurePercent")
        assert "AnalysisFailed" in events(kube_cluster, ns, name)
        # No workflow lost: those that failed there retry the task on v1 and finish.
        outcomes = [await asyncio.wait_for(h.result(), 240) for h in renewals]
        assert outcomes == [f"v1:r{i}" for i in range(12)]
        assert sum([await nondeterminism(h) for h in renewals]) > 0  # some did fail there

        # 2. Activities: a build whose activity fails on every retry.
        kube_cluster.apply([build(BAD_ACTIVITY, "Renewal", **rules)], namespace=ns)
        bad = await ramped("the bad-activity build", v1, reordered)
        orders = []
        for i in range(16):
            handle = await client.start_workflow(
                "OrderFlow", f"p{i}", id=f"{queue}-p{i}", task_queue=queue
            )
            await handle.signal("finish")
            orders.append(handle)
        await rolled_back(bad, "maxActivityFailurePercent")
        # No workflow lost: the retries of those that ran on the bad build go to v1.
        outcomes = [await asyncio.wait_for(h.result(), 240) for h in orders]
        assert outcomes == [f"v1:p{i}" for i in range(16)]
        assert op.tracebacks() == 0
    finally:
        builds.close()
        op.stop()


async def _charged(handle: WorkflowHandle[Any, Any]) -> bool:
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            return True
    return False


async def _ramping_in_temporal(client: Client, deployment: str, build: str) -> bool:
    """The ramp is in Temporal and propagated (the pool's status says so a little earlier)."""
    seen = await describe(client, deployment)
    return seen.ramping_build == build and not seen.routing_updating


async def _is(probe: Any, value: Any) -> bool:
    return bool(await probe() == value)


async def test_a_failing_step_gate_rolls_the_ramp_back(
    kube_cluster: KubeCluster,
    namespace: str,
    versioning_temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    """A gate on the second step runs pinned to the new build once the first step's pause is
    over; it fails, so the first step's ramp is cleared and the build is held there."""
    ns, name = namespace, "ledger"
    queue = f"step-{uuid.uuid4().hex[:8]}"
    server = versioning_temporal_server
    deployment = f"{ns}/{name}"
    op = OperatorProcess(
        kube_cluster.kubeconfig, "versioning-step-gate", "-n", ns, "--cluster-name", "e2e",
        log_dir=tmp_path, env={"POD_NAMESPACE": ns},
    )  # fmt: skip
    builds = BuildWorkers(kube_cluster.kubeconfig, ns, name, server, tmp_path)
    client = await Client.connect(server.address, namespace=server.namespace)

    async def state() -> str:
        st = status(kube_cluster, ns, name)
        temporal = await describe(client, deployment)
        return (f"temporal: {temporal}\n" + json.dumps(st, indent=1)[-4000:]
                + op.log_path.read_text(errors="replace")[-3000:])  # fmt: skip

    try:
        kube_cluster.apply([versioned_pool(name, queue, server, V1)], namespace=ns)
        v1 = await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("currentBuildId")
            and st["currentBuildId"] == st.get("targetBuildId") and st["currentBuildId"],
            "build v1 current", state,
        )  # fmt: skip
        steps = {"strategy": "Progressive", "steps": [
            {"rampPercentage": 10, "pauseSeconds": 2},
            {"rampPercentage": 50, "pauseSeconds": 600, "gate": {"workflowType": "FailingSmoke"}},
        ]}  # fmt: skip
        v2_pool = versioned_pool(name, queue, server, V2, **steps)
        v2_pool["spec"]["workflows"].append(f"{V2}:FailingSmoke")
        kube_cluster.apply([v2_pool], namespace=ns)
        v2 = (await eventually(
            lambda: (st := status(kube_cluster, ns, name)).get("rampPercentage") == 10 and st,
            "build v2 ramping at 10 %", state,
        ))["targetBuildId"]  # fmt: skip
        await eventually(
            lambda: condition(kube_cluster, ns, name, "VersionRollout").get("reason")
            == "GateFailed", "the step gate's failure rolls back", state,
        )  # fmt: skip
        gate = client.get_workflow_handle(f"{deployment}/gate/{v2}/step-2")
        assert (await gate.describe()).status.name == "FAILED"  # type: ignore[union-attr]
        after = await describe(client, deployment)
        assert (after.current_build, after.ramping_build) == (v1, None)
        entry = next(v for v in status(kube_cluster, ns, name)["versions"]
                     if v["buildId"] == v2)  # fmt: skip
        assert entry["rejected"].startswith("gate workflow FailingSmoke of step 2 failed")
        await asyncio.sleep(5)  # held: not ramped again
        assert (await describe(client, deployment)).ramping_build is None
        assert "GateFailed" in events(kube_cluster, ns, name)
        assert op.tracebacks() == 0
    finally:
        builds.close()
        op.stop()
