"""Crash and fault tests: the real operator process against the real control plane.

`make test` runs them at a size that fits CI; `make chaos` sets CHAOS_SCALE=full.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from testbed.operator import pool_manifest
from testbed.pytest_cluster import KubeCluster
from testbed.wait import api_error, eventually
from workerpool_operator.kinds import (
    CHILDREN,
    CRD,
    DEPLOYMENT,
    PDB,
    POOL,
    SCALED_OBJECT,
    SERVICE,
    SERVICE_MONITOR,
    TRIGGER_AUTH,
    Kind,
    child,
)
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.kube.errors import ApiError
from workerpool_operator.names import APPLIED_HASH_ANNOTATION
from workerpool_operator.reconcile.diff import is_subset
from workerpool_operator.reconcile.model import Observed
from workerpool_operator.reconcile.plan import plan
from workerpool_operator.render import Capabilities

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("CHAOS_SCALE", "") == "full"
REQUIRED: tuple[Kind, ...] = (DEPLOYMENT, SERVICE, PDB)


@pytest.fixture
def crd(pool_crd: Path) -> None:
    """Every chaos test creates pools."""


@pytest_asyncio.fixture
async def kube(kube_cluster: KubeCluster, crd: None) -> AsyncIterator[Kube]:
    """The operator's own async client, as the test's hands on the API."""
    os.environ["KUBECONFIG"] = kube_cluster.kubeconfig
    client = Kube()
    try:
        yield client
    finally:
        await client.close()


def pool_body(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return pool_manifest(name, namespace, replicas)


async def create_pool(kube: Kube, namespace: str, name: str, replicas: int = 1) -> None:
    """Create a pool as a user would, retrying while the API server says 429 or 5xx."""
    for attempt in range(60):
        try:
            await kube.request(
                "POST",
                path(POOL, namespace),
                kind=POOL,
                body=pool_body(namespace, name, replicas),
                write_verb="create",
            )
            return
        except ApiError as exc:
            if (exc.status != 429 and exc.status < 500) or attempt == 59:
                raise
        except (aiohttp.ClientError, OSError):
            if attempt == 59:
                raise
        await asyncio.sleep(1.0)


async def capabilities(kube: Kube) -> Capabilities:
    """What the operator finds installed (its optional children depend on it)."""
    crds, _ = await kube.list(CRD)
    names = {c["metadata"]["name"] for c in crds}
    return Capabilities(
        service_monitor=SERVICE_MONITOR.crd in names,
        keda=SCALED_OBJECT.crd in names and TRIGGER_AUTH.crd in names,
    )


def content_problems(
    pool: dict[str, Any], live: dict[Kind, dict[str, Any]], caps: Capabilities
) -> list[str]:
    """Each child the plan wants for `pool`, compared with the live one: the hash of what the
    plan renders must be the one the live object was applied with, and every field the plan
    sets must hold that value live (an edit or a lost write shows either way)."""
    out: list[str] = []
    name = pool["metadata"]["name"]
    for write in plan(pool, caps, Observed()).writes:
        kind = child(write.manifest["apiVersion"], write.manifest["kind"])
        obj = live.get(kind)
        if obj is None:
            continue  # reported as missing (or legitimately absent) by the caller
        want = write.manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        have = (obj["metadata"].get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
        if have != want:
            out.append(f"{kind.kind} {name} applied from another spec ({have} != {want})")
        # (built-in kinds' list items carry no apiVersion and kind: the kind is known here)
        elif not is_subset(
            {k: v for k, v in write.manifest.items() if k not in ("apiVersion", "kind")}, obj
        ):
            out.append(f"{kind.kind} {name} differs from what the plan wants")
    return out


async def problems(kube: Kube, namespace: str) -> list[str]:
    """Everything that differs from 'every pool has exactly its current children, with the
    contents its plan wants, and a current status'."""
    caps = await capabilities(kube)
    live: dict[str, dict[Kind, dict[str, Any]]] = {}
    pools, _ = await kube.list(POOL, namespace)
    by_name = {
        p["metadata"]["name"]: p for p in pools if not p["metadata"].get("deletionTimestamp")
    }
    out: list[str] = []
    for kind in CHILDREN:
        objs, _ = await kube.list(
            kind, namespace, "app.kubernetes.io/managed-by=workerpool-operator"
        )
        names = [o["metadata"]["name"] for o in objs]
        if len(names) != len(set(names)):
            out.append(f"duplicate {kind.kind}")
        for o in objs:
            name = o["metadata"]["name"]
            live.setdefault(name, {})[kind] = o
            pool = by_name.get(name)
            refs = o["metadata"].get("ownerReferences") or []
            if pool is None:
                if not o["metadata"].get("deletionTimestamp"):
                    out.append(f"orphan {kind.kind} {name}")
                continue
            if [r.get("uid") for r in refs if r.get("controller")] != [pool["metadata"]["uid"]]:
                out.append(f"{kind.kind} {name} not controlled by its pool")
            if kind is DEPLOYMENT and o["spec"].get("replicas") != pool["spec"]["replicas"]:
                out.append(f"Deployment {name} replicas {o['spec'].get('replicas')}")
        if kind in REQUIRED:
            missing = set(by_name) - set(names)
            out += [f"missing {kind.kind} {n}" for n in sorted(missing)]
    for name, pool in by_name.items():
        out += content_problems(pool, live.get(name, {}), caps)
        status = pool.get("status") or {}
        if status.get("observedGeneration") != pool["metadata"]["generation"]:
            out.append(f"pool {name} status is stale")
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        if ready is None or ready.get("observedGeneration") != pool["metadata"]["generation"]:
            out.append(f"pool {name} has no current Ready condition")
    return out


async def no_problems(
    probe: Callable[[], Awaitable[list[str]]], what: str, limit_s: float = 300
) -> None:
    """Until probe() lists no problems (testbed.wait.eventually); fail with the last list. Any
    failed API call (the server restarting, or its storage re-initializing) is 'not yet'."""
    found: list[str] = []

    async def none_left() -> bool:
        found[:] = await probe()
        return not found

    await eventually(
        none_left, what, lambda: found[:10], wait_s=limit_s, interval=1.0, not_yet=api_error
    )
