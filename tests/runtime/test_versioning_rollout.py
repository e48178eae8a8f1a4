"""Versioned rollouts against the real Temporal dev server, with real runtime worker processes
for each build (started by the test, one per build's Deployment; no Kubernetes here).

The routing plan (versioning/routing.py) is made from what versioning/execute.py observes, and
execute.py carries it out with the raw workflow-service RPCs, as the reconciler will each pass.
The server runs with Worker Versioning's drainage and poller TTLs lowered so this takes seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentManagerRequest
from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from tests.runtime.conftest import SpawnRuntime
from tests.runtime.helpers import RuntimeProcess, base_env
from workerpool_operator.api.versioning import VersioningSpec, VersionStatus
from workerpool_operator.reasons import Reason
from workerpool_operator.versioning.execute import (
    Outcome,
    count_open_pinned,
    execute,
    observe,
    observe_pool,
    start_gate,
)
from workerpool_operator.versioning.model import (
    BuildDeployment,
    DeleteVersion,
    RoutingInput,
    RoutingPlan,
    SetCurrent,
    SetManager,
    SetRamping,
    gate_workflow_id,
)
from workerpool_operator.versioning.routing import (
    plan,
    status_versions,
)

pytestmark = pytest.mark.temporal

ME = "workerpool-operator/test-cluster"
V1 = "tests.runtime.versioned_v1"
V2 = "tests.runtime.versioned_v2"


async def until(probe: Callable[[], Awaitable[Any]], what: str, wait_s: float = 120) -> Any:
    """Poll an async probe until it returns something truthy (it can race the server)."""
    deadline = time.monotonic() + wait_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.5)
    pytest.fail(f"timed out after {wait_s}s waiting for {what}; last: {last!r}")


class Pool:
    """One versioned pool's reconcile pass, minus Kubernetes: observe, plan, execute."""

    def __init__(self, client: Client, queue: str) -> None:
        self.client = client
        self.queue = queue
        self.deployment = f"test/{queue}"
        self.running: dict[str, BuildDeployment] = {}
        self.previous: list[VersionStatus] = []
        self.gate_error: str | None = None

    def worker(self, spawn: SpawnRuntime, server: TemporalDevServer, build: str, app: str,
               workflows: str = "OrderFlow,Smoke") -> RuntimeProcess:  # fmt: skip
        env = base_env(
            server,
            self.queue,
            TWP_WORKFLOWS=",".join(f"{app}:{w}" for w in workflows.split(",")),
            TWP_ACTIVITIES=f"{app}:ACTIVITIES",
            TWP_WORKER_DEPLOYMENT_NAME=self.deployment,
            TWP_WORKER_BUILD_ID=build,
            TWP_DEFAULT_VERSIONING_BEHAVIOR="Pinned",
        )
        self.running[build] = BuildDeployment(f"orders-{build}", 1, 1)
        return spawn(env)

    async def registered(self, build: str) -> None:
        async def probe() -> bool:
            state = await observe(self.client, self.deployment)
            return state.summary(build) is not None

        await until(probe, f"build {build} to register")

    async def reconcile(self, spec: VersioningSpec, target: str) -> tuple[RoutingPlan, Outcome]:
        gate_id = gate_workflow_id(self.deployment, target) if spec.gate else None
        obs = await observe_pool(self.client, self.deployment, target, self.queue, gate_id)
        p = plan(
            RoutingInput(
                spec=spec,
                pool="orders",
                deployment=self.deployment,
                target_build=target,
                task_queue=self.queue,
                identity=ME,
                temporal=obs.temporal,
                now=datetime.now(UTC),
                desired_replicas=1,
                pinned_open=obs.pinned_open,
                build_deployments=self.running,
                previous=self.previous,
                gate=obs.gate,
                unversioned_pollers=obs.unversioned_pollers,
            )
        )
        if p.start_gate is not None:
            self.gate_error = await start_gate(self.client, self.deployment, p.start_gate)
        out = await execute(self.client, self.deployment, ME, obs.temporal.conflict_token, p.calls)
        self.previous = status_versions(p, self.running)
        return p, out


async def pinned_build(client: Client, workflow_id: str) -> str:
    desc = await client.get_workflow_handle(workflow_id).describe()
    info = desc.raw_description.workflow_execution_info.versioning_info
    return str(info.deployment_version.build_id)


async def workflow_task_failures(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )


