"""The pure halves of execute.py: DescribeWorkerDeployment -> DeploymentState, the count query."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import (
    RoutingConfig,
    VersionDrainageInfo,
    WorkerDeploymentInfo,
    WorkerDeploymentVersion,
)
from temporalio.api.enums.v1 import RoutingConfigUpdateState, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkerDeploymentResponse

from workerpool_operator.versioning.execute import (
    deployment_state,
    describe_call,
    pinned_query,
)
from workerpool_operator.versioning.model import (
    DeploymentState,
    SetRamping,
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
