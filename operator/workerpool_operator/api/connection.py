"""TemporalConnection and ClusterTemporalConnection: where and how workers reach Temporal,
with the connection/TLS/Secret types that pools and connection objects share."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import ConfigDict, Field

from workerpool_operator.api.common import (
    ADDRESS,
    API_VERSION,
    SECRET_KEY,
    Model,
    NamespaceSelector,
    PoolSelector,
    cel,
    name_field,
)
from workerpool_operator.api.conditions import Conditions
from workerpool_operator.names import CREDENTIALS_LABEL

CONNECTION_KIND = "TemporalConnection"
CONNECTION_PLURAL = "temporalconnections"
CONNECTION_SHORT_NAMES = ["tconn"]
CLUSTER_CONNECTION_KIND = "ClusterTemporalConnection"
CLUSTER_CONNECTION_PLURAL = "clustertemporalconnections"
CLUSTER_CONNECTION_SHORT_NAMES = ["ctconn"]


def address_rule(what: str) -> tuple[str, str]:
    """CEL: spec.address is host:port, with a message naming the field as `what`."""
    return (
        f"self.address.matches(r'{ADDRESS}')",
        f"{what} must be host:port with a port from 1 to 65535 and no scheme, "
        "e.g. temporal-frontend.temporal.svc:7233 or my-ns.a1b2c.tmprl.cloud:7233",
    )


class SecretKeyRef(Model):
    """A key inside a Secret (see the connection kind for which namespace)."""

    name: str = name_field("apiKeySecretRef.name", description="Name of the Secret.")
    key: str = Field(
        default="api-key",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description="Key inside the Secret (letters, digits, '-', '_', '.').",
    )


class TLSSpec(Model):
    """TLS towards the Temporal frontend. An empty `tls: {}` means TLS with the system CA roots."""

    secret_name: str | None = name_field(
        "tls.secretName",
        default=None,
        description=(
            "Secret (type kubernetes.io/tls or Opaque) with the client certificate for mTLS "
            "(`tls.crt`, `tls.key`) and/or the private CA of the server (`ca.crt`). Mounted "
            "read-only into the workers and read by the operator's scaler and health check. It "
            f"must carry the label {CREDENTIALS_LABEL}=true. Omit to use the system CA roots "
            "without a client certificate."
        ),
    )
    server_name: str | None = Field(
        default=None,
        max_length=253,
        description="Override the TLS server name (SNI) checked on the certificate.",
    )


class ConnectionSpec(Model):
    """Where and how to reach one Temporal namespace: address, namespace, TLS, API key.

    The one connection type: a connection object's spec is one, a pool's inline
    spec.connection is one that names no Secret (legacy.py), and the connection a pool
    resolves to (`TemporalWorkerPoolSpec.effective_connection`) is one."""

    address: str = Field(
        max_length=512, description="Temporal frontend gRPC endpoint as host:port."
    )
    namespace: str = Field(
        default="default", min_length=1, max_length=1000, description="Temporal namespace."
    )
    tls: TLSSpec | None = Field(
        default=None, description="Enable TLS (mTLS with a client certificate Secret)."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Temporal Cloud API key: this Secret key goes into the worker env and is sent by "
            "the operator as a bearer token to spec.address only."
        ),
    )


class ConnectionRef(Model):
    """A TemporalConnection in the pool's namespace, or a ClusterTemporalConnection."""

    kind: Literal["TemporalConnection", "ClusterTemporalConnection"] = Field(
        default="TemporalConnection",
        description=(
            "TemporalConnection (in the pool's namespace) or ClusterTemporalConnection (whose "
            "allowedNamespaces must select the pool's namespace)."
        ),
    )
    name: str = name_field("spec.connectionRef.name", description="Name of the connection.")


_CONNECTION_RULES = (
    address_rule("spec.address"),
    (
        "!has(self.apiKeySecretRef) || has(self.tls)",
        "spec.apiKeySecretRef requires spec.tls: an API key must not travel in clear text; add "
        "`tls: {}` (system CA roots) or a tls.secretName",
    ),
)