async def test_all_at_once_then_gated_progressive_keeps_pinned_work_on_its_build(
    versioning_temporal_server: TemporalDevServer, spawn_runtime: SpawnRuntime
) -> None:
    server = versioning_temporal_server
    client = await Client.connect(server.address, namespace=server.namespace)
    pool = Pool(client, f"orders-{uuid.uuid4().hex[:8]}")

    # Build 1, AllAtOnce: the operator claims routing, then makes it current.
    v1 = pool.worker(spawn_runtime, server, "b1", V1)
    await v1.wait_status("/readyz", 200)
    waiting, _ = await pool.reconcile(VersioningSpec(), "b1")
    if waiting.calls == ():  # not registered yet at the first look: the plan waits for pollers
        assert waiting.conditions[0].reason == Reason.WAITING_FOR_POLLERS
        await pool.registered("b1")
        waiting, _ = await pool.reconcile(VersioningSpec(), "b1")
    assert waiting.calls == (SetManager(), SetCurrent("b1"))
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.manager_identity) == ("b1", ME)

    # Long-running workflows start on build 1 and are pinned there.
    old = [f"old-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    for wid in old:
        await client.start_workflow("OrderFlow", wid, id=wid, task_queue=pool.queue)

    async def three_open() -> bool:
        return await count_open_pinned(client, pool.deployment, "b1") == 3

    await until(three_open, "3 workflows counted open on b1")
    assert {await pinned_build(client, w) for w in old} == {"b1"}

    # Build 2, Progressive with a gate: gate first, then 50%, then current.
    spec = VersioningSpec.model_validate(
        {
            "strategy": "Progressive",
            "steps": [{"rampPercentage": 50, "pauseSeconds": 4}],
            "gate": {"workflowType": "Smoke", "timeoutSeconds": 60},
        }
    )
    v2 = pool.worker(spawn_runtime, server, "b2", V2)
    await v2.wait_status("/readyz", 200)
    await pool.registered("b2")
    passes: list[RoutingPlan] = []

    async def gate_passed() -> RoutingPlan | None:
        p, out = await pool.reconcile(spec, "b2")
        assert out.refused == []
        passes.append(p)
        return p if p.calls else None

    ramp = await until(gate_passed, "the gate to pass and the ramp to start")
    assert all(p.conditions[0].reason == Reason.GATED for p in passes[:-1])
    assert len(passes) > 1  # no traffic moved before the gate had succeeded
    assert ramp.calls == (SetRamping("b2", 50.0),)
    gate_id = gate_workflow_id(pool.deployment, "b2")
    assert await client.get_workflow_handle(gate_id).result() == "ok"
    assert await pinned_build(client, gate_id) == "b2"
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.ramping_build, state.ramp_percentage) == ("b1", "b2", 50)

    async def holding() -> RoutingPlan | None:
        p, _ = await pool.reconcile(spec, "b2")
        assert p.calls == ()  # the pause is honoured (or the change still propagates)
        return p if p.conditions[0].reason == Reason.RAMPING else None

    held = await until(holding, "the ramp to hold at step 1", wait_s=3)
    assert held.step == 0
    assert held.requeue_after is not None

    async def promoted() -> bool:
        p, out = await pool.reconcile(spec, "b2")
        assert out.refused == []
        return p.calls == (SetCurrent("b2"),)

    await until(promoted, "the pause to end and b2 to be promoted", wait_s=60)
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.ramping_build) == ("b2", None)

    # New work goes to build 2; build-1 workflows finish on build 1, with no task failures.
    new = [f"new-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    for wid in new:
        await client.start_workflow("OrderFlow", wid, id=wid, task_queue=pool.queue)

    async def new_on_b2() -> bool:
        return await count_open_pinned(client, pool.deployment, "b2") == 2

    await until(new_on_b2, "2 new workflows counted open on b2")
    draining, _ = await pool.reconcile(spec, "b2")
    b1 = next(v for v in draining.versions if v.build_id == "b1")
    assert (b1.state, b1.open_pinned, b1.replicas) == ("Draining", 3, 1)

    for wid in old + new:
        await client.get_workflow_handle(wid).signal("finish")
    results = {wid: await client.get_workflow_handle(wid).result() for wid in old + new}
    assert {results[w] for w in old} == {f"v1:{w}" for w in old}
    assert {results[w] for w in new} == {f"v2:{w}" for w in new}
    assert [await workflow_task_failures(client, w) for w in old + new] == [0] * 5

    # b1 drained by the exact count (the server's drainage status would lag); sunset it.
    sunset = spec.model_copy(
        update={
            "sunset": spec.sunset.model_copy(
                update={"scale_down_delay_seconds": 0, "delete_delay_seconds": 0}
            )
        }
    )
    drained, _ = await pool.reconcile(sunset, "b2")
    b1 = next(v for v in drained.versions if v.build_id == "b1")
    assert (b1.state, b1.open_pinned, b1.replicas, b1.delete) == ("Drained", 0, 0, True)
    assert await v1.terminate() == 0  # what deleting the Deployment does to its pods
    del pool.running["b1"]

    async def version_deleted() -> bool:
        p, _out = await pool.reconcile(sunset, "b2")
        assert DeleteVersion("b1") in p.calls or not any(v.build_id == "b1" for v in p.versions), p
        state = await observe(client, pool.deployment)
        return state.summary("b1") is None

    await until(version_deleted, "the b1 version to be deleted once its pollers are gone")
    final, _ = await pool.reconcile(sunset, "b2")
    assert [v.build_id for v in final.versions] == ["b2"]
    assert final.conditions[0].reason == Reason.TARGET_CURRENT


async def test_a_failing_gate_stops_the_rollout(
    versioning_temporal_server: TemporalDevServer, spawn_runtime: SpawnRuntime
) -> None:
    server = versioning_temporal_server
    client = await Client.connect(server.address, namespace=server.namespace)
    pool = Pool(client, f"gate-{uuid.uuid4().hex[:8]}")
    v1 = pool.worker(spawn_runtime, server, "b1", V1)
    await v1.wait_status("/readyz", 200)
    await pool.registered("b1")
    first, _ = await pool.reconcile(VersioningSpec(), "b1")
    assert SetCurrent("b1") in first.calls

    spec = VersioningSpec.model_validate({"gate": {"workflowType": "FailingSmoke"}})
    v2 = pool.worker(spawn_runtime, server, "b2", V2, workflows="OrderFlow,FailingSmoke")
    await v2.wait_status("/readyz", 200)
    await pool.registered("b2")

    async def gate_failed() -> RoutingPlan | None:
        p, _ = await pool.reconcile(spec, "b2")
        assert p.calls == ()
        return p if p.conditions[0].reason == Reason.GATE_FAILED else None

    failed = await until(gate_failed, "the gate to fail")
    assert "FailingSmoke" in failed.conditions[0].message
    assert "FAILED" in failed.conditions[0].message
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.ramping_build) == ("b1", None)


