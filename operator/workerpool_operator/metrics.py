"""The operator's own Prometheus metrics (served by prometheus_client on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Writes to the API server by namespace, kind and verb (counted in kube.py, the one writer).",
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
    "workerpool_operator_leader", "1 on the replica that holds the leader lease, else 0."
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
