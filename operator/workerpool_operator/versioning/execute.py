"""Observe a Worker Deployment and carry a routing plan out, with the raw workflow-service RPCs.

The Python SDK has no deployment client, so this module speaks the gRPC API directly
(`client.workflow_service.*`). Every routing change carries the conflict token of the same pass
(each response's token is handed to the next call) and the operator's identity; a
ResourceExhausted answer stops the pass and asks for a 30 s back-off instead of retrying.
Decisions are made in `routing.py`; here are only the calls and their translation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as ProtoVersion
from temporalio.api.enums.v1 import (
    RoutingConfigUpdateState,
    TaskQueueType,
    WorkerDeploymentVersionStatus,
    WorkerVersioningMode,
    WorkflowExecutionStatus,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.worker.v1 import WorkerInfo
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DeleteWorkerDeploymentVersionRequest,
    DescribeTaskQueueRequest,
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentResponse,
    DescribeWorkerDeploymentVersionRequest,
    DescribeWorkflowExecutionRequest,
    ListWorkersRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentManagerRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import PinnedVersioningOverride, WorkerDeploymentVersion
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workerpool_operator.versioning.model import (
    AnalysisObservation,
    Call,
    DeleteVersion,
    DeploymentState,
    GateObservation,
    Observation,
    SetCurrent,
    SetManager,
    SetRamping,
    StartGate,
    TaskCounts,
    TemporalStatus,
    VersionSummary,
    next_step,
)

# Temporal's ~50 RPS per-namespace limit on deployment reads answers ResourceExhausted (TWC #291).
RESOURCE_EXHAUSTED_BACKOFF_S = 30.0

_STATUS: dict[int, TemporalStatus] = {
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE: "Inactive",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CREATED: "Created",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT: "Current",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING: "Ramping",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING: "Draining",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED: "Drained",
}


def _time(stamp: Timestamp, present: bool) -> datetime | None:
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def deployment_state(resp: DescribeWorkerDeploymentResponse) -> DeploymentState:
    """The routing input from one DescribeWorkerDeployment answer (pure translation)."""
    info = resp.worker_deployment_info
    routing = info.routing_config
    current = routing.current_deployment_version.build_id or None
    ramping = routing.ramping_deployment_version.build_id or None
    versions = []
    for s in info.version_summaries:
        status = _STATUS.get(s.status, "Inactive")
        versions.append(
            VersionSummary(
                build_id=s.deployment_version.build_id,
                status=status,
                created_at=_time(s.create_time, s.HasField("create_time")),
                last_current_at=_time(s.last_current_time, s.HasField("last_current_time")),
                drained_at=_time(s.drainage_info.last_changed_time, s.HasField("drainage_info")),
            )
        )
    return DeploymentState(
        exists=True,
        conflict_token=resp.conflict_token,
        manager_identity=info.manager_identity,
        current_build=current,
        ramping_build=ramping,
        ramp_percentage=float(routing.ramping_version_percentage) if ramping else 0.0,
        ramp_changed_at=_time(
            routing.ramping_version_percentage_changed_time,
            routing.HasField("ramping_version_percentage_changed_time"),
        ),
        routing_updating=info.routing_config_update_state
        == RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS,
        routing_changed_at=max(
            (
                at
                for at in (
                    _time(
                        routing.current_version_changed_time,
                        routing.HasField("current_version_changed_time"),
                    ),
                    _time(
                        routing.ramping_version_changed_time,
                        routing.HasField("ramping_version_changed_time"),
                    ),
                    _time(
                        routing.ramping_version_percentage_changed_time,
                        routing.HasField("ramping_version_percentage_changed_time"),
                    ),
                )
                if at is not None
            ),
            default=None,
        ),
        versions=tuple(versions),
    )


class Backoff(Exception):
    """Temporal asked us to slow down: look again after `seconds`."""

    def __init__(self, seconds: float, what: str) -> None:
        super().__init__(f"{what}: Temporal rate limit (ResourceExhausted), retrying in {seconds}s")
        self.seconds = seconds


def _exhausted(err: RPCError, what: str) -> Backoff | None:
    if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return Backoff(RESOURCE_EXHAUSTED_BACKOFF_S, what)
    return None


async def observe(client: Client, deployment: str) -> DeploymentState:
    """One DescribeWorkerDeployment; `exists=False` until a worker of it has polled."""
    try:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return DeploymentState()
        raise _exhausted(err, "DescribeWorkerDeployment") or err from err
    return deployment_state(resp)


def pinned_query(deployment: str, build: str) -> str:
    """The visibility query for running workflows on one version (the names are admission-checked
    to carry no quote or backslash)."""
    return f'TemporalWorkerDeploymentVersion="{deployment}:{build}" AND ExecutionStatus="Running"'


async def count_open_pinned(client: Client, deployment: str, build: str) -> int | None:
    """Exact count of running workflows on the version; None when visibility did not answer
    (the plan then treats the version as still busy)."""
    try:
        resp = await client.workflow_service.count_workflow_executions(
            CountWorkflowExecutionsRequest(
                namespace=client.namespace, query=pinned_query(deployment, build)
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            raise Backoff(RESOURCE_EXHAUSTED_BACKOFF_S, "CountWorkflowExecutions") from err
        return None
    return int(resp.count)


def analysis_queries(deployment: str, build: str) -> tuple[str, str]:
    """Visibility queries for a build's closed workflows, and those of them that failed."""
    version = f'TemporalWorkerDeploymentVersion="{deployment}:{build}"'
    return (
        f'{version} AND ExecutionStatus!="Running"',
        f'{version} AND ExecutionStatus IN ("Failed","TimedOut")',
    )


