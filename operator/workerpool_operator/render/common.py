"""Names, labels and owner references shared by every renderer (pure)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.names import (
    MANAGED_BY_LABEL,
    OPERATOR,
    POOL_LABEL,
    TASK_QUEUE_ANNOTATION,
)

COMPONENT = "worker"

Manifest = dict[str, Any]

LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_LABEL_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")
_HASH_CHARS = 10


def label_value(value: str) -> str:
    """`value` as a valid label value: itself when it is one, else a readable part + a hash.

    Label values are at most 63 characters of `[-A-Za-z0-9_.]`, starting and ending with a
    letter or digit. Anything else (a 128-character image tag, a tag starting with `_`, a digest
    `sha256:...`) keeps its valid characters, truncated, and ends in 10 hex digits of its
    SHA-256, so different inputs stay different labels and the result is stable.
    """
    if len(value) <= LABEL_VALUE_MAX and _LABEL_VALUE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_HASH_CHARS]
    readable = _NOT_LABEL_CHARS.sub("-", value).strip("-_.")
    readable = readable[: LABEL_VALUE_MAX - _HASH_CHARS - 1].rstrip("-_.")
    return f"{readable}-{digest}" if readable else digest


def selector_labels(pool: TemporalWorkerPool) -> dict[str, str]:
    """Immutable Deployment selector: one label, the pool name."""
    return {POOL_LABEL: pool.name}


def selector_string(pool: TemporalWorkerPool) -> str:
    """The same selector as a string, for status.selector (scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(pool).items())


def labels(pool: TemporalWorkerPool) -> dict[str, str]:
    """Recommended app.kubernetes.io labels plus the selector label."""
    return {
        "app.kubernetes.io/name": "temporal-worker",
        "app.kubernetes.io/instance": pool.name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/part-of": "temporal-workerpools",
        MANAGED_BY_LABEL: OPERATOR,
        **selector_labels(pool),
    }


def owner_reference(pool: TemporalWorkerPool) -> dict[str, Any]:
    """Controller owner reference so the garbage collector removes children with the pool."""
    return {
        "apiVersion": pool.api_version,
        "kind": pool.kind,
        "name": pool.name,
        "uid": pool.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(pool: TemporalWorkerPool, extra_labels: dict[str, str] | None = None) -> Manifest:
    """metadata for a child object named after the pool, in its namespace.

    The operator's own labels win over `extra_labels` (a pool's ServiceMonitor labels): they
    select the object into the operator's cache and name its pool, so a pool overriding them
    would hide its child from pruning or point it at another pool.
    """
    return {
        "name": pool.name,
        "namespace": pool.namespace,
        "labels": {**(extra_labels or {}), **labels(pool)},
        "annotations": {TASK_QUEUE_ANNOTATION: pool.spec.task_queue},
        "ownerReferences": [owner_reference(pool)],
    }
