"""A versioned runtime registers its Worker Deployment Version with the real Temporal dev server,
and the workflows it runs are pinned to that version (the pool's default behavior)."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from tests.runtime.conftest import SpawnRuntime
from tests.runtime.helpers import base_env, describe, registered, unique_queue


async def test_versioned_worker_registers_and_pins_its_workflows(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    queue = unique_queue("versioned")
    # '/' as in the operator's default `<namespace>/<pool>`; '.' in the build ID (an image tag).
    deployment = f"team-{uuid.uuid4().hex[:6]}/orders"
    build = "1.2-0123456789"
    rt = spawn_runtime(
        base_env(
            temporal,
            queue,
            TWP_WORKER_DEPLOYMENT_NAME=deployment,
            TWP_WORKER_BUILD_ID=build,
            TWP_DEFAULT_VERSIONING_BEHAVIOR="Pinned",
        )
    )
    await rt.wait_status("/readyz", 200)
    assert await registered(client, deployment, build), rt.output

    # Route the deployment to this build (what the operator's plan does), then run a workflow.
    found = await describe(client, deployment)
    assert found is not None
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment,
            build_id=build,
            conflict_token=found.conflict_token,
            identity="test",
        )
    )
    wf_id = f"greet-{uuid.uuid4()}"
    result = await asyncio.wait_for(
        client.execute_workflow("GreetWorkflow", "v", id=wf_id, task_queue=queue), 120
    )
    assert result == "HELLO, V!"
    desc = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=wf_id)
        )
    )
    info = desc.workflow_execution_info.versioning_info
    assert info.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
    assert info.deployment_version.build_id == build
    assert info.deployment_version.deployment_name == deployment
    assert await rt.terminate() == 0


async def test_half_set_version_is_a_config_error(
    temporal: TemporalDevServer, spawn_runtime: SpawnRuntime
) -> None:
    rt = spawn_runtime(base_env(temporal, unique_queue("half"), TWP_WORKER_BUILD_ID="b1"))
    assert await rt.wait_exit(60) != 0
    assert "TWP_WORKER_DEPLOYMENT_NAME and TWP_WORKER_BUILD_ID" in rt.output
