"""Temporal's per-namespace rate limit on Worker Deployment reads answers ResourceExhausted;
execute.py turns it into a 30 s back-off instead of retrying at once (TWC #291). Real dev server
with the limit lowered to 1 request per second; nothing registered (NotFound is still counted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from workerpool_operator.versioning.execute import RESOURCE_EXHAUSTED_BACKOFF_S, Backoff, observe

pytestmark = pytest.mark.temporal


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    srv = TemporalDevServer(
        Path(tmp_path_factory.mktemp("temporal-ratelimit")),
        dynamic_config={"frontend.globalNamespaceWorkerDeploymentReadRPS": 1},
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_rate_limited_describe_backs_off(slow_server: TemporalDevServer) -> None:
    client = await Client.connect(slow_server.address, namespace=slow_server.namespace)
    results = await asyncio.gather(
        *(observe(client, "ns/never-registered") for _ in range(20)), return_exceptions=True
    )
    backoffs = [r for r in results if isinstance(r, Backoff)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Backoff)]
    assert others == []
    assert backoffs, results
    assert {b.seconds for b in backoffs} == {RESOURCE_EXHAUSTED_BACKOFF_S}
    assert "DescribeWorkerDeployment" in str(backoffs[0])
    assert any(not isinstance(r, BaseException) and not r.exists for r in results)
