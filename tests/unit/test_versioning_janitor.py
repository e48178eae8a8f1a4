"""The janitor's loop around the pure plan: one hanging connection delays no other.

Temporal is faked here (a client whose ListWorkerDeployments never answers cannot be had from a
real server on demand); the removal itself runs against the real dev server in
tests/e2e/test_versioning_cleanup.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from temporalio.api.workflowservice.v1 import ListWorkerDeploymentsResponse

from workerpool_operator.grants import Grants
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import Connection
from workerpool_operator.versioning import janitor as janitor_module
from workerpool_operator.versioning.janitor import Janitor

HANGS, ANSWERS = Connection("hangs:7233"), Connection("answers:7233")


@dataclass
class Service:
    address: str
    listed: list[str] = field(default_factory=list)

    async def list_worker_deployments(self, _: Any) -> ListWorkerDeploymentsResponse:
        self.listed.append(self.address)
        if self.address == HANGS.address:
            await asyncio.Event().wait()  # never answers
        return ListWorkerDeploymentsResponse()


@dataclass
class Client:
    workflow_service: Service
    namespace: str = "default"


class Caps:
    grants = Grants()


class View:
    """The cache as the janitor reads it: no pool, no connection object."""

    namespaces = None
    caps = Caps()

    def store(self, _: Any) -> dict[str, Any]:
        return {}

    def has(self, _: Any) -> bool:
        return False


async def test_a_hanging_connection_is_time_boxed_and_the_others_are_swept(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(janitor_module, "SWEEP_TIMEOUT_SECONDS", 0.3)
    services = {c.address: Service(c.address) for c in (HANGS, ANSWERS)}

    async def connect(address: str, **_: Any) -> Any:
        return Client(services[address])

    j = Janitor(cast(ClusterView, View()), TemporalClients(connect=connect), "me@c1")
    j._remembered = {HANGS: j.clock(), ANSWERS: j.clock()}  # two deleted pools' connections
    retry = await asyncio.wait_for(j.sweep(), 5)
    assert retry  # the hanging one is looked at again soon
    assert services[ANSWERS.address].listed == [ANSWERS.address]
    assert list(j._remembered) == [HANGS]  # nothing of ours left where the list answered
    assert "no answer within 0.3s" in caplog.text
    assert "Traceback" not in caplog.text
