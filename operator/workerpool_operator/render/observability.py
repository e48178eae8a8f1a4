"""Render the metrics Service, the ServiceMonitor and the PodDisruptionBudget (pure)."""

from __future__ import annotations

from worker_runtime import contract
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.common import Manifest, object_meta, selector_labels

SERVICE_MONITOR_API = "monitoring.coreos.com/v1"
DEFAULT_MAX_UNAVAILABLE = 1
# Unready pods may always be evicted: while Temporal is unreachable every worker is unready, and
# the default policy (IfHealthyBudget) would then block every node drain.
UNHEALTHY_POD_EVICTION_POLICY = "AlwaysAllow"


def render_service(pool: TemporalWorkerPool) -> Manifest:
    """Headless Service over the workers' metrics port: workers serve no traffic, only scrapes."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(pool),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(pool),
            "ports": [
                {
                    "name": "metrics",
                    "port": pool.spec.metrics.port,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_service_monitor(pool: TemporalWorkerPool) -> Manifest:
    """prometheus-operator ServiceMonitor selecting the pool's Service."""
    sm = pool.spec.metrics.service_monitor
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": object_meta(pool, sm.labels),
        "spec": {
            "selector": {"matchLabels": selector_labels(pool)},
            "endpoints": [
                {"port": "metrics", "path": contract.METRICS_PATH, "interval": sm.interval}
            ],
        },
    }


def render_pdb(pool: TemporalWorkerPool) -> Manifest:
    """PodDisruptionBudget; without a spec, at most one worker is evicted at a time.

    Unready workers can always be evicted (`unhealthyPodEvictionPolicy: AlwaysAllow`), so an
    outage of Temporal, which makes every worker unready, does not block node drains.
    """
    budget = pool.spec.disruption_budget
    spec: dict[str, object] = {
        "selector": {"matchLabels": selector_labels(pool)},
        "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY,
    }
    if budget is not None and budget.min_available is not None:
        spec["minAvailable"] = budget.min_available
    else:
        spec["maxUnavailable"] = (
            budget.max_unavailable
            if budget is not None and budget.max_unavailable is not None
            else DEFAULT_MAX_UNAVAILABLE
        )
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(pool),
        "spec": spec,
    }