async def test_routing_owned_by_someone_else_is_reported_not_fought(
    versioning_temporal_server: TemporalDevServer, spawn_runtime: SpawnRuntime
) -> None:
    server = versioning_temporal_server
    client = await Client.connect(server.address, namespace=server.namespace)
    pool = Pool(client, f"owned-{uuid.uuid4().hex[:8]}")
    v1 = pool.worker(spawn_runtime, server, "b1", V1)
    await v1.wait_status("/readyz", 200)
    await pool.registered("b1")
    state = await observe(client, pool.deployment)
    await client.workflow_service.set_worker_deployment_manager(
        SetWorkerDeploymentManagerRequest(
            namespace=client.namespace,
            deployment_name=pool.deployment,
            self=True,
            conflict_token=state.conflict_token,
            identity="alice",
        )
    )

    refused, out = await pool.reconcile(VersioningSpec(), "b1")
    assert refused.calls == ()
    assert out.done == []
    assert refused.conditions[0].reason == Reason.OWNED_ELSEWHERE
    assert "'alice'" in refused.conditions[0].message
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.manager_identity) == (None, "alice")

    # Alice hands routing back (manager-identity unset); the next pass claims and promotes.
    await client.workflow_service.set_worker_deployment_manager(
        SetWorkerDeploymentManagerRequest(
            namespace=client.namespace,
            deployment_name=pool.deployment,
            manager_identity="",
            conflict_token=state.conflict_token,
            identity="alice",
        )
    )
    back, out = await pool.reconcile(VersioningSpec(), "b1")
    assert back.calls == (SetManager(), SetCurrent("b1"))
    assert out.refused == []
    state = await observe(client, pool.deployment)
    assert (state.current_build, state.manager_identity) == ("b1", ME)
