"""Pure renderers: pool spec in, Kubernetes manifests out. No I/O, no kopf, no client."""

from __future__ import annotations

from dataclasses import dataclass, field

from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.grants import Grants
from workerpool_operator.render.common import Manifest
from workerpool_operator.render.deployment import render_deployment
from workerpool_operator.render.identity import check_service_account, render_service_account
from workerpool_operator.render.network import render_network_policy
from workerpool_operator.render.observability import (
    render_pdb,
    render_service,
    render_service_monitor,
)

__all__ = [
    "Capabilities",
    "Manifest",
    "desired_children",
    "render_deployment",
    "render_network_policy",
    "render_pdb",
    "render_service",
    "render_service_account",
    "render_service_monitor",
]


@dataclass(frozen=True)
class Capabilities:
    """Which optional APIs the cluster serves: followed from the CRD cache (kube/cache.py
    `Caches`, no discovery calls) and passed in, so rendering stays pure."""

    service_monitor: bool = False
    keda: bool = False
    # The cluster admin's grants (operator settings), not discovered but passed the same way.
    grants: Grants = field(default_factory=Grants)


def fixed_replicas(pool: TemporalWorkerPool) -> int | None:
    """Replicas the Deployment gets from the spec, or None when an autoscaler owns them."""
    if pool.spec.autoscaling is not None:
        return None
    return 1 if pool.spec.replicas is None else pool.spec.replicas


def desired_children(pool: TemporalWorkerPool, caps: Capabilities) -> list[Manifest]:
    """Every child the pool should have right now, except the autoscaling children, which
    `render.autoscaling.plan_autoscaling` adds (reconcile/plan.py joins the two)."""
    check_service_account(pool, caps.grants)
    children = [
        render_deployment(pool, replicas=fixed_replicas(pool)),
        render_service(pool),
        render_pdb(pool),
        render_service_account(pool),
    ]
    network_policy = render_network_policy(pool, caps.grants)
    if network_policy is not None:
        children.append(network_policy)
    if caps.service_monitor and pool.spec.metrics.service_monitor.mode() != "Disabled":
        children.append(render_service_monitor(pool))
    return children
