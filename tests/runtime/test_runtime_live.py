"""The runtime as a real subprocess against the real Temporal dev server.

Covers what a pool's users notice: workflows complete, one /metrics has both the SDK's and the
runtime's metrics, /readyz follows the server's availability, SIGTERM drains without
losing work and exits 0 (not temporalio's exit-time abort, 134), and the API key is sent on
the wire to a front that requires it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from testbed.apikey_front import api_key_front
from testbed.certs import issue, make_ca
from testbed.temporal import TemporalDevServer
from tests.runtime.conftest import SpawnRuntime
from tests.runtime.helpers import RuntimeProcess, base_env, metric_sum, unique_queue


async def test_runs_workflows_serves_metrics_and_exits_cleanly(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    queue = unique_queue("greet")
    rt = spawn_runtime(base_env(temporal, queue, TWP_POOL_NAME="greeters"))
    await rt.wait_status("/readyz", 200)
    health = await rt.get("/healthz")
    assert health is not None
    assert health.status_code == 200

    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                client.execute_workflow(
                    "GreetWorkflow", f"user{i}", id=f"greet-{uuid.uuid4()}", task_queue=queue
                )
                for i in range(5)
            )
        ),
        180,
    )
    assert sorted(results) == sorted(f"HELLO, USER{i}!" for i in range(5))

    text = await rt.metrics()
    assert "temporal_activity_execution_latency" in text  # SDK (Core) metrics
    assert "temporal_worker_task_slots_available" in text
    assert 'twp_build_info{python_version="' in text  # runtime metrics on the same page
    assert metric_sum(text, "twp_activities_started_total") >= 10
    assert 'twp_activities_succeeded_total{activity_type="shout"} 5.0' in text
    assert metric_sum(text, "twp_activities_in_flight") == 0
    assert "twp_ready 1.0" in text

    assert await rt.terminate() == 0
    lines = [json.loads(line) for line in rt.output.splitlines() if line.startswith("{")]
    start = next(r for r in lines if r["message"] == "Starting Temporal worker")
    assert start["task_queue"] == queue
    assert start["namespace"] == "default"
    assert start["pool"] == "greeters"
    assert start["identity"]
    assert "PyGILState" not in rt.output


async def test_readyz_follows_server_outage(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    queue = unique_queue("outage")
    rt = spawn_runtime(base_env(temporal, queue, TWP_READINESS_PROBE_SECONDS="0.5"))
    await rt.wait_status("/readyz", 200)

    temporal.stop()
    try:
        await rt.wait_status("/readyz", 503)
        resp = await rt.get("/readyz")
        assert resp is not None
        assert "unreachable" in resp.text
        healthz = await rt.get("/healthz")  # alive while the server is away: no restart loop
        assert healthz is not None
        assert healthz.status_code == 200
    finally:
        temporal.start()

    await rt.wait_status("/readyz", 200)
    fresh = await Client.connect(temporal.address)
    result = await asyncio.wait_for(
        fresh.execute_workflow(
            "GreetWorkflow", "again", id=f"after-outage-{uuid.uuid4()}", task_queue=queue
        ),
        180,
    )
    assert result == "HELLO, AGAIN!"
    assert await rt.terminate() == 0


async def test_waits_for_unreachable_server_and_stops_on_sigterm(
    spawn_runtime: SpawnRuntime, temporal: TemporalDevServer
) -> None:
    env = base_env(temporal, unique_queue("never"), TWP_TEMPORAL_ADDRESS="127.0.0.1:1")
    rt = spawn_runtime(env)
    await rt.wait_status("/readyz", 503)
    for _ in range(100):
        if "Temporal server unreachable at 127.0.0.1:1, retrying" in rt.output:
            break
        await asyncio.sleep(0.2)
    assert "Temporal server unreachable at 127.0.0.1:1, retrying" in rt.output
    assert await rt.terminate() == 0


async def _start_squares(
    client: Client, queue: str, n: int, seconds: float
) -> list[WorkflowHandle[Any, int]]:
    return [
        await client.start_workflow(
            "SquareWorkflow",
            args=[i, seconds],
            id=f"sq-{uuid.uuid4()}",
            task_queue=queue,
            result_type=int,
        )
        for i in range(n)
    ]


async def _wait_in_flight(rt: RuntimeProcess, n: int) -> None:
    for _ in range(600):
        if metric_sum(await rt.metrics(), "twp_activities_in_flight") >= n:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"activities never in flight:\n{rt.output}")


async def test_sigterm_drains_in_flight_activities(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    queue = unique_queue("drain")
    rt = spawn_runtime(base_env(temporal, queue, TWP_GRACEFUL_SHUTDOWN_SECONDS="120"))
    await rt.wait_status("/readyz", 200)
    handles = await _start_squares(client, queue, 6, seconds=3)
    await _wait_in_flight(rt, 6)

    assert await rt.terminate() == 0  # waits for the six to finish, then exits cleanly
    assert "Worker drained and stopped" in rt.output

    # Workflow tasks still need a worker to record completion; a successor pod takes over.
    successor = spawn_runtime(base_env(temporal, queue))
    results = [await asyncio.wait_for(h.result(), 180) for h in handles]
    assert results == [i * i for i in range(6)]
    # Every activity finished on its first attempt, on the runtime that was told to stop.
    for h in handles:
        history = await h.fetch_history()
        started = [
            e.activity_task_started_event_attributes
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert [a.attempt for a in started] == [1]
        assert started[0].identity == f"{rt.proc.pid}@{socket.gethostname()}"
    assert await successor.terminate() == 0


async def test_activities_cut_off_after_grace_are_retried_elsewhere(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    queue = unique_queue("cutoff")
    first = spawn_runtime(base_env(temporal, queue, TWP_GRACEFUL_SHUTDOWN_SECONDS="0.5"))
    await first.wait_status("/readyz", 200)
    handles = await _start_squares(client, queue, 4, seconds=8)
    await _wait_in_flight(first, 4)

    assert await first.terminate() == 0
    after = first.output
    assert "PyGILState" not in after

    second = spawn_runtime(base_env(temporal, queue))
    await second.wait_status("/readyz", 200)
    results = [await asyncio.wait_for(h.result(), 180) for h in handles]
    assert results == [i * i for i in range(4)]
    assert await second.terminate() == 0


async def test_the_api_key_reaches_temporal_on_the_wire(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime, tmp_path: Path
) -> None:
    """Through a TLS front that lets a call through only with `authorization: Bearer <key>`
    (as Temporal Cloud does, testbed/apikey_front.py): the runtime's every call, its polls
    included, carries the key of TWP_API_KEY, and workflows complete."""
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    server = issue(ca, pki, "temporal", sans=["IP:127.0.0.1", "DNS:temporal.test"], client=False)
    key = f"key-{uuid.uuid4().hex}"
    queue = unique_queue("keyed")
    with api_key_front(temporal.address, server, key, tmp_path / "front") as front:
        env = base_env(temporal, queue, TWP_TEMPORAL_ADDRESS=front.address,
                       TWP_TLS_ENABLED="true", TWP_TLS_CA_PATH=str(ca.cert),
                       TWP_TLS_SERVER_NAME="temporal.test", TWP_API_KEY=key)  # fmt: skip
        rt = spawn_runtime(env)
        await rt.wait_status("/readyz", 200)
        result = await asyncio.wait_for(
            client.execute_workflow(
                "GreetWorkflow", "keyed", id=f"keyed-{uuid.uuid4()}", task_queue=queue
            ),
            180,
        )
        assert result == "HELLO, KEYED!"
        assert await rt.terminate() == 0
        calls = front.calls()
        methods = {c["method"].rsplit("/", 1)[-1] for c in calls}
        assert {"PollWorkflowTaskQueue", "PollActivityTaskQueue"} <= methods, methods
        refused = [c for c in calls if not c["accepted"]]
        assert not refused, refused  # every call carried the right key
