"""SIGKILL storms, an API server restart and a leader kill, against the real operator process."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import pytest

from testbed.audit import AuditLog, Write, count, parse_time
from testbed.chaos import ensure_whole, restart_component
from testbed.cluster import LocalCluster
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests.chaos.conftest import FULL, create_pool, no_problems, problems
from workerpool_operator.kinds import DEPLOYMENT, LEASE, POOL
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.kube.errors import ApiError
from workerpool_operator.kube.leader import LeaderElector
from workerpool_operator.names import MANAGERS

# The design's lease arithmetic (leader.py): a standby takes over once it has seen the same
# renewal for a whole lease duration, checking every `retry`; the last renewal it saw came at
# most one `retry` before the kill and it noticed it at most one `retry` later. So takeover
# lies in [duration - retry, duration + 2 retry] after the kill, plus the scheduling delays
# of a loaded machine (SLACK_S) on the late side only: never sooner.
_ELECTOR = LeaderElector.__dataclass_fields__
LEASE_DURATION_S = float(_ELECTOR["lease_duration"].default)  # type: ignore[arg-type]
RETRY_S = float(_ELECTOR["retry"].default)  # type: ignore[arg-type]
SLACK_S = 4.0


def local_bed(kube_cluster: KubeCluster) -> LocalCluster:
    """The local bed (its components and its audit log); other clusters cannot be faulted."""
    if not kube_cluster.local:
        pytest.skip("faults and audits a component of the local test bed")
    return LocalCluster()


def operator_writes(writes: list[Write], managers: set[str]) -> list[Write]:
    """Writes under the operators' field managers, their leader Lease left out (renewals)."""
    return [w for w in writes if w.field_manager in managers and w.resource != "leases"]


