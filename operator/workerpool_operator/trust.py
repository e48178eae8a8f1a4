"""Who may make the operator use what: the checks behind issue 20's rule (pure).

Everything the operator does for a pool must be something the pool's author could do, or
something an admin granted. These functions answer, from the caches' view, whether a pool's
connection may be used (its address allowed by the admin, its Secrets opted in by their
owner) and which children must not be written because they would point at an object the pool
does not control. The planner and the scaler call them; docs/security.md names the attack
tests that try each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from worker_runtime import contract
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.grants import Grants
from workerpool_operator.kinds import (
    DEPLOYMENT,
    HPA,
    PDB,
    SCALED_OBJECT,
    SERVICE_ACCOUNT,
    TRIGGER_AUTH,
    Kind,
)
from workerpool_operator.names import CREDENTIALS_LABEL

# Children that act on the pool's Deployment (by name, or its pods by the pool's selector):
# written only while the pool controls the Deployment, so a pool named after another team's
# Deployment never scales it or blocks its evictions.
TARGETS_DEPLOYMENT: frozenset[Kind] = frozenset({HPA, SCALED_OBJECT, TRIGGER_AUTH, PDB})
# Keys of a TLS Secret the operator reads (client certificate, key, CA).
TLS_KEYS = (contract.TLS_CA_FILE, contract.TLS_CERT_FILE, contract.TLS_KEY_FILE)


def secret_names(conn: api.ConnectionSpec) -> list[str]:
    """The Secrets a connection names (TLS, API key), each once, in a stable order."""
    names = []
    if conn.tls is not None and conn.tls.secret_name:
        names.append(conn.tls.secret_name)
    if conn.api_key_secret_ref is not None:
        names.append(conn.api_key_secret_ref.name)
    return list(dict.fromkeys(names))


def secrets_not_opted_in(
    pool: api.TemporalWorkerPool, opted_in: Mapping[str, Any], namespace: str
) -> str | None:
    """None when every Secret the pool's connection names has opted in (is in the
    label-selected cache of the pool's namespace), else the message for the pool's status.

    Pods mount these Secrets and KEDA reads them: a connection author who cannot read Secrets
    must not be able to hand one to a pod or to KEDA by naming it.
    """
    missing = [n for n in secret_names(pool.spec.effective_connection) if n not in opted_in]
    if not missing:
        return None
    return (
        f"Secret {', '.join(missing)} in namespace {namespace} did not opt in (label "
        f"{CREDENTIALS_LABEL}=true): the operator hands a Secret to pods and KEDA only when its "
        f"owner labelled it; label it (`kubectl label secret -n {namespace} {' '.join(missing)} "
        f"{CREDENTIALS_LABEL}=true`), or name another Secret in the connection"
    )


def address_not_allowed(pool: api.TemporalWorkerPool, grants: Grants, source: str) -> str | None:
    """None when the admin allows the pool's Temporal address, else the status message."""
    address = pool.spec.effective_connection.address
    field_name = "spec.connection.address" if source == "spec.connection" else f"{source} address"
    return grants.address_error(address, field_name)


def blocked_by_conflicts(conflicts: Iterable[Kind]) -> set[Kind]:
    """Children not to write because of a NameConflict on what they point at.

    - a ServiceAccount with the pool's name that the pool does not control: the Deployment is
      not written (its pods would run as that account);
    - a Deployment the pool does not control: nothing that targets it (HPA, ScaledObject,
      TriggerAuthentication, PDB) is written.
    """
    conflicts = set(conflicts)
    blocked: set[Kind] = set()
    if SERVICE_ACCOUNT in conflicts:
        blocked.add(DEPLOYMENT)
    if DEPLOYMENT in conflicts or DEPLOYMENT in blocked:
        blocked |= TARGETS_DEPLOYMENT
    return blocked - conflicts


def bounded_secret(
    body: Mapping[str, Any], used_keys: Iterable[str], max_value_chars: int = 64 * 1024
) -> dict[str, Any]:
    """What the Secret cache keeps of an opted-in Secret: its identity, and only the keys the
    operator uses (TLS material, the API-key keys that connections name), each at most
    `max_value_chars` of base64; everything else is dropped, so a tenant's 1 MiB Secrets cost
    the shared operator only their metadata."""
    data = body.get("data") or {}
    keep = set(TLS_KEYS) | set(used_keys)
    kept = {
        k: v
        for k, v in data.items()
        if k in keep and isinstance(v, str) and len(v) <= max_value_chars
    }
    meta = body.get("metadata") or {}
    slim = {
        k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels") if k in meta
    }
    return {"metadata": slim, "data": kept}
