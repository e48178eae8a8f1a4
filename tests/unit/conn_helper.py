"""Tests written against the inline credentials of 0.2 run through a TemporalConnection now."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.names import DEFAULT_NAMESPACE
from workerpool_operator.temporal.connections import Resolved, resolve_connection


def via_connection(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(pool body, connection body): a spec.connection that names Secrets becomes a
    TemporalConnection of the same fields, referenced by spec.connectionRef."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    conn = out["spec"].get("connection") or {}
    if not ((conn.get("tls") or {}).get("secretName") or conn.get("apiKeySecretRef")):
        return out, None
    meta = out.get("metadata") or {}
    name = f"{meta.get('name', 'p')}-conn"
    out["spec"].pop("connection")
    out["spec"]["connectionRef"] = {"kind": "TemporalConnection", "name": name}
    connection = {"metadata": {"name": name, "namespace": meta.get("namespace")}, "spec": conn}
    return out, connection


def resolved_pool(body: Mapping[str, Any]) -> TemporalWorkerPool:
    """The pool the renderers see: its connection resolved as the planner resolves it."""
    body, connection = via_connection(body)
    pool = TemporalWorkerPool.from_body(body)
    resolved = resolve_connection(
        pool, connection=connection, namespace_labels={}, credentials_namespace=DEFAULT_NAMESPACE
    )
    assert isinstance(resolved, Resolved), resolved
    return resolved.pool
