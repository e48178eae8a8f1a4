"""Read-only questions about the cluster, answered from the caches without a request: what a
pool's plan observes, which pools an event concerns, and a pool's effective connection. The
reconciler, the scaler and the connection health check all ask here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from workerpool_operator import trust
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CHILDREN,
    CLUSTER_CONNECTION,
    CONNECTION,
    DEPLOYMENT,
    HPA,
    NAMESPACE,
    POD,
    POOL,
    SCALED_OBJECT,
    SECRET,
    Kind,
)
from workerpool_operator.kube.cache import Caches, Key, Store
from workerpool_operator.names import POOL_LABEL
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import Observed, VersioningObserved
from workerpool_operator.render import Capabilities
from workerpool_operator.temporal.connections import (
    Resolved,
    Unresolved,
    connection_ref_key,
    resolve_connection,
)
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL


class ClusterView:
    def __init__(self, caches: Caches) -> None:
        self._caches = caches

    @property
    def namespaces(self) -> list[str] | None:
        """The watched namespaces; None: every namespace."""
        return self._caches.namespaces

    @property
    def credentials_namespace(self) -> str:
        return self._caches.credentials_namespace

    @property
    def caps(self) -> Capabilities:
        return self._caches.caps

    def store(self, kind: Kind) -> Store:
        return self._caches.store(kind)

    def has(self, kind: Kind) -> bool:
        """Whether `kind` is cached at all (an optional kind whose CRD is installed)."""
        return kind in self._caches.stores

    def pool(self, key: Key) -> dict[str, Any] | None:
        return self.store(POOL).get(*key)

    def pool_keys(self) -> list[Key]:
        return self.store(POOL).list_keys()

    def observed(
        self, key: Key, body: Mapping[str, Any], versioning: VersioningObserved | None = None
    ) -> Observed:
        """Everything one pool's plan reads: its children, Secrets and connection, and for a
        versioned pool its build Deployments and what Temporal said (`versioning`)."""
        ns, name = key
        stores = self._caches.stores
        return Observed(
            children={
                kind: (stores[kind].get(ns, name) if kind in stores else None) for kind in CHILDREN
            },
            secrets=self.secrets_in(ns),
            builds=tuple(self.builds_of(ns, name)) if versioning is not None else (),
            build_scalers=tuple(self.build_scalers_of(ns, name)) if versioning is not None else (),
            versioning=versioning,
            **self.observed_connection(body),
        )

    def builds_of(self, namespace: str, pool: str) -> list[dict[str, Any]]:
        """The cached per-build Deployments of a versioned pool (pool and build-ID labels)."""
        out = []
        for dep in self.store(DEPLOYMENT).values():
            meta = dep.get("metadata") or {}
            labels = meta.get("labels") or {}
            if (
                meta.get("namespace") == namespace
                and labels.get(POOL_LABEL) == pool
                and labels.get(BUILD_ID_LABEL)
            ):
                out.append(dep)
        return out

    def build_scalers_of(self, namespace: str, pool: str) -> list[dict[str, Any]]:
        """The cached per-build ScaledObjects and HPAs of a versioned pool (pool and build-ID
        labels), of the kinds the cluster serves."""
        out = []
        for kind in (SCALED_OBJECT, HPA):
            if not self.has(kind):
                continue
            for obj in self.store(kind).values():
                meta = obj.get("metadata") or {}
                labels = meta.get("labels") or {}
                if (
                    meta.get("namespace") == namespace
                    and labels.get(POOL_LABEL) == pool
                    and labels.get(BUILD_ID_LABEL)
                ):
                    out.append({"apiVersion": kind.api_version, "kind": kind.kind, **obj})
        return out

    def observed_connection(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The Observed fields about a pool's connection."""
        ns = str((body.get("metadata") or {}).get("namespace") or "")
        ref = connection_ref_key(body)
        connection = None
        if ref is not None:
            kind = CLUSTER_CONNECTION if ref[0] == CLUSTER_CONNECTION.kind else CONNECTION
            store = self._caches.stores.get(kind)
            connection = None if store is None else store.get(ref[1], ref[2])
        namespace = self.store(NAMESPACE).get("", ns) or {}
        return {
            "connection": connection,
            "namespace_labels": (namespace.get("metadata") or {}).get("labels") or {},
            "credentials_namespace": self.credentials_namespace,
        }

    def resolve(
        self, pool: api.TemporalWorkerPool, body: Mapping[str, Any]
    ) -> Resolved | Unresolved:
        """The pool's effective connection, or why there is none: what the plan decides from
        `observed`, the admin's address allowlist included, so nothing that resolves here (the
        scaler, a versioned pool's Temporal reads) dials an address the admin does not allow."""
        resolved = resolve_connection(pool, **self.observed_connection(body))
        if isinstance(resolved, Resolved):
            problem = trust.address_not_allowed(resolved.pool, self.caps.grants, resolved.source)
            if problem is not None:
                return Unresolved(Reason.ADDRESS_NOT_ALLOWED, problem)
        return resolved

    def pools_naming(self, deployment: str) -> list[dict[str, Any]]:
        """Versioned pools whose Temporal Worker Deployment is `deployment`
        (spec.versioning.deploymentName, else `<namespace>/<name>`), read raw: a release
        group's members, and pools of other namespaces that name it too."""
        out = []
        for body in self.store(POOL).values():
            versioning = (body.get("spec") or {}).get("versioning")
            if not isinstance(versioning, Mapping):
                continue
            meta = body.get("metadata") or {}
            name = versioning.get("deploymentName") or f"{meta.get('namespace')}/{meta.get('name')}"
            if name == deployment:
                out.append(body)
        return out

    def connection_ref(self, key: Key) -> tuple[str, str, str] | None:
        return connection_ref_key(self.pool(key) or {})

    def pools_using(self, kind: str, namespace: str, name: str) -> list[Key]:
        """Pools whose spec.connectionRef names this connection."""
        return [k for k in self.pool_keys() if self.connection_ref(k) == (kind, namespace, name)]

    def pools_referencing(self, namespace: str, secret: str) -> list[Key]:
        """Pools whose effective connection names this Secret: in the pool's own namespace
        (what its pods mount), or in the credentials namespace for a cluster connection."""
        out = []
        for key in self.pool_keys():
            if key[0] != namespace and namespace != self.credentials_namespace:
                continue
            body = self.pool(key) or {}
            try:
                pool = api.TemporalWorkerPool.from_body(body)
            except ValidationError:
                continue
            resolved = self.resolve(pool, body)
            if isinstance(resolved, Unresolved):
                continue
            conn = resolved.pool.spec.effective_connection
            names = {
                conn.tls.secret_name if conn.tls is not None else None,
                conn.api_key_secret_ref.name if conn.api_key_secret_ref is not None else None,
            }
            if secret in names and namespace in (key[0], resolved.secrets_namespace):
                out.append(key)
        return out

    def secrets_in(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The opted-in Secrets of a namespace, by name."""
        store = self._caches.stores.get(SECRET)
        if store is None:
            return {}
        return {k[1]: v for k in store.list_keys() if k[0] == namespace and (v := store.get(*k))}

    def pods_of(self, namespace: str, pool: str) -> list[dict[str, Any]]:
        """The cached Pods of a pool (only GPU pools' Pods are cached)."""
        return [
            p
            for p in self.store(POD).values()
            if (p.get("metadata") or {}).get("namespace") == namespace
            and ((p.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL) == pool
        ]

    def namespace_terminating(self, namespace: str) -> bool:
        obj = self.store(NAMESPACE).get("", namespace)
        if obj is None:
            return False
        return bool(obj["metadata"].get("deletionTimestamp")) or (
            (obj.get("status") or {}).get("phase") == "Terminating"
        )
