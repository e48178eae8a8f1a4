"""The operator's own Prometheus metrics (served by prometheus_client on --metrics-port), all
defined here, and the pool gauges that follow the pool cache."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from workerpool_operator.kinds import POOL, Kind

RECONCILES = Counter(
    "workerpool_operator_reconciles_total", "Pool reconciliations by result.", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "workerpool_operator_reconcile_duration_seconds",
    "Time to reconcile one pool (render, apply, status).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITES = Counter(
    "workerpool_operator_writes_total",
    "Writes to the API server by namespace, kind and verb (counted by kube/client.py, the one "
    "writer).",
    ["namespace", "kind", "verb"],
)
ERRORS = Counter("workerpool_operator_errors_total", "Reconcile errors by reason.", ["reason"])
POOLS = Gauge(
    "workerpool_operator_pools", "TemporalWorkerPools in the watch cache (always current)."
)
API_REQUESTS = Counter(
    "workerpool_operator_api_requests_total",
    "Requests to the API server by HTTP verb (WATCH for watches), kind and namespace ('' for "
    "cluster-wide lists and watches), reads included.",
    ["verb", "kind", "namespace"],
)
LEADER = Gauge(
    "workerpool_operator_leader",
    "1 on the replica that acts: the leader Lease holder, or any replica run without "
    "--leader-elect; else 0.",
)
QUEUE_DEPTH = Gauge("workerpool_operator_queue_depth", "Pools waiting to be reconciled.")
CACHE_OBJECTS = Gauge(
    "workerpool_operator_cache_objects", "Objects in the watch-fed caches, by kind.", ["kind"]
)
POOL_CONDITION = Gauge(
    "workerpool_pool_condition",
    "1 for each pool condition's current status (True/False/Unknown), 0 for the other two; "
    "read from the pool cache, so it follows every status write of every replica's managers.",
    ["namespace", "pool", "type", "status"],
)
CONDITION_STATUSES = ("True", "False", "Unknown")

# The Builtin scaler (scaling/).
BACKLOG = Gauge(
    "workerpool_backlog", "Task-queue backlog the autoscaler last saw.", ["namespace", "pool"]
)
DESIRED = Gauge(
    "workerpool_desired_replicas", "Replicas the autoscaler asks for.", ["namespace", "pool"]
)
DECISIONS = Counter(
    "workerpool_scale_decisions_total",
    "Autoscaler decisions by direction (up, down, none).",
    ["namespace", "pool", "direction"],
)
TEMPORAL_CALLS = Counter(
    "workerpool_temporal_calls_total",
    "Calls the operator made to Temporal (autoscaler, versioned rollouts), by method and result.",
    ["method", "result"],
)


class PoolGauges:
    """`workerpool_operator_pools` and `workerpool_pool_condition` from pool cache events
    (alerts and dashboards read them); a pool's series go when the pool or condition does."""

    def __init__(self, pool_count: Callable[[], int]) -> None:
        self._pool_count = pool_count
        self._types: dict[tuple[str, str], set[str]] = {}

    def cache_event(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        if kind is not POOL:
            return
        POOLS.set(self._pool_count())
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        before = self._types.pop((ns, name), set())
        now: set[str] = set()
        if type_ != "DELETED":
            for cond in (obj.get("status") or {}).get("conditions") or []:
                ctype, status = str(cond.get("type")), str(cond.get("status"))
                now.add(ctype)
                for value in CONDITION_STATUSES:
                    POOL_CONDITION.labels(ns, name, ctype, value).set(1 if value == status else 0)
            self._types[(ns, name)] = now
        for ctype in before - now:
            for value in CONDITION_STATUSES:
                with contextlib.suppress(KeyError):
                    POOL_CONDITION.remove(ns, name, ctype, value)
