"""The pure halves of execute.py: DescribeWorkerDeployment -> DeploymentState, the count query,
ListWorkers -> the analysis's task counts."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import (
    RoutingConfig,
    VersionDrainageInfo,
    WorkerDeploymentInfo,
    WorkerDeploymentVersion,
)
from temporalio.api.enums.v1 import RoutingConfigUpdateState, WorkerDeploymentVersionStatus
from temporalio.api.worker.v1 import WorkerHeartbeat, WorkerInfo, WorkerSlotsInfo
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentResponse,
    ListWorkersRequest,
    ListWorkersResponse,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workerpool_operator.versioning.execute import (
    Backoff,
    deployment_state,
    describe_call,
    observe_tasks,
    pinned_query,
    task_counts,
    workers_query,
)
from workerpool_operator.versioning.model import (
    DeploymentState,
    SetRamping,
    TaskCounts,
    VersionSummary,
)

T0 = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 6, 11, 30, tzinfo=UTC)


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


def test_describe_answer_becomes_the_routing_input() -> None:
    Summary = WorkerDeploymentInfo.WorkerDeploymentVersionSummary
    S = WorkerDeploymentVersionStatus
    resp = DescribeWorkerDeploymentResponse(
        conflict_token=b"tok",
        worker_deployment_info=WorkerDeploymentInfo(
            name="ns/orders",
            manager_identity="op/c1",
            routing_config_update_state=RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS,
            routing_config=RoutingConfig(
                current_deployment_version=WorkerDeploymentVersion(
                    deployment_name="ns/orders", build_id="a"
                ),
                ramping_deployment_version=WorkerDeploymentVersion(
                    deployment_name="ns/orders", build_id="b"
                ),
                ramping_version_percentage=25.0,
                ramping_version_percentage_changed_time=ts(T1),
            ),
            version_summaries=[
                Summary(
                    deployment_version=WorkerDeploymentVersion(build_id="a"),
                    status=S.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT,
                    create_time=ts(T0),
                    last_current_time=ts(T1),
                ),
                Summary(
                    deployment_version=WorkerDeploymentVersion(build_id="b"),
                    status=S.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING,
                ),
                Summary(
                    deployment_version=WorkerDeploymentVersion(build_id="c"),
                    status=S.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED,
                    drainage_info=VersionDrainageInfo(last_changed_time=ts(T0)),
                ),
            ],
        ),
    )
    assert deployment_state(resp) == DeploymentState(
        exists=True,
        conflict_token=b"tok",
        manager_identity="op/c1",
        current_build="a",
        ramping_build="b",
        ramp_percentage=25.0,
        ramp_changed_at=T1,
        routing_updating=True,
        routing_changed_at=T1,  # the latest of the routing config's change times
        versions=(
            VersionSummary("a", "Current", created_at=T0, last_current_at=T1),
            VersionSummary("b", "Ramping"),
            VersionSummary("c", "Drained", drained_at=T0),
        ),
    )


def test_unversioned_current_and_no_ramp() -> None:
    state = deployment_state(
        DescribeWorkerDeploymentResponse(worker_deployment_info=WorkerDeploymentInfo())
    )
    assert (state.current_build, state.ramping_build, state.ramp_percentage) == (None, None, 0.0)


def test_count_query_and_call_descriptions() -> None:
    assert pinned_query("ns/orders", "1.2-ab") == (
        'TemporalWorkerDeploymentVersion="ns/orders:1.2-ab" AND ExecutionStatus="Running"'
    )
    assert describe_call(SetRamping(None, 0.0)) == "SetRampingVersion (none) 0%"


# --- the analysis's task rules: ListWorkers -> TaskCounts (issue 19) ------------------------------


def worker(
    key: str, build: str, wf: tuple[int, int], act: tuple[int, int], *,
    deployment: str = "ns/orders", status: int = 1,
) -> WorkerInfo:  # fmt: skip
    """One ListWorkers entry: (processed, failed) workflow and activity tasks since it started."""
    return WorkerInfo(
        worker_heartbeat=WorkerHeartbeat(
            worker_instance_key=key,
            status=status,  # type: ignore[arg-type]
            deployment_version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build),
            workflow_task_slots_info=WorkerSlotsInfo(
                total_processed_tasks=wf[0], total_failed_tasks=wf[1]
            ),
            activity_task_slots_info=WorkerSlotsInfo(
                total_processed_tasks=act[0], total_failed_tasks=act[1]
            ),
        )
    )


def test_task_counts_sum_the_builds_workers_and_keep_those_that_exited() -> None:
    """Counts are summed per build over its workers; a worker that shut down (status 2, as the
    dev server lists it after it exits) keeps what it did; other builds, other deployments and
    a worker listed twice do not count again."""
    listed = [
        worker("w1", "b", (10, 4), (30, 3)),
        worker("w2", "b", (6, 0), (10, 0), status=2),  # exited: its last heartbeat
        worker("w2", "b", (6, 0), (10, 0), status=2),  # the same worker on a second page
        worker("w3", "a", (100, 50), (100, 50)),  # the current build
        worker("w4", "b", (100, 50), (100, 50), deployment="ns/other"),
    ]
    assert task_counts(listed, "ns/orders", "b") == TaskCounts(
        workers=2, workflow_processed=16, workflow_failed=4,
        activity_processed=40, activity_failed=3,
    )  # fmt: skip
    assert task_counts([], "ns/orders", "b") == TaskCounts()


def test_the_workers_query_names_the_version_on_every_queue() -> None:
    """One ListWorkers per pass covers every task queue the build's workers poll (a release
    group's members included), not one queue."""
    assert workers_query("ns/orders", "b-1") == "DeploymentName = 'ns/orders' AND BuildId = 'b-1'"


class _Workers:
    """ListWorkers of a fake frontend: the pages it holds, or the error it answers."""

    def __init__(self, pages: list[list[WorkerInfo]], error: RPCStatusCode | None = None) -> None:
        self.pages, self.error = pages, error
        self.asked: list[ListWorkersRequest] = []

    async def list_workers(self, req: ListWorkersRequest) -> ListWorkersResponse:
        self.asked.append(req)
        if self.error is not None:
            raise RPCError("refused", self.error, b"")
        page = int(req.next_page_token or b"0")
        token = str(page + 1).encode() if page + 1 < len(self.pages) else b""
        return ListWorkersResponse(workers_info=self.pages[page], next_page_token=token)


def _client(service: _Workers) -> Client:
    return cast(Client, SimpleNamespace(namespace="default", workflow_service=service))


async def test_observe_tasks_reads_every_page_and_backs_off_when_asked() -> None:
    pages = [[worker("w1", "b", (4, 1), (2, 0))], [worker("w2", "b", (6, 2), (8, 8))]]
    service = _Workers(pages)
    assert await observe_tasks(_client(service), "ns/orders", "b") == TaskCounts(2, 10, 3, 10, 8)
    assert [r.query for r in service.asked] == [workers_query("ns/orders", "b")] * 2
    # No answer: no task verdict this pass; Temporal's rate limit: the pass backs off.
    assert await observe_tasks(_client(_Workers([], RPCStatusCode.UNAVAILABLE)), "d", "b") is None
    with pytest.raises(Backoff):
        await observe_tasks(_client(_Workers([], RPCStatusCode.RESOURCE_EXHAUSTED)), "d", "b")