async def observe_analysis(client: Client, deployment: str, build: str) -> AnalysisObservation:
    """The ramping build's closed and failed workflow counts; both None when visibility did not
    answer (no verdict by that rule this pass)."""
    counts = []
    for query in analysis_queries(deployment, build):
        try:
            resp = await client.workflow_service.count_workflow_executions(
                CountWorkflowExecutionsRequest(namespace=client.namespace, query=query)
            )
        except RPCError as err:
            if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
                raise Backoff(RESOURCE_EXHAUSTED_BACKOFF_S, "CountWorkflowExecutions") from err
            return AnalysisObservation()
        counts.append(int(resp.count))
    return AnalysisObservation(closed=counts[0], failed=counts[1])


def workers_query(deployment: str, build: str) -> str:
    """The ListWorkers query for one version's workers, on every task queue they poll (so a
    release group's build is judged over all its members' queues). The names are
    admission-checked to carry no quote or backslash."""
    return f"DeploymentName = '{deployment}' AND BuildId = '{build}'"


def task_counts(workers: Iterable[WorkerInfo], deployment: str, build: str) -> TaskCounts:
    """The build's workers' heartbeat task counts, summed (pure translation of ListWorkers).

    Workers that shut down are kept (their last heartbeat holds what they did before they
    exited; the dev server lists them with status Shutdown); each worker is counted once by its
    instance key."""
    keys: set[str] = set()
    n = wf_done = wf_failed = act_done = act_failed = 0
    for info in workers:
        hb = info.worker_heartbeat
        version = hb.deployment_version
        if version.deployment_name != deployment or version.build_id != build:
            continue
        if hb.worker_instance_key in keys:
            continue
        keys.add(hb.worker_instance_key)
        n += 1
        wf, act = hb.workflow_task_slots_info, hb.activity_task_slots_info
        wf_done += wf.total_processed_tasks
        wf_failed += wf.total_failed_tasks
        act_done += act.total_processed_tasks
        act_failed += act.total_failed_tasks
    return TaskCounts(n, wf_done, wf_failed, act_done, act_failed)


# ListWorkers pages read per pass at most (1000 workers a page).
_WORKER_PAGES = 5


