"""The runtime's own Prometheus metrics and the activity interceptor that feeds them.

They live in a private registry so `/metrics` can append them to the SDK's `temporal_*` text
without name clashes or the default registry's surprises. Import-light: activity packs import
this to record LLM tokens and latency.
"""

from __future__ import annotations

import platform
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from worker_runtime import __version__

# `*_created` series double the output and no dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

BUILD_INFO = Gauge(
    "twp_build_info",
    "Runtime build information (value is always 1).",
    ["version", "temporalio_version", "python_version"],
    registry=REGISTRY,
)
READY = Gauge("twp_ready", "1 when connected to Temporal and polling.", registry=REGISTRY)
ACTIVITIES_STARTED = Counter(
    "twp_activities_started", "Activity attempts started.", ["activity_type"], registry=REGISTRY
)
ACTIVITIES_SUCCEEDED = Counter(
    "twp_activities_succeeded", "Activity attempts succeeded.", ["activity_type"],
    registry=REGISTRY,
)  # fmt: skip
ACTIVITIES_FAILED = Counter(
    "twp_activities_failed",
    "Activity attempts that raised (including cancellation).",
    ["activity_type", "error"],
    registry=REGISTRY,
)
ACTIVITIES_IN_FLIGHT = Gauge(
    "twp_activities_in_flight", "Activities executing now.", ["activity_type"], registry=REGISTRY
)
ACTIVITY_SECONDS = Histogram(
    "twp_activity_duration_seconds",
    "Wall time of one activity attempt in this worker.",
    ["activity_type"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "twp_llm_tokens",
    "LLM tokens processed, by backend, model and kind (prompt or completion).",
    ["backend", "model", "kind"],
    registry=REGISTRY,
)
LLM_SECONDS = Histogram(
    "twp_llm_request_duration_seconds",
    "Latency of one LLM generation or API call.",
    ["backend", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
LLM_REQUESTS = Counter(
    "twp_llm_requests",
    "LLM calls by backend, model and outcome (ok, error, rate_limited, cancelled).",
    ["backend", "model", "outcome"],
    registry=REGISTRY,
)


def set_build_info(temporalio_version: str) -> None:
    BUILD_INFO.labels(__version__, temporalio_version, platform.python_version()).set(1)


def record_llm(backend: str, model: str, prompt: int, completion: int, seconds: float) -> None:
    """Record one LLM call's tokens and latency."""
    LLM_TOKENS.labels(backend, model, "prompt").inc(prompt)
    LLM_TOKENS.labels(backend, model, "completion").inc(completion)
    LLM_SECONDS.labels(backend, model).observe(seconds)


def render() -> bytes:
    """The runtime's metrics in Prometheus text format."""
    return generate_latest(REGISTRY)


class ActivityTimer:
    """Counts one activity attempt; used by the interceptor (kept here to stay SDK-free)."""

    def __init__(self, activity_type: str) -> None:
        self.activity_type = activity_type
        self.start = 0.0

    def __enter__(self) -> ActivityTimer:
        ACTIVITIES_STARTED.labels(self.activity_type).inc()
        ACTIVITIES_IN_FLIGHT.labels(self.activity_type).inc()
        self.start = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        ACTIVITIES_IN_FLIGHT.labels(self.activity_type).dec()
        ACTIVITY_SECONDS.labels(self.activity_type).observe(time.monotonic() - self.start)
        if exc_type is None:
            ACTIVITIES_SUCCEEDED.labels(self.activity_type).inc()
        else:
            ACTIVITIES_FAILED.labels(self.activity_type, exc_type.__name__).inc()
