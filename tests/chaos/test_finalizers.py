"""No finalizer trap: pools delete at any time, the operator up, down or never installed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests.chaos.conftest import pool_body
from workerpool_operator.kinds import DEPLOYMENT, POOL
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.names import LEGACY_FINALIZER


async def test_old_finalizer_is_dropped_and_pools_delete_with_the_operator_down(
    kube_cluster: KubeCluster, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    # A pool as version 0.1 left it: kopf's finalizer on it.
    old = pool_body(namespace, "old", 1)
    old["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    await kube.request("POST", path(POOL, namespace), kind=POOL, body=old, write_verb="create")

    op = OperatorProcess(kube_cluster.kubeconfig, "fin", "-n", namespace, log_dir=tmp_path)
    try:

        async def upgraded() -> bool:
            pool = await kube.get(POOL, namespace, "old")
            dep = await kube.get(DEPLOYMENT, namespace, "old")
            if pool is None or dep is None:
                return False
            return not pool["metadata"].get("finalizers")

        deadline = asyncio.get_running_loop().time() + 120
        while not await upgraded():
            assert asyncio.get_running_loop().time() < deadline, "old finalizer still there"
            await asyncio.sleep(0.5)
        new = pool_body(namespace, "new", 1)
        await kube.request("POST", path(POOL, namespace), kind=POOL, body=new, write_verb="create")
        await eventually(lambda: kube_cluster.exists("deployment", "new", namespace=namespace),
                       "the new pool's Deployment")  # fmt: skip
        created = await kube.get(POOL, namespace, "new")
        assert created is not None
        assert not created["metadata"].get("finalizers")  # the operator adds none
    finally:
        op.stop()

    # Operator down (or uninstalled): deleting pools and whole namespaces never waits on it.
    await kube.delete(POOL, namespace, "old")
    await kube.delete(POOL, namespace, "new")
    await eventually(
        lambda: (
            not kube_cluster.exists("twp", "old", namespace=namespace)
            and not kube_cluster.exists("twp", "new", namespace=namespace)
        ),
        "pools to be gone with the operator down",
        wait_s=60,
    )
    other = f"fin-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", other)
    try:
        await kube.request(
            "POST", path(POOL, other), kind=POOL, body=pool_body(other, "p", 1), write_verb="create"
        )
        kube_cluster.kubectl("delete", "namespace", other, "--wait=false")
        await eventually(
            lambda: not kube_cluster.exists("namespace", other),
            "the namespace to be deleted with the operator down",
            wait_s=180,
        )
    finally:
        with contextlib.suppress(Exception):
            kube_cluster.run("delete", "namespace", other, "--wait=false", "--ignore-not-found")