async def observe_tasks(client: Client, deployment: str, build: str) -> TaskCounts | None:
    """The build's workers' task counts from their heartbeats (`ListWorkers`, all their queues);
    None when the server did not answer (no verdict by the task rules this pass)."""
    workers: list[WorkerInfo] = []
    token = b""
    for _ in range(_WORKER_PAGES):
        try:
            resp = await client.workflow_service.list_workers(
                ListWorkersRequest(
                    namespace=client.namespace,
                    query=workers_query(deployment, build),
                    page_size=1000,
                    next_page_token=token,
                )
            )
        except RPCError as err:
            if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
                raise Backoff(RESOURCE_EXHAUSTED_BACKOFF_S, "ListWorkers") from err
            return None
        workers.extend(resp.workers_info)
        token = resp.next_page_token
        if not token:
            break
    return task_counts(workers, deployment, build)


async def unversioned_pollers(client: Client, task_queue: str) -> bool:
    """Whether an unversioned worker polls the workflow queue (a ramp from unversioned needs
    one, or its share of new work would wait for nobody)."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    versioned = WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED
    return any(p.deployment_options.worker_versioning_mode != versioned for p in resp.pollers)


async def polled_queues(client: Client, deployment: str, build: str) -> frozenset[str]:
    """The task queues a worker of the version has polled (any type): a release group's build
    moves only once every member's queue is among them. Empty while it is unknown."""
    try:
        resp = await client.workflow_service.describe_worker_deployment_version(
            DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=ProtoVersion(deployment_name=deployment, build_id=build),
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return frozenset()
        raise _exhausted(err, "DescribeWorkerDeploymentVersion") or err from err
    return frozenset(q.name for q in resp.worker_deployment_version_info.task_queue_infos)


_GATE_DONE = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "Succeeded",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: "Running",
}


async def observe_gate(client: Client, workflow_id: str) -> GateObservation:
    """The gate workflow's outcome: NotStarted, Running, Succeeded or Failed (with its status)."""
    try:
        resp = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return GateObservation("NotStarted")
        raise _exhausted(err, "DescribeWorkflowExecution") or err from err
    status = resp.workflow_execution_info.status
    state = _GATE_DONE.get(status, "Failed")
    name = WorkflowExecutionStatus.Name(status).removeprefix("WORKFLOW_EXECUTION_STATUS_")
    return GateObservation(state, "" if state != "Failed" else name)  # type: ignore[arg-type]


async def start_gate(client: Client, deployment: str, gate: StartGate) -> str | None:
    """Start the gate workflow pinned to the new build (an existing run with that ID is kept).

    Returns why it could not start yet, or None. Right after a build registers, the server may
    still refuse a pin to it ("Pinned version ... is not present in task queue"): the next pass
    tries again, as the gate is still NotStarted then.
    """
    args: Sequence[Any] = [] if gate.input is None else [gate.input]
    try:
        await client.start_workflow(
            gate.workflow_type,
            args=args,
            id=gate.workflow_id,
            task_queue=gate.task_queue,
            execution_timeout=timedelta(seconds=gate.timeout_seconds),
            versioning_override=PinnedVersioningOverride(
                WorkerDeploymentVersion(deployment_name=deployment, build_id=gate.build_id)
            ),
        )
    except WorkflowAlreadyStartedError:
        return None
    except RPCError as err:
        backoff = _exhausted(err, "StartWorkflowExecution")
        if backoff is not None:
            raise backoff from err
        return f"{err.status.name}: {err.message}"
    return None


@dataclass
class Outcome:
    """What happened to a plan's calls."""

    done: list[Call] = field(default_factory=list)
    refused: list[tuple[Call, str]] = field(default_factory=list)  # FailedPrecondition & co.
    conflict_token: bytes = b""