class TemporalConnectionSpec(ConnectionSpec):
    """Where and how to reach one Temporal namespace; owned by whoever owns its credentials.

    Pools reference it with spec.connectionRef. Its Secrets live in the connection's own
    namespace and must carry the label workerpools.io/temporal-credentials=true (the operator
    reads no other Secret)."""

    model_config = ConfigDict(json_schema_extra=cel(*_CONNECTION_RULES))

    allowed_pools: PoolSelector | None = Field(
        default=None,
        description=(
            "Label selector on the pools that may use this connection, and so its Secrets. "
            "Omit (or `{}`) to allow every pool that may reference it; e.g. matchLabels: "
            "{access.workerpools.io/payments: 'true'} allows only pools labelled so. A pool it "
            "does not select gets Ready False (PoolNotAllowed) and nothing is written for it; one "
            "that ran loses its Deployment and autoscaler objects until it is selected again. "
            "Pool labels are written by whoever writes the pool: select labels under "
            "access.workerpools.io/, which the optional admission policy lets only those who "
            "may update connections set (docs/security.md)."
        ),
    )


class ClusterTemporalConnectionSpec(TemporalConnectionSpec):
    """A connection shared by pools of several namespaces, owned by the cluster admin.

    The operator reads its Secrets from the operator's own namespace (workerpools-system by
    default: the credentials namespace, where only the admin writes). Worker pods cannot mount
    Secrets of another namespace: a pool's pods mount the Secrets of the same names from the
    pool's namespace (distributed by the admin, e.g. with external-secrets); the operator never
    copies Secrets."""

    model_config = ConfigDict(json_schema_extra=cel(*_CONNECTION_RULES))

    allowed_namespaces: NamespaceSelector = Field(
        description=(
            "Label selector on Namespaces whose pools may reference this connection. Required: "
            "`{}` allows every namespace, e.g. matchLabels: {temporal-tenant: payments} allows "
            "only those. A pool of another namespace gets Ready False (ConnectionNotAllowed); one "
            "that ran loses its Deployment and autoscaler objects until its namespace is "
            "selected again."
        ),
    )


class ConnectionCapabilities(Model):
    """What the Temporal server offers, found by the operator's health check."""

    task_queue_stats: bool | None = Field(
        default=None,
        description="DescribeTaskQueue reports backlog stats (server >= 1.25): Builtin scaling.",
    )
    worker_deployments: bool | None = Field(
        default=None, description="Worker Deployments (versioning) API is served."
    )


class ConnectionLastError(Model):
    """The last failure of the health check."""

    message: str
    """What failed, as the server or the client said it."""
    time: str = Field(description="When it happened (RFC 3339).")


class TemporalConnectionStatus(Model):
    """Observed by the operator's leader-only health check; written only by the operator."""

    observed_generation: int | None = None
    """The generation the health check last acted on."""
    conditions: Conditions = Field(default_factory=list)
    """Ready once the operator has reached the server (docs/api.md lists the reasons)."""
    server_version: str | None = Field(
        default=None, description="Temporal server version (GetSystemInfo)."
    )
    namespace_exists: bool | None = Field(
        default=None, description="Whether spec.namespace exists on the server (DescribeNamespace)."
    )
    capabilities: ConnectionCapabilities | None = None
    last_error: ConnectionLastError | None = None
    last_check_time: str | None = Field(default=None, description="When the server was reached.")


class _ConnectionObject(Model):
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @classmethod
    def from_body(cls, body: Any) -> Self:
        """From an API object (status ignored: only the spec is the connection)."""
        data = dict(body)
        return cls.model_validate(
            {"metadata": dict(data.get("metadata", {})), "spec": dict(data.get("spec", {}))}
        )


class TemporalConnection(_ConnectionObject):
    api_version: str = API_VERSION
    kind: str = CONNECTION_KIND
    spec: TemporalConnectionSpec


class ClusterTemporalConnection(_ConnectionObject):
    api_version: str = API_VERSION
    kind: str = CLUSTER_CONNECTION_KIND
    spec: ClusterTemporalConnectionSpec
