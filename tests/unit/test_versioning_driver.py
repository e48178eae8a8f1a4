"""What the versioning driver asks Temporal (versioning/driver.py): a versioned pool's reading
serves its reconciles until the look its plan asked for, and is read afresh for a spec change,
once that look is due, or once a routing call changed Temporal's side. The routing calls go
through the connection the reading was taken with.

A fake Temporal frontend (it counts the calls and answers like the real one would for a
deployment whose target build is current) and a fake clock: what matters is which reconcile
asks Temporal, not real time. The real dev server is in tests/e2e/test_versioning.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

from temporalio.api.deployment.v1 import (
    RoutingConfig,
    WorkerDeploymentInfo,
    WorkerDeploymentVersion,
)
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentResponse

from tests import builders
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.names import DEFAULT_NAMESPACE
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.render.versioned import target_build_id
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import Resolved, Unresolved, resolve_connection
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL
from workerpool_operator.versioning.driver import VersioningDriver
from workerpool_operator.versioning.model import RoutingPlan, SetCurrent

KEY = ("shop", "orders")
ME = "workerpool-operator@test"


def pool_body(generation: int = 3, **where: Any) -> dict[str, Any]:
    where = where or {"connection": {"address": "temporal:7233"}}
    doc = builders.pool("orders", "shop", workflows=("app:Wf",), versioning={}, **where)
    doc["metadata"].update(uid="uid-1", generation=generation)
    return doc


class Frontend:
    """The workflow service of one Temporal namespace: the target build is current."""

    def __init__(self, build: str) -> None:
        self.build = build
        self.calls: Counter[str] = Counter()

    async def describe_worker_deployment(self, req: Any) -> DescribeWorkerDeploymentResponse:
        self.calls["DescribeWorkerDeployment"] += 1
        version = WorkerDeploymentVersion(deployment_name=req.deployment_name, build_id=self.build)
        summary = WorkerDeploymentInfo.WorkerDeploymentVersionSummary(
            deployment_version=version,
            status=WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT,
        )
        return DescribeWorkerDeploymentResponse(
            conflict_token=b"t1",
            worker_deployment_info=WorkerDeploymentInfo(
                name=req.deployment_name,
                manager_identity=ME,
                routing_config=RoutingConfig(current_deployment_version=version),
                version_summaries=[summary],
            ),
        )

    async def count_workflow_executions(self, _: Any) -> Any:
        self.calls["CountWorkflowExecutions"] += 1
        return SimpleNamespace(count=0)

    async def set_worker_deployment_current_version(self, req: Any) -> Any:
        self.calls["SetWorkerDeploymentCurrentVersion"] += 1
        assert req.conflict_token == b"t1"  # the token of the reading it was planned from
        return SimpleNamespace(conflict_token=b"t2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class View:
    """The questions the driver asks the cluster view; `connection`: the one
    TemporalConnection in the cache."""

    def __init__(self, connection: Mapping[str, Any] | None = None) -> None:
        self.connection = connection
        self.ready: dict[str, int] = {}  # build -> ready replicas of its Deployment
        self.pools: list[dict[str, Any]] = []  # pools naming the deployment (release groups)

    def pools_naming(self, deployment: str) -> list[dict[str, Any]]:
        return self.pools

    def builds_of(self, namespace: str, pool: str) -> list[dict[str, Any]]:
        return [
            {"metadata": {"labels": {BUILD_ID_LABEL: build}}, "status": {"readyReplicas": n}}
            for build, n in self.ready.items()
        ]

    def resolve(self, pool: api.TemporalWorkerPool, body: Mapping[str, Any]) -> Any:
        return resolve_connection(
            pool,
            connection=self.connection,
            namespace_labels={},
            credentials_namespace=DEFAULT_NAMESPACE,
        )

    def secrets_in(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {}


def driver_for(
    frontend: Frontend, clock: Clock, dialed: list[str], view: View | None = None
) -> VersioningDriver:
    async def connect(address: str, **_: Any) -> Any:
        dialed.append(address)
        return SimpleNamespace(namespace="default", workflow_service=frontend)

    clients = TemporalClients(connect=connect, clock=clock)
    return VersioningDriver(cast(ClusterView, view or View()), clients, ME, clock=clock)


def reads(frontend: Frontend) -> int:
    return frontend.calls["DescribeWorkerDeployment"]


async def test_a_reading_serves_the_pools_reconciles_until_its_look_is_due() -> None:
    body = pool_body()
    frontend = Frontend(target_build_id(api.TemporalWorkerPool.from_body(body)))
    clock, dialed = Clock(), list[str]()
    driver = driver_for(frontend, clock, dialed)

    first = await driver.observe(body)  # the first look reads
    assert first is not None
    assert first.observation is not None
    assert first.deployment == "shop/orders"
    assert first.connection is not None
    assert dict(frontend.calls) == {"DescribeWorkerDeployment": 1, "CountWorkflowExecutions": 1}
    driver.hold(KEY, 1.0)  # its plan looks again in 1 s (a rollout's poll)

    clock.now += 0.5  # a child's status moved; our own status write came back
    for _ in range(3):
        again = await driver.observe(body)
        assert again is not None
        assert again.observation == first.observation
        assert again.now >= first.now  # the plan's clock moves on
    assert reads(frontend) == 1

    clock.now += 0.5  # the look the plan asked for
    assert (await driver.observe(body)) is not None
    assert reads(frontend) == 2


async def test_the_target_builds_workers_coming_up_read_afresh() -> None:
    # A new build registers its version when its workers first poll, which is when the
    # runtime turns ready: that Deployment event is worth a look before the next poll.
    body = pool_body()
    target = target_build_id(api.TemporalWorkerPool.from_body(body))
    frontend = Frontend(target)
    clock, dialed, view = Clock(), list[str](), View()
    view.ready = {target: 0, "older": 2}
    driver = driver_for(frontend, clock, dialed, view)
    await driver.observe(body)
    driver.hold(KEY, 1.0)

    view.ready["older"] = 1  # another build's Deployment moved: the reading stands
    await driver.observe(body)
    assert reads(frontend) == 1
    view.ready[target] = 1
    await driver.observe(body)
    assert reads(frontend) == 2


async def test_a_spec_change_a_routing_call_or_leadership_reads_afresh() -> None:
    body = pool_body()
    frontend = Frontend(target_build_id(api.TemporalWorkerPool.from_body(body)))
    clock, dialed = Clock(), list[str]()
    driver = driver_for(frontend, clock, dialed)
    await driver.observe(body)
    driver.hold(KEY, 30.0)  # at rest

    changed = pool_body(generation=4)
    await driver.observe(changed)
    assert reads(frontend) == 2
    driver.hold(KEY, 30.0)

    read = await driver.observe(changed)
    assert read is not None
    assert reads(frontend) == 2
    routing = RoutingPlan(calls=(SetCurrent("b2"),), versions=(), conditions=())
    carried = await driver.carry_out(KEY, read, routing)
    assert carried.done == [SetCurrent("b2")]
    assert not carried.refused
    assert dialed == ["temporal:7233"]  # the reading's connection, dialed once, reused
    await driver.observe(changed)  # what came of the call is read, not assumed
    assert reads(frontend) == 3

    driver.hold(KEY, 30.0)
    driver.forget_all()  # leadership taken over
    await driver.observe(changed)
    assert reads(frontend) == 4

    driver.hold(KEY, None)  # a plan that asks for no look keeps nothing
    await driver.observe(changed)
    assert reads(frontend) == 5


async def test_an_unresolved_connection_asks_temporal_nothing_and_says_why() -> None:
    body = pool_body(connection_ref={"name": "missing"})
    pool = api.TemporalWorkerPool.from_body(body)
    problem = View().resolve(pool, body)
    assert isinstance(problem, Unresolved)
    assert not isinstance(problem, Resolved)
    frontend = Frontend("b1")
    clock, dialed = Clock(), list[str]()
    driver = driver_for(frontend, clock, dialed)

    read = await driver.observe(body)
    assert read is not None
    assert read.observation is None
    assert read.connection is None
    assert read.error == problem.message
    assert not frontend.calls
    assert not dialed

    # Once the TemporalConnection exists, the build ID is rendered from the resolved pool.
    connection = {"metadata": {"name": "missing", "namespace": "shop"},
                  "spec": {"address": "temporal.shop:7233"}}  # fmt: skip
    view = View(connection)
    resolved = view.resolve(pool, body)
    assert isinstance(resolved, Resolved)
    frontend = Frontend(target_build_id(resolved.pool))
    driver = driver_for(frontend, clock, dialed, view)
    read = await driver.observe(body)
    assert read is not None
    assert read.observation is not None
    assert read.observation.temporal.current_build == frontend.build
    assert dialed == ["temporal.shop:7233"]


async def test_pools_naming_one_deployment_share_one_build_that_any_member_changes() -> None:
    body = pool_body()  # shop/orders under its default name
    activities = builders.pool(
        "activities", "shop", connection={"address": "temporal:7233"}, workflows=(),
        activities=["app.acts:ACTIVITIES"], versioning={"deploymentName": "shop/orders"},
    )  # fmt: skip
    alone = target_build_id(api.TemporalWorkerPool.from_body(body))
    view = View()
    view.pools = [body, activities]
    frontend = Frontend("whatever")
    driver = driver_for(frontend, Clock(), [], view)
    read = await driver.observe(body)
    assert read is not None
    assert read.group is not None
    assert read.group.members == ("activities", "orders")
    assert read.group.driver == "activities"
    assert read.group.build_id != alone  # every member's template is in it
    first = read.group.build_id

    activities["spec"]["activities"] = ["app.acts2:ACTIVITIES"]  # the activity pool changes
    again = await driver.observe(body)
    assert again is not None
    assert again.group is not None
    assert again.group.build_id != first  # so the workflow pool runs a new build too
    assert reads(frontend) == 2  # another target: Temporal read afresh


async def test_a_pool_joining_a_group_reads_the_verdict_the_other_members_recorded() -> None:
    """A fixed build ID keeps the group's build when a pool with an earlier name joins and
    becomes its driver; the build the group rejected stays rejected (routing.py reads
    `Group.rejected`), from the record in the other member's status."""
    versioning = {"deploymentName": "shop/orders", "buildId": "v7"}
    orders = builders.pool("orders", "shop", connection={"address": "temporal:7233"},
                           workflows=("app:Wf",), versioning=versioning)  # fmt: skip
    orders["metadata"]["generation"] = 3
    orders["status"] = {"versions": [
        {"buildId": "v7", "state": "Draining", "rejected": "3 of 10 failed",
         "rejectedGeneration": 3},
        {"buildId": "v6", "state": "Current"},
    ]}  # fmt: skip
    joining = builders.pool("activities", "shop", connection={"address": "temporal:7233"},
                            workflows=(), activities=["app.acts:ACTIVITIES"],
                            versioning=versioning)  # fmt: skip
    view = View()
    view.pools = [joining, orders]
    read = await driver_for(Frontend("v6"), Clock(), [], view).observe(joining)
    assert read is not None
    assert read.group is not None
    assert (read.group.driver, read.group.build_id) == ("activities", "v7")
    assert read.group.rejected == {"v7": "3 of 10 failed"}
    # Once the other member's spec changes (a newer generation), its record no longer stands.
    orders["metadata"]["generation"] = 4
    lifted = await driver_for(Frontend("v6"), Clock(), [], view).observe(joining)
    assert lifted is not None
    assert lifted.group is not None
    assert lifted.group.rejected == {}
