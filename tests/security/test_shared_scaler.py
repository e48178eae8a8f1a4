"""Attack on the shared Builtin scaler (issue 20, item 5: per-connection isolation with
timeouts in the scaler): one tenant's Builtin pools point at an endpoint that accepts TCP and
never answers, a Temporal that hangs. Another tenant's Builtin pool, on the real Temporal dev
server, must still be scaled to its backlog: the hanging endpoint costs its own pools their
readings (held replicas), never anyone else's."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import TcpListener, get, pool, unique

BUILTIN = {"engine": "Builtin", "minReplicas": 0, "maxReplicas": 5, "targetBacklogPerReplica": 2,
           "pollIntervalSeconds": 5, "scaleDownStabilizationSeconds": 0}  # fmt: skip


class Hang(TcpListener):
    """Accepts TCP connections and never sends a byte."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.held.append(conn)

    def close(self) -> None:
        super().close()
        for c in self.held:
            c.close()


@pytest.fixture
def hang() -> Iterator[Hang]:
    h = Hang()
    yield h
    h.close()


@attack("tenant: stall the Builtin scaler for every tenant with a Temporal that never answers")
async def test_a_hanging_temporal_stalls_only_its_own_pools(
    bed: Bed, hang: Hang, temporal: TemporalDevServer
) -> None:
    name = unique("stall")
    author = bed.pool_author()
    for i in range(4):  # the attacker's pools: four queues on the silent endpoint
        body = pool(f"{name}-{i}", connection={"address": hang.address}, autoscaling=BUILTIN)
        body["spec"]["taskQueue"] = f"{name}-{i}"
        assert author.apply(body).returncode == 0
    await until(lambda: hang.held, "the scaler dialling the silent endpoint")
    # Another tenant's pool (team-b, written by its owner) with a backlog of 6 tasks.
    queue, victim = f"victim-{uuid.uuid4().hex[:8]}", unique("victim")
    inline = {"address": temporal.address, "namespace": temporal.namespace}
    body = pool(victim, connection=inline, autoscaling=BUILTIN)
    body["spec"]["taskQueue"] = queue
    bed.kube.apply(body, namespace=bed.team_b, server_side=False)
    client = await Client.connect(temporal.address, namespace=temporal.namespace)
    for _ in range(6):  # nobody polls the queue: 6 workflow tasks, 2 per replica -> 3
        await client.start_workflow("Flow", id=f"{queue}-{uuid.uuid4().hex[:8]}", task_queue=queue)

    def replicas() -> Any:
        got = bed.kube.run("get", "deployment", victim, "-n", bed.team_b, "-o", "json")
        return json.loads(got.stdout)["spec"].get("replicas") if got.returncode == 0 else None

    await until(lambda: replicas() == 3, "the other tenant's pool scaled to its backlog", replicas)
    assert get(bed, "deployment", f"{name}-0") is not None  # the attacker's pools were written
    assert bed.operator.alive()
