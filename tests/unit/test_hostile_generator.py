"""The hostile suite's spec generator (tests/hostile/strategies.py), without a cluster."""

from __future__ import annotations

import functools
import json
from typing import Any

from tests.hostile.strategies import REPLICA_REFUSED, REPLICA_VALUES, generate


@functools.cache
def specs60() -> list[dict[str, Any]]:
    return generate(60)


def test_generator_draws_distinct_json_specs_of_every_kind() -> None:
    specs = specs60()
    assert len(specs) == 60
    texts = [json.dumps(s, sort_keys=True) for s in specs]
    assert len(set(texts)) == 60
    shaped = [s for s in specs if isinstance(s.get("connection"), dict)]
    # Mostly valid-shaped specs around a valid base (53 of 60 in the fixed draw).
    assert len(shaped) > 30
    assert any(not isinstance(s.get("connection"), dict) for s in specs) or any(
        s.get("taskQueue") in ("it's", "", " ") for s in specs
    )
    fields = {k for s in specs for k in s}
    assert {"connection", "taskQueue", "workflows"} <= fields
    assert len(fields) >= 10  # the draw reaches most of the spec's fields


def test_the_draw_is_the_same_in_every_run() -> None:
    """A fixed seed, no example database, a fresh interpreter: the same specs every time."""
    assert generate(60) == specs60()


def test_generator_never_admits_more_than_a_few_pods_per_pool() -> None:
    """Replica-like fields draw small counts or values the API refuses (above replicaLimit)."""
    assert max(REPLICA_VALUES) <= 3
    assert all(v < 0 or v > 100 for v in REPLICA_REFUSED)
    for s in specs60():
        scaling: dict[str, Any] = s["autoscaling"] if isinstance(s.get("autoscaling"), dict) else {}
        for replicas in (s.get("replicas"), scaling.get("minReplicas"), scaling.get("maxReplicas")):
            if isinstance(replicas, int) and 0 <= replicas <= 100:
                assert replicas <= 3, s
