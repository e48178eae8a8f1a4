"""Fixtures for runtime tests: spawn runtimes and always reap them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from tests.runtime.helpers import RuntimeProcess

SpawnRuntime = Callable[[dict[str, str]], RuntimeProcess]


@pytest.fixture
def spawn_runtime(tmp_path: Path) -> Iterator[SpawnRuntime]:
    """Start runtime subprocesses; any still alive at test end are killed (no strays)."""
    procs: list[RuntimeProcess] = []

    def spawn(env: dict[str, str]) -> RuntimeProcess:
        proc = RuntimeProcess(env, tmp_path / f"runtime-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield spawn
    for p in procs:
        p.kill()


@pytest.fixture
async def client(temporal: TemporalDevServer) -> Client:
    """A test-side client to start workflows and read their results."""
    return await Client.connect(temporal.address, namespace=temporal.namespace)