async def churn(kube: Kube, namespace: str, pools: int, rng: random.Random) -> None:
    """Create `pools` pools, then update and delete some of them, as users would."""
    names = [f"p{i:03d}" for i in range(pools)]
    for start in range(0, pools, 10):
        await asyncio.gather(*(create_pool(kube, namespace, n) for n in names[start : start + 10]))
        await asyncio.sleep(rng.uniform(0.0, 0.3))
    for name in rng.sample(names, pools // 3):
        with contextlib.suppress(ApiError):
            await kube.patch(
                POOL, namespace, name, {"spec": {"replicas": rng.randint(2, 4)}}, verb="update"
            )
        await asyncio.sleep(rng.uniform(0.0, 0.1))
    for name in rng.sample(names, pools // 5):
        with contextlib.suppress(ApiError):
            await kube.delete(POOL, namespace, name)
        await asyncio.sleep(rng.uniform(0.0, 0.1))


async def test_sigkill_storm_converges_to_exactly_the_right_children(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    pools, kills = (200, 20) if FULL else (40, 6)
    rng = random.Random(20261128)
    op = OperatorProcess(kube_cluster.kubeconfig, "storm", "-n", namespace, log_dir=tmp_path)
    try:
        await eventually(op.live, "the operator to start")
        work = asyncio.create_task(churn(kube, namespace, pools, rng))
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.3, 2.5))
            op.restart()  # SIGKILL, then start again at once
        await work
        await no_problems(lambda: problems(kube, namespace), "after the storm", limit_s=300)
        assert op.alive()
        assert op.tracebacks() == 0, op.log_path.read_text()[-3000:]
        if kube_cluster.local:  # an operator crash must never take the bed down with it
            assert await asyncio.to_thread(ensure_whole, LocalCluster(), 0.0) == []
    finally:
        op.stop()


async def test_api_server_restart_under_load_is_survived_without_a_restart(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    bed = local_bed(kube_cluster)
    op = OperatorProcess(kube_cluster.kubeconfig, "apiserver", "-n", namespace, log_dir=tmp_path)
    try:
        await eventually(op.live, "the operator to start")
        pid = op.pid
        await asyncio.gather(*(create_pool(kube, namespace, f"a{i:02d}") for i in range(10)))
        await asyncio.to_thread(restart_component, bed, "kube-apiserver", 3.0)
        await eventually(lambda: kube_cluster.run("get", "--raw", "/readyz").returncode == 0,
                         "the API server to come back", wait_s=120)  # fmt: skip
        back = time.time()
        # The controller manager and scheduler exit when their lease lapses during the outage:
        # the bed is shared, so it is made whole (what died is started again, and both have
        # renewed their Leases since) before anything else; the operator must not need that.
        await asyncio.to_thread(ensure_whole, bed, back)
        await kube.close()  # the test's own connections died with the server
        for i in range(10):  # the server may still say 429 while its storage initializes
            for _ in range(60):
                try:
                    await create_pool(kube, namespace, f"b{i:02d}")
                    break
                except ApiError as exc:
                    if exc.status not in (429, 500, 503, 504):
                        raise
                    await asyncio.sleep(1.0)
        await no_problems(lambda: problems(kube, namespace), "after the API server restart")
        assert op.alive()
        assert op.pid == pid  # recovered by itself: same process, no restart
        assert await asyncio.to_thread(ensure_whole, bed, back) == []  # and nothing died since
    finally:
        op.stop()


async def test_leader_kill_standby_takes_over_in_lease_time_and_nothing_is_written_twice(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    bed = local_bed(kube_cluster)
    audit = AuditLog(bed.audit_log)
    assert audit.available(), f"no audit log at {bed.audit_log}: restart the bed"
    ha = ("-n", namespace, "--leader-elect")
    env = {"POD_NAMESPACE": namespace}
    a = OperatorProcess(kube_cluster.kubeconfig, "a", *ha, log_dir=tmp_path, env=env)
    b: OperatorProcess | None = None
    try:
        await eventually(a.leads, "replica a to lead")
        b = OperatorProcess(kube_cluster.kubeconfig, "b", *ha, log_dir=tmp_path, env=env)
        await eventually(b.live, "replica b to start")
        ours = {a.manager(MANAGERS.operator), b.manager(MANAGERS.operator)}
        await asyncio.gather(*(create_pool(kube, namespace, f"h{i}") for i in range(5)))

        async def settled() -> list[str]:
            """Children and status current, and every pool Ready: a status a had yet to
            write when it died (pods turning ready) would be b's to write, legitimately."""
            found = await problems(kube, namespace)
            pools, _ = await kube.list(POOL, namespace)
            for pool in pools:
                conds = (pool.get("status") or {}).get("conditions") or []
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                    found.append(f"pool {pool['metadata']['name']} not Ready yet")
            return found

        await no_problems(settled, "pools made by the leader, Ready")
        # ... and nothing is written any more (a's queue is empty, b is a standby): counted
        # by the API server, not by the operators' own counters
        quiet_from = time.time()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(3)
            now = time.time()
            writes = audit.writes(since=now - 3, until=now, namespaces={namespace})
            if not operator_writes(writes, ours):
                quiet_from = now - 3
                break
        else:
            pytest.fail("the leader kept writing to settled pools for 60 s")
        assert a.leads()
        assert not b.leads()

        a.kill()
        killed = time.time()

        async def holder() -> list[str]:
            lease = await kube.request(
                "GET", path(LEASE, namespace, "workerpool-operator"), kind=LEASE
            )
            spec = (lease or {}).get("spec") or {}
            return [] if spec.get("holderIdentity") == "b" else [f"lease held by {spec}"]

        await no_problems(holder, "the standby to take the lease", 60)
        lease = await kube.request("GET", path(LEASE, namespace, "workerpool-operator"), kind=LEASE)
        assert lease is not None
        failover = parse_time(lease["spec"]["acquireTime"]) - killed
        early, late = LEASE_DURATION_S - RETRY_S, LEASE_DURATION_S + 2 * RETRY_S + SLACK_S
        assert early <= failover <= late, (
            f"took over {failover:.1f}s after the kill; the lease arithmetic says "
            f"[{early:.1f}, {LEASE_DURATION_S + 2 * RETRY_S:.1f}] s (+{SLACK_S:g} s load)"
        )
        await eventually(
            lambda: (
                b is not None
                and b.value("workerpool_operator_queue_depth") == 0
                and b.value("workerpool_operator_reconciles_total") >= 5
            ),
            "the new leader's first look at every pool",
        )
        # Nothing written twice: the API server saw no write to the pools or their children
        # from the settled moment, through a's death, until b had looked at every pool.
        looked = time.time()
        twice = operator_writes(
            audit.writes(since=quiet_from, until=looked, namespaces={namespace}), ours
        )
        assert twice == [], count(twice, "resource", "name", "verb", "user_agent")
        await create_pool(kube, namespace, "after")
        await no_problems(lambda: problems(kube, namespace), "a pool made after the failover")
        # b writes now, and b alone (a is dead): the API server saw the new pool's children
        after = operator_writes(audit.writes(since=looked, namespaces={namespace}), ours)
        assert {w.name for w in after} >= {"after"}, count(after, "resource", "name")
        dep = await kube.get(DEPLOYMENT, namespace, "after")
        assert dep is not None
        managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
        assert managers <= {b.manager(MANAGERS.operator), "kube-controller-manager"}
        assert await asyncio.to_thread(ensure_whole, bed, 0.0) == []
    finally:
        a.stop()
        if b is not None:
            b.stop()