async def execute(
    client: Client, deployment: str, identity: str, token: bytes, calls: Sequence[Call]
) -> Outcome:
    """Make the calls in order. A refused routing change stops the rest (its successors assumed
    it); a refused DeleteVersion (pollers still known) is only recorded, the next pass retries."""
    ns, svc = client.namespace, client.workflow_service
    out = Outcome(conflict_token=token)
    for call in calls:
        # Every Set* names the deployment, carries the last conflict token and our identity.
        routing: dict[str, Any] = {
            "namespace": ns,
            "deployment_name": deployment,
            "conflict_token": out.conflict_token,
            "identity": identity,
        }
        try:
            if isinstance(call, SetManager):
                resp: Any = await svc.set_worker_deployment_manager(
                    SetWorkerDeploymentManagerRequest(self=True, **routing)
                )
                out.conflict_token = resp.conflict_token
            elif isinstance(call, SetCurrent):
                resp = await svc.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        build_id=call.build_id or "", **routing
                    )
                )
                out.conflict_token = resp.conflict_token
            elif isinstance(call, SetRamping):
                resp = await svc.set_worker_deployment_ramping_version(
                    SetWorkerDeploymentRampingVersionRequest(
                        build_id=call.build_id or "",
                        percentage=call.percentage if call.build_id else 0.0,
                        **routing,
                    )
                )
                out.conflict_token = resp.conflict_token
            elif isinstance(call, DeleteVersion):
                # The plan asks only once the exact count is 0 and the Deployment is gone, which
                # is what the server's lagging drainage status would wait minutes to confirm.
                await svc.delete_worker_deployment_version(
                    DeleteWorkerDeploymentVersionRequest(
                        namespace=ns,
                        deployment_version=ProtoVersion(
                            deployment_name=deployment, build_id=call.build_id
                        ),
                        skip_drainage=True,
                        identity=identity,
                    )
                )
        except RPCError as err:
            backoff = _exhausted(err, type(call).__name__)
            if backoff is not None:
                raise backoff from err
            out.refused.append((call, f"{err.status.name}: {err.message}"))
            if not isinstance(call, DeleteVersion):
                break
            continue
        out.done.append(call)
    return out


def describe_call(call: Call) -> str:
    """One line for Events and logs."""
    if isinstance(call, SetCurrent):
        return f"SetCurrentVersion {call.build_id or '(unversioned)'}"
    if isinstance(call, SetRamping):
        return f"SetRampingVersion {call.build_id or '(none)'} {call.percentage:g}%"
    if isinstance(call, DeleteVersion):
        return f"DeleteVersion {call.build_id}"
    return "SetManager (this operator)"


async def observe_pool(
    client: Client,
    deployment: str,
    target_build: str,
    task_queue: str,
    gate_workflow_id: str | None,
    analysis: bool = False,
    steps: Sequence[tuple[int, str | None]] = (),
    grouped: bool = False,
    task_analysis: bool = False,
) -> Observation:
    """One Describe, one exact count per known version, the gate (when the spec has one and the
    target is not current yet), while nothing is current or the pool left versioning
    (`target_build` "") the unversioned-poller check, and for a release group's member
    (`grouped`) the queues the registered target has polled while it is not current. While the
    target ramps under an analysis: its visibility counts, and with `task_analysis` (a task rule
    is set) one ListWorkers of its workers' heartbeats."""
    state = await observe(client, deployment)
    counts: dict[str, int | None] = {}
    for v in state.versions:
        counts[v.build_id] = await count_open_pinned(client, deployment, v.build_id)
    gate = None
    if gate_workflow_id is not None and state.current_build != target_build:
        gate = await observe_gate(client, gate_workflow_id)
    pollers = False
    if state.current_build is None or not target_build:  # from, or back to, unversioned
        pollers = await unversioned_pollers(client, task_queue)
    judged = None
    ramping = state.ramp_percentage if state.ramping_build == target_build else None
    if analysis and target_build and ramping is not None:
        judged = await observe_analysis(client, deployment, target_build)
        if task_analysis:
            tasks = await observe_tasks(client, deployment, target_build)
            judged = AnalysisObservation(judged.closed, judged.failed, tasks)
    step_gate = None
    index = next_step([pct for pct, _ in steps], ramping)
    if target_build and state.current_build != target_build and index < len(steps):
        workflow_id = steps[index][1]
        if workflow_id is not None:
            step_gate = (index, await observe_gate(client, workflow_id))
    polled = None
    moving = state.current_build != target_build or state.ramping_build is not None
    if grouped and target_build and moving:
        registered = state.summary(target_build) is not None
        polled = (
            await polled_queues(client, deployment, target_build) if registered else frozenset()
        )
    return Observation(state, counts, gate, pollers, judged, step_gate, polled)
