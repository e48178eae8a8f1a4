"""Leader election (leader.py): the write fence closes before anyone else can take the lease.

Two electors share a scripted Lease endpoint (GET, POST, PUT with resourceVersion conflicts,
as the API server does) and each has its own fake clock, so the timing rules are checked as
arithmetic, not by sleeping; tests/chaos checks the same against the real API server.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from testbed.wait import eventually
from workerpool_operator.kube.errors import Conflict
from workerpool_operator.kube.leader import LeaderElector, LeaseNamespaceMissing


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class LeaseApi:
    """One Lease, stored as the API server stores it; `cut_off` holds the identities whose
    every request fails (a partitioned or killed replica: it can neither renew nor release)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.cut_off: set[str] = set()
        self.namespace_missing = False  # every call 404s, which Kube.request returns as None

    def client(self, identity: str) -> Any:
        api = self

        class Client:
            async def request(self, method: str, url: str, *, kind: Any, body: Any = None) -> Any:
                if identity in api.cut_off:
                    raise OSError("connection refused")
                return await api.request(method, url, kind=kind, body=body)

        return Client()

    async def request(self, method: str, url: str, *, kind: Any, body: Any = None) -> Any:
        if self.namespace_missing:
            return None
        if method == "GET":
            return copy.deepcopy(self.lease)
        if method == "POST":
            if self.lease is not None:
                raise Conflict(409, "AlreadyExists", "lease exists", [])
        elif self.lease is None or body["metadata"].get("resourceVersion") != str(self.version):
            raise Conflict(409, "Conflict", "the object has been modified", [])
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def holder(self) -> str:
        return str(((self.lease or {}).get("spec") or {}).get("holderIdentity") or "")


def elector(api: LeaseApi, identity: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api.client(identity), "ns", identity, clock=clock, retry=0.001)


def test_the_fence_closes_before_the_lease_can_expire() -> None:
    e = elector(LeaseApi(), "a", Clock())
    assert e.renew_deadline < e.lease_duration  # else two replicas could write at once


async def _lead(e: LeaderElector, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(e.run(stop))
    await asyncio.wait_for(e.leading.wait(), 5)
    return task


def test_a_leader_cut_off_from_the_api_stops_writing_at_the_renew_deadline() -> None:
    async def main() -> None:
        api, clock, stop = LeaseApi(), Clock(), asyncio.Event()
        a = elector(api, "a", clock)
        task = await _lead(a, stop)
        assert a.is_leader()
        api.cut_off.add("a")  # every renewal fails from now on
        renewed = clock.t
        clock.t = renewed + a.renew_deadline - 0.01
        await asyncio.sleep(0.05)
        assert a.is_leader()  # still inside the deadline
        clock.t = renewed + a.renew_deadline
        assert not a.is_leader()  # the fence closes at once, before the loop notices
        await eventually(a.lost.is_set, "a to notice it lost the lease", wait_s=5, interval=0.01)
        assert not a.leading.is_set()
        stop.set()
        await task

    asyncio.run(main())


def test_a_standby_takes_over_a_lease_duration_after_it_last_saw_a_renewal() -> None:
    """b's own clock decides: it takes the lease once the same renewTime has stood for a whole
    leaseDurationSeconds since b first saw it, never earlier; by then a's fence is closed."""

    async def main() -> None:
        api, clock_a, clock_b = LeaseApi(), Clock(), Clock()
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
        task_a = await _lead(a, stop_a)
        task_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(0.05)
        assert api.holder() == "a"
        assert not b.leading.is_set()

        api.cut_off.add("a")  # a dies as SIGKILL leaves it: no renewal, no release
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        assert api.holder() == "a"
        await asyncio.sleep(0.05)  # b sees the last renewal at its clock_b.t
        seen = clock_b.t
        clock_b.t = seen + a.lease_duration - 0.01
        await asyncio.sleep(0.05)
        assert api.holder() == "a"  # not before a whole lease duration
        assert not b.leading.is_set()
        clock_a.t += a.renew_deadline  # a's fence, had it survived, is closed well before
        assert not a.is_leader()
        clock_b.t = seen + a.lease_duration
        await asyncio.wait_for(b.leading.wait(), 5)
        assert api.holder() == "b"
        assert api.lease is not None
        assert api.lease["spec"]["leaseTransitions"] == 1
        stop_b.set()
        await task_b

    asyncio.run(main())


def test_a_renewal_seen_restarts_the_standbys_count() -> None:
    async def main() -> None:
        api, clock_a, clock_b = LeaseApi(), Clock(), Clock()
        stop = asyncio.Event()
        a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
        task_a = await _lead(a, stop)
        task_b = asyncio.create_task(b.run(stop))
        for _ in range(5):  # a keeps renewing (a new renewTime each round) while b's time flies
            clock_b.t += a.lease_duration / 2
            await asyncio.sleep(0.05)
            assert api.holder() == "a"
            assert not b.leading.is_set()
        stop.set()
        await asyncio.gather(task_a, task_b)
        assert api.holder() == ""  # a clean stop releases the lease for the standby at once

    asyncio.run(main())


def test_of_two_candidates_exactly_one_wins() -> None:
    async def main() -> None:
        api, clock, stop = LeaseApi(), Clock(), asyncio.Event()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        tasks = [asyncio.create_task(e.run(stop)) for e in (a, b)]
        await eventually(lambda: a.leading.is_set() or b.leading.is_set(), "a leader",
                         wait_s=5, interval=0.01)  # fmt: skip
        await asyncio.sleep(0.05)
        assert a.leading.is_set() != b.leading.is_set()
        assert api.holder() == ("a" if a.leading.is_set() else "b")
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_nobody_leads_when_the_lease_namespace_is_missing() -> None:
    """The create answers 404 (Kube.request: None): no Lease exists, so a replica that took
    that for "created" would lead beside every other one (seen: two leaders in the bench)."""

    async def main() -> None:
        api, clock, stop = LeaseApi(), Clock(), asyncio.Event()
        api.namespace_missing = True
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        tasks = [asyncio.create_task(e.run(stop)) for e in (a, b)]
        await asyncio.sleep(0.1)  # many rounds at retry=0.001
        assert not a.leading.is_set()
        assert not b.leading.is_set()
        with pytest.raises(LeaseNamespaceMissing, match="--operator-namespace"):
            await a._try()
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
