"""Attacks on other people's workloads: a pool author naming a pool after a Deployment the pool
does not control, so that the operator's autoscaling (an HPA, a KEDA ScaledObject, or its own
Builtin scaler) drives that Deployment's replicas (issue 20, "Other people's workloads").

A pool author cannot write HPAs, ScaledObjects or Deployments (test_pool_author.py); the operator
can, in every namespace it serves. So each test checks what the operator wrote or scaled, not
what the tenant may do.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import pool, ready, unique, wait_reason

# The Builtin scaler's poll period for the pools below (the operator's floor is 5.25 s).
POLL_S = 6


def replicas(bed: Bed, name: str) -> int | None:
    """spec.replicas of the Deployment `name` in team-a (None: not there)."""
    got = bed.kube.run("get", "deployment", name, "-n", bed.team_a, "-o", "json")
    if got.returncode != 0:
        return None
    return int(json.loads(got.stdout)["spec"].get("replicas", 1))


def scalers_of(bed: Bed, deployment: str) -> list[str]:
    """Every HPA and ScaledObject in team-a whose scale target is `deployment`."""
    found = []
    for kind in ("horizontalpodautoscalers", "scaledobjects.keda.sh"):
        got = bed.kube.run("get", kind, "-n", bed.team_a, "-o", "json")
        assert got.returncode == 0, got.stderr
        for item in json.loads(got.stdout)["items"]:
            if item["spec"]["scaleTargetRef"].get("name") == deployment:
                found.append(f"{item['kind']} {item['metadata']['name']}")
    return found


def team_deployment(name: str, count: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Another team's Deployment, written by someone with Deployment rights (the admin here)."""
    match = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**match, **(labels or {})}},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": match},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }


AUTOSCALING = {
    "HPA": {"engine": "HPA", "minReplicas": 3, "maxReplicas": 5, "cpuUtilization": 70},
    "KEDA": {"engine": "KEDA", "minReplicas": 3, "maxReplicas": 5},
}


@attack("pool author: aim an HPA or a ScaledObject at another team's Deployment")
@pytest.mark.parametrize("engine", ["HPA", "KEDA"])
async def test_a_pool_never_scales_another_teams_deployment(bed: Bed, engine: str) -> None:
    """The pool takes the name of a Deployment the operator does not even cache (no
    managed-by label): the plan does not see it, the write of the pool's own Deployment finds
    it, and what would scale it must not be written after that."""
    name = unique("payments-api")
    bed.kube.apply(team_deployment(name, 2), namespace=bed.team_a)
    extra: dict[str, Any] = {"autoscaling": AUTOSCALING[engine]}
    if engine == "HPA":
        extra["resources"] = {"requests": {"cpu": "100m"}}
    result = bed.pool_author().apply(pool(name, **extra))
    assert result.returncode == 0, result.stderr
    await wait_reason(bed, name, "NameConflict")
    assert "Deployment" in ready(bed, name)["message"]
    # The status is written after the reconcile's writes: whatever it wrote is there now.
    assert scalers_of(bed, name) == [], "the operator wrote a scaler aimed at the team's Deployment"
    assert replicas(bed, name) == 2


@attack("pool author: have the Builtin scaler drive a Deployment the pool does not control")
async def test_the_builtin_scaler_never_scales_a_deployment_the_pool_does_not_control(
    bed: Bed,
) -> None:
    """The review's path: a team's pool is deleted with --cascade=orphan, so its Deployment
    stays, labelled as the operator's (it is in the operator's cache) but owned by nobody;
    another author creates a Builtin pool of that name. The session's Temporal address
    (10.1.2.3:7233) answers nobody, so the scaler holds replicas clamped into [min, max]: a
    scaler that skips the owner check writes minReplicas (3) to the orphan.

    A control pool of the same shape, which does own its Deployment, shows that the scaler
    runs for this namespace in the meantime."""
    orphan, control = unique("orders"), unique("control")
    bed.kube.apply(pool(orphan), namespace=bed.team_a)
    await until(lambda: replicas(bed, orphan) == 1, "the team's pool's Deployment")
    bed.kube.kubectl("delete", "twp", orphan, "-n", bed.team_a, "--cascade=orphan")

    def orphaned() -> bool:
        got = bed.kube.run("get", "deployment", orphan, "-n", bed.team_a, "-o", "json")
        meta = json.loads(got.stdout)["metadata"] if got.returncode == 0 else {}
        return bool(meta) and not meta.get("ownerReferences")

    await until(orphaned, "the Deployment orphaned by the garbage collector")

    builtin = {"engine": "Builtin", "minReplicas": 3, "maxReplicas": 5,
               "pollIntervalSeconds": POLL_S}  # fmt: skip
    author = bed.pool_author()
    assert author.apply(pool(orphan, autoscaling=builtin)).returncode == 0
    await wait_reason(bed, orphan, "NameConflict")
    assert author.apply(pool(control, autoscaling=builtin)).returncode == 0
    await until(lambda: replicas(bed, control) == 3, "the scaler scaling the control pool to 3")

    # Two more poll periods of both pools: the orphan keeps the replicas its owner left.
    deadline = time.monotonic() + 2 * POLL_S
    while time.monotonic() < deadline:
        assert replicas(bed, orphan) == 1, "the scaler wrote replicas to the orphan"
        await asyncio.sleep(1)
