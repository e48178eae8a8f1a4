"""Attacks on the one shared operator: a tenant trying to stop or starve it for everyone
(issue 20, item 7), with the two figures the issue asks for.

- `health_period_under_fault_s`: the period at which another tenant's connection is still
  checked while one connection hangs (a TLS endpoint that accepts and never answers) and one
  Secret is malformed (an API key that is not UTF-8). The probe connection's address is a local
  listener: each health check dials it, so the time between dials is the period the tenant
  gets (the operator's period is 30 s).
- `secret_cache_rss_mib`: how much the operator's RSS grows when a tenant opts 200 Secrets of
  1 MiB each in (goal: at most 50 MiB; an operator caching them whole grows by ~270 MiB).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from testbed.wait import eventually
from tests.security.attacks import attack, until
from tests.security.conftest import Bed, record
from tests.security.tenants import TcpListener, connection, secret, unique

HEALTH_PERIOD_S = 30.0
SECRETS = 200
SECRET_BYTES = (1 << 20) - 4096  # just under the API's 1 MiB limit for a Secret's data


class Dials(TcpListener):
    """Records when it is dialled and closes each connection at once."""

    def __init__(self) -> None:
        self.times: list[float] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.times.append(time.monotonic())
        conn.close()

    def checks(self, gap: float = 12.0) -> list[float]:
        """Start times of dial bursts (the client retries within one check, backing off up
        to 5 s for about 10 s; checks are 30 s apart)."""
        out: list[float] = []
        for t in self.times:
            if not out or t - out[-1] > gap:
                out.append(t)
        return out


class Silent(TcpListener):
    """Accepts TCP connections and never sends a byte (a hanging TLS endpoint)."""

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
def dials() -> Iterator[Dials]:
    d = Dials()
    yield d
    d.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


@attack("tenant: stop or stall connection health checks for every tenant")
async def test_one_tenant_cannot_stop_the_health_checks(
    bed: Bed, dials: Dials, silent: Silent
) -> None:
    name = unique("probe")
    author = bed.connection_author()
    assert author.apply(connection(name, dials.address)).returncode == 0
    await until(lambda: len(dials.checks()) >= 1, "the first health check of the probe")
    # The faults: a malformed Secret behind one connection, a silent endpoint behind another.
    secret(bed, f"{name}-bad", {"api-key": b"\xff\xfe\xfd"}, opted_in=True)
    bad = {"tls": {}, "apiKeySecretRef": {"name": f"{name}-bad"}}
    assert author.apply(connection(f"{name}-bad", "127.0.0.1:1", **bad)).returncode == 0
    assert author.apply(connection(f"{name}-hang", silent.address, tls={})).returncode == 0
    await until(lambda: silent.held, "the operator dialling the silent endpoint")
    start = len(dials.checks())
    await eventually(
        lambda: len(dials.checks()) >= start + 3,
        "three more health checks of the probe connection while the faults last",
        lambda: dials.checks(),
        wait_s=5 * HEALTH_PERIOD_S,
    )
    checks = dials.checks()[start - 1 :]
    period = statistics.median(b - a for a, b in itertools.pairwise(checks))
    record("health_period_under_fault_s", round(period, 1))
    record("health_period_configured_s", HEALTH_PERIOD_S)
    assert period < 2 * HEALTH_PERIOD_S, f"health checks every {period:.0f}s under the faults"
    assert bed.operator.alive()


@attack("tenant: exhaust the operator's memory with large opted-in Secrets")
async def test_large_opted_in_secrets_do_not_grow_the_operator(bed: Bed) -> None:
    op = bed.operator

    def cached() -> float:
        return op.value("workerpool_operator_cache_objects", kind="Secret")

    await until(lambda: op.value("workerpool_operator_cache_objects", kind="Pod") >= 0
                     and op.live(), "the operator serving metrics")  # fmt: skip
    await asyncio.sleep(5)
    before_objects, before_rss = cached(), op.rss_mib()
    blob = base64.b64encode(b"\x00" * SECRET_BYTES).decode()
    prefix = unique("big")

    def create(batch: int) -> None:
        docs = [
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": f"{prefix}-{i}", "namespace": bed.team_b,
                          "labels": {"workerpools.io/temporal-credentials": "true"}},
             "data": {"api-key": blob}}
            for i in range(batch, batch + 10)
        ]  # fmt: skip
        bed.kube.kubectl("create", "-f", "-", input=yaml.safe_dump_all(docs), timeout=600)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, range(0, SECRETS, 10)))
    await eventually(
        lambda: cached() >= before_objects + SECRETS, "the operator caching every Secret",
        lambda: cached(), wait_s=600,
    )  # fmt: skip
    await asyncio.sleep(5)
    grown = op.rss_mib() - before_rss
    record("secret_cache_rss_mib", round(grown, 1))
    record("operator_rss_mib_without_secrets", round(before_rss, 1))
    record("secret_cache_secrets", f"{SECRETS} x {SECRET_BYTES} bytes, opted in")
    bed.kube.run("delete", "secrets", "-n", bed.team_b, "-l",
                 "workerpools.io/temporal-credentials=true", "--wait=false")  # fmt: skip
    assert grown <= 50, f"the operator's RSS grew by {grown:.0f} MiB"
