"""SIGKILL storms, an API server restart and a leader kill, against the real operator process."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

from testbed.chaos import restart_component, revive
from testbed.cluster import LocalCluster
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests.chaos.conftest import FULL, create_pool, no_problems, problems
from workerpool_operator.kinds import DEPLOYMENT, LEASE, POOL
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.kube.errors import ApiError


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
    finally:
        op.stop()


async def test_api_server_restart_under_load_is_survived_without_a_restart(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    if not kube_cluster.local:
        import pytest

        pytest.skip("restarts a component of the local test bed")
    op = OperatorProcess(kube_cluster.kubeconfig, "apiserver", "-n", namespace, log_dir=tmp_path)
    try:
        await eventually(op.live, "the operator to start")
        pid = op.pid
        await asyncio.gather(*(create_pool(kube, namespace, f"a{i:02d}") for i in range(10)))
        await asyncio.to_thread(restart_component, LocalCluster(), "kube-apiserver", 3.0)
        await eventually(lambda: kube_cluster.run("get", "--raw", "/readyz").returncode == 0,
                       "the API server to come back", wait_s=120)  # fmt: skip
        # The controller manager and scheduler exit when their lease lapses; start them again
        # (the operator itself must not need that).
        await asyncio.sleep(12)
        await asyncio.to_thread(revive, LocalCluster())
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
    finally:
        op.stop()


async def test_leader_kill_standby_takes_over_and_nothing_is_written_twice(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    ha = ("-n", namespace, "--leader-elect")
    env = {"POD_NAMESPACE": namespace}
    a = OperatorProcess(kube_cluster.kubeconfig, "a", *ha, log_dir=tmp_path, env=env)
    b: OperatorProcess | None = None
    try:
        await eventually(a.leads, "replica a to lead")
        b = OperatorProcess(kube_cluster.kubeconfig, "b", *ha, log_dir=tmp_path, env=env)
        await eventually(b.live, "replica b to start")
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
        # ... and a has stopped writing (nothing left in its queue to carry out)
        deadline = time.monotonic() + 60
        before = a.writes()
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            if a.writes() == before and a.value("workerpool_operator_queue_depth") == 0:
                break
            before = a.writes()
        assert a.writes() > 0
        assert b.writes() == 0  # the standby never writes
        assert not b.leads()

        a.kill()
        await eventually(b.leads, "the standby to take over", wait_s=60)
        await eventually(
            lambda: (
                b.value("workerpool_operator_queue_depth") == 0
                and b.value("workerpool_operator_reconciles_total") >= 5
            ),
            "the new leader's first look at every pool",
        )
        assert b.writes() == 0  # everything a wrote was current: nothing written twice
        await create_pool(kube, namespace, "after")
        await no_problems(lambda: problems(kube, namespace), "a pool made after the failover")
        assert b.writes() > 0
        lease = await kube.request("GET", path(LEASE, namespace, "workerpool-operator"), kind=LEASE)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "b"
        dep = await kube.get(DEPLOYMENT, namespace, "after")
        assert dep is not None
        managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
        assert managers <= {b.manager("workerpool-operator"), "kube-controller-manager"}
    finally:
        a.stop()
        if b is not None:
            b.stop()
