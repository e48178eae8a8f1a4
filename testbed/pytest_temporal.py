"""Pytest plugin: the session-wide real Temporal dev server.

Fixtures:
    temporal_server (session): a started `testbed.temporal.TemporalDevServer` with
        `.address` ("127.0.0.1:PORT"), `.namespace` ("default"), `.stop()` and `.start()`
        (restart on the same port and database file, to simulate an outage).
        Killed with its whole process group at the end of the session.
    temporal (function): the same server, guaranteed running when the test starts; use it in
        tests that stop the server, so a failing outage test cannot leave later tests without
        a server.
    versioning_temporal_server (session): a server of its own for Worker Versioning tests,
        drainage and poller TTLs lowered (VERSIONING_DYNAMIC_CONFIG).
    version_cap_temporal_server (session): another, with a version cap of 5 and Temporal's
        drainage status at its default (VERSION_CAP_DYNAMIC_CONFIG).

Tests using these fixtures are marked `temporal` automatically.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.temporal import (
    VERSION_CAP_DYNAMIC_CONFIG,
    VERSIONING_DYNAMIC_CONFIG,
    TemporalDevServer,
)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """Start one dev server for the whole session (about 2-5 s) and kill it at the end."""
    server = TemporalDevServer(Path(tmp_path_factory.mktemp("temporal")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def versioning_temporal_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TemporalDevServer]:
    """A dev server of its own for Worker Versioning tests: drainage and poller TTLs lowered
    (VERSIONING_DYNAMIC_CONFIG) so rollouts take seconds; these settings must not leak into the
    other tests' server."""
    server = TemporalDevServer(
        Path(tmp_path_factory.mktemp("temporal-versioning")),
        dynamic_config=VERSIONING_DYNAMIC_CONFIG,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def version_cap_temporal_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TemporalDevServer]:
    """A dev server of its own with a low version cap (VERSION_CAP_DYNAMIC_CONFIG), for the
    version-cap and deleted-pool clean-up tests; the other versioning tests keep theirs."""
    server = TemporalDevServer(
        Path(tmp_path_factory.mktemp("temporal-version-cap")),
        dynamic_config=VERSION_CAP_DYNAMIC_CONFIG,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def temporal(temporal_server: TemporalDevServer) -> Iterator[TemporalDevServer]:
    """The session server, restarted before and after the test if a test left it stopped."""
    temporal_server.ensure_running()
    yield temporal_server
    temporal_server.ensure_running()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        names = {"temporal_server", "temporal", "versioning_temporal_server",
                 "version_cap_temporal_server"}  # fmt: skip
        if names & set(fixtures):
            item.add_marker(pytest.mark.temporal)
