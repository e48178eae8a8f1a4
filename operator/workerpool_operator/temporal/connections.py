"""Connections, resolved in one place: a pool's effective connection (inline, or the
TemporalConnection / ClusterTemporalConnection it references, with the namespace allow-list),
and the credentials read from opted-in Secrets into the `Connection` a Temporal client is keyed
by. Pure: the caches and Secrets are passed in; the reconciler, the scaler and the health check
all resolve through here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from worker_runtime import contract
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.names import CREDENTIALS_LABEL
from workerpool_operator.reasons import Reason


def validation_message(err: ValidationError) -> str:
    """One line per problem, naming the spec field (camelCase path) and what is wrong."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{where}: {e['msg']}" if where else f"spec: {e['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Resolved:
    """The pool with spec.connection filled in from its connection (renderers and the scaler
    read `pool.spec.effective_connection`), and where the operator reads its Secrets."""

    pool: api.TemporalWorkerPool
    secrets_namespace: str
    source: str  # "spec.connection", "TemporalConnection ns/name", "ClusterTemporalConnection name"


@dataclass(frozen=True)
class Unresolved:
    reason: Reason
    message: str


def connection_ref_key(pool_body: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the connection a pool body references, for cache lookups."""
    ref = (pool_body.get("spec") or {}).get("connectionRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    kind = str(ref.get("kind") or api.CONNECTION_KIND)
    ns = (
        ""
        if kind == api.CLUSTER_CONNECTION_KIND
        else str((pool_body.get("metadata") or {}).get("namespace") or "")
    )
    return (kind, ns, str(ref["name"]))


def effective_connection_spec(spec: api.ConnectionSpec) -> api.ConnectionSpec:
    """A connection object's address, namespace, TLS and API key as the ConnectionSpec the
    renderers and the scaler read, validated (a ClusterTemporalConnection's other fields go)."""
    return api.ConnectionSpec.model_validate(
        spec.model_dump(include=set(api.ConnectionSpec.model_fields))
    )


def resolve_connection(
    pool: api.TemporalWorkerPool,
    *,
    connection: Mapping[str, Any] | None,
    namespace_labels: Mapping[str, str],
    credentials_namespace: str,
) -> Resolved | Unresolved:
    """The effective connection of a pool, or why there is none, given the connection object
    its spec.connectionRef names (None: not in the cache), its namespace's labels (for a
    ClusterTemporalConnection's allowedNamespaces) and the operator's own namespace. A
    connection whose allowedPools does not select the pool's labels is no connection for it:
    the reconciler writes nothing and the scaler dials nothing."""
    ref = pool.spec.connection_ref
    if ref is None:
        return Resolved(pool, pool.namespace, "spec.connection")
    cluster = ref.kind == api.CLUSTER_CONNECTION_KIND
    where = ref.name if cluster else f"{pool.namespace}/{ref.name}"
    if connection is None:
        hint = "" if cluster else " in the pool's namespace"
        return Unresolved(
            Reason.CONNECTION_NOT_FOUND,
            f"{ref.kind} {where} not found{hint}: create it, or fix spec.connectionRef",
        )
    try:
        conn: api.TemporalConnection | api.ClusterTemporalConnection = (
            api.ClusterTemporalConnection.from_body(connection)
            if cluster
            else api.TemporalConnection.from_body(connection)
        )
    except ValidationError as err:
        return Unresolved(
            Reason.CONNECTION_INVALID, f"{ref.kind} {where}: {validation_message(err)}"
        )
    if isinstance(conn, api.ClusterTemporalConnection) and not api.selector_matches(
        conn.spec.allowed_namespaces, dict(namespace_labels)
    ):
        return Unresolved(
            Reason.CONNECTION_NOT_ALLOWED,
            f"ClusterTemporalConnection {ref.name} does not allow namespace {pool.namespace} "
            "(its spec.allowedNamespaces does not select the namespace's labels): ask the "
            "cluster admin to label the namespace or widen allowedNamespaces",
        )
    allowed_pools = conn.spec.allowed_pools
    if allowed_pools is not None and not api.selector_matches(allowed_pools, pool.labels):
        return Unresolved(
            Reason.POOL_NOT_ALLOWED,
            f"{ref.kind} {where} does not allow pool {pool.namespace}/{pool.name} (its "
            "spec.allowedPools does not select the pool's labels): set the labels the "
            "connection's owner asks for in the pool's metadata.labels, or ask them to widen "
            "spec.allowedPools",
        )
    effective = effective_connection_spec(conn.spec)
    # model_copy does not validate: the effective spec may name Secrets, the stored one not.
    resolved = pool.model_copy(
        update={"spec": pool.spec.model_copy(update={"connection": effective})}
    )
    return Resolved(
        resolved,
        credentials_namespace if cluster else pool.namespace,
        f"{ref.kind} {where}",
    )


@dataclass(frozen=True)
class Connection:
    """How to reach one Temporal namespace, credentials included: the key of a Temporal client
    (temporal/clients.py) and of the scaler's readings."""

    address: str
    namespace: str = "default"
    tls: bool = False
    server_root_ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """Identifies the credentials too: readings and back-off are never shared across them."""
        material = repr(
            (
                self.address,
                self.namespace,
                self.tls,
                self.server_root_ca,
                self.client_cert,
                self.client_key,
                self.server_name,
                self.api_key,
            )
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


class CredentialsError(Exception):
    """A Secret the connection needs is missing, not opted in, or lacks a key."""


def _secret_value(
    secrets: Mapping[str, Mapping[str, Any]], namespace: str, name: str, key: str
) -> bytes | None:
    secret = secrets.get(name)
    if secret is None:
        raise CredentialsError(
            f"Secret {namespace}/{name} not found among the Secrets labelled "
            f"{CREDENTIALS_LABEL}=true: create it, or label it with "
            f"`kubectl label secret -n {namespace} {name} {CREDENTIALS_LABEL}=true`"
        )
    raw = (secret.get("data") or {}).get(key)
    return None if raw is None else base64.b64decode(raw)


def connection_for(
    pool: api.TemporalWorkerPool,
    secrets: Mapping[str, Mapping[str, Any]],
    secrets_namespace: str | None = None,
) -> Connection:
    """The pool's (resolved) Temporal connection, TLS material and API key taken from its
    Secrets, which live in `secrets_namespace` (the pool's, or for a ClusterTemporalConnection
    the operator's own)."""
    return connection_from_spec(
        pool.spec.effective_connection, secrets, secrets_namespace or pool.namespace
    )


def connection_from_spec(
    conn: api.ConnectionSpec, secrets: Mapping[str, Mapping[str, Any]], where: str
) -> Connection:
    """A Connection (the poller's client key) from a connection spec and the Secrets of
    namespace `where`: the same for a pool and for the TemporalConnection it references, so
    scaler, zero guard and health check share one client."""
    ca = cert = key = None
    server_name = None
    if conn.tls is not None:
        server_name = conn.tls.server_name
        if conn.tls.secret_name:
            ns, name = where, conn.tls.secret_name
            ca = _secret_value(secrets, ns, name, contract.TLS_CA_FILE)
            cert = _secret_value(secrets, ns, name, contract.TLS_CERT_FILE)
            key = _secret_value(secrets, ns, name, contract.TLS_KEY_FILE)
    api_key = None
    if conn.api_key_secret_ref is not None:
        ref = conn.api_key_secret_ref
        value = _secret_value(secrets, where, ref.name, ref.key)
        if value is None:
            raise CredentialsError(f"Secret {where}/{ref.name} has no key {ref.key}")
        try:
            api_key = value.decode().strip()
        except UnicodeDecodeError:
            # One tenant's malformed Secret is that connection's error, never the whole loop's.
            raise CredentialsError(
                f"Secret {where}/{ref.name} key {ref.key} is not UTF-8 text: an API key is a "
                "printable token; store it as such"
            ) from None
    return Connection(
        address=conn.address,
        namespace=conn.namespace,
        tls=conn.tls is not None,
        server_root_ca=ca,
        client_cert=cert,
        client_key=key,
        server_name=server_name,
        api_key=api_key,
    )
