"""testbed.wait: a probe that races the operator reads "not there yet" as "not yet"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from testbed import cluster
from testbed.wait import api_error, eventually, not_found, until

KUBECTL_404 = cluster.TestbedError(
    "kubectl get deployment orders failed (1):\nError from server (NotFound): deployments.apps "
    '"orders" not found'
)
KUBECTL_FORBIDDEN = cluster.TestbedError(
    "kubectl get deployment orders failed (1):\nError from server (Forbidden): no"
)


class Status(Exception):
    """An HTTP error as the kubernetes client and the operator's client raise it."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def appears_on_try(n: int, error: Exception) -> Callable[[], int]:
    """A probe that raises `error` until its n-th call, then sees the object."""
    calls = [0]

    def probe() -> int:
        calls[0] += 1
        if calls[0] < n:
            raise error
        return calls[0]

    return probe


def test_not_found_is_not_yet_by_default() -> None:
    assert until(appears_on_try(3, KUBECTL_404), "the Deployment", interval=0) == 3
    assert until(appears_on_try(3, Status(404)), "the Deployment", interval=0) == 3


def test_other_errors_end_the_wait_unless_asked() -> None:
    with pytest.raises(cluster.TestbedError, match="Forbidden"):
        until(appears_on_try(3, KUBECTL_FORBIDDEN), "the Deployment", interval=0)
    with pytest.raises(cluster.TestbedError, match="NotFound"):
        until(appears_on_try(3, KUBECTL_404), "the Deployment", interval=0, not_yet=None)
    probe = appears_on_try(3, Status(503))
    assert until(probe, "the API server back", interval=0, not_yet=api_error) == 3
    assert not not_found(KUBECTL_FORBIDDEN)
    assert api_error(ConnectionRefusedError())
    assert api_error(KUBECTL_FORBIDDEN)


def test_a_timeout_fails_with_what_was_last_seen() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"(?s)the Deployment.*last error.*NotFound"):
        until(appears_on_try(10**6, KUBECTL_404), "the Deployment", wait_s=0.05, interval=0.01)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)3 replicas.*\{'replicas': 2\}"):
        until(lambda: False, "3 replicas", lambda: {"replicas": 2}, wait_s=0.05, interval=0.01)


def test_eventually_takes_blocking_and_async_probes() -> None:
    async def main() -> None:
        assert await eventually(appears_on_try(3, KUBECTL_404), "blocking", interval=0) == 3
        calls = [0]

        async def probe() -> bool:
            calls[0] += 1
            if calls[0] < 2:
                raise Status(404)
            return True

        assert await eventually(probe, "async", interval=0) is True

    asyncio.run(main())
