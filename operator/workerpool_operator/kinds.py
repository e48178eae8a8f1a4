"""The one registry of the kinds the operator reads and writes (pure data, no I/O).

Everything that lists kinds derives from here: the watch-fed caches (which informers run, with
which label selector), pruning (children the pool no longer wants), the RBAC in manifests/ and
the chart (`python -m workerpool_operator.rbac`), and the docs table in docs/design.md. A test
fails when the RBAC grants more or less than this registry needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.names import CREDENTIALS_LABEL, GPU_POD_LABEL, MANAGED_BY_LABEL, OPERATOR

# Synthetic field the Deployment cache carries instead of managedFields: who owns spec.replicas.
REPLICAS_OWNERS = "_replicasOwners"


@dataclass(frozen=True)
class Kind:
    """One API kind: where it lives, and the verbs the operator's code uses on it."""

    api_version: str
    kind: str
    plural: str
    verbs: tuple[str, ...]
    namespaced: bool = True
    # Served only when this CRD is installed (discovered by watching CRDs, not by polling).
    crd: str | None = None
    # Server-side label selector of the watch, if any (keeps the cache to what we need).
    selector: str | None = None
    why: str = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> tuple[str, str]:
        return (self.api_version, self.kind)


# Children: rendered per pool, named after it, controller-owned by it, pruned when unwanted.
# get: one read when a child is missing from the cache, to tell "absent" from "foreign object".
# delete: pruning a child the pool no longer wants. Every pool always has a Service, a
# PodDisruptionBudget and a ServiceAccount, which go with the pool through ownerReferences: the
# operator never deletes one, so it is not granted delete on them. Deployments are deleted:
# a versioned pool's drained builds are retired, and its unversioned Deployment goes once a build
# is current (docs/versioning.md).
CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
ALWAYS_CHILD_VERBS = ("get", "list", "watch", "create", "patch")
_CHILD = f"{MANAGED_BY_LABEL}={OPERATOR}"

DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", CHILD_VERBS, selector=_CHILD)
SERVICE = Kind("v1", "Service", "services", ALWAYS_CHILD_VERBS, selector=_CHILD)
PDB = Kind(
    "policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", ALWAYS_CHILD_VERBS, selector=_CHILD
)
SERVICE_MONITOR = Kind(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    "servicemonitors",
    CHILD_VERBS,
    crd="servicemonitors.monitoring.coreos.com",
    selector=_CHILD,
)
SERVICE_ACCOUNT = Kind(
    "v1", "ServiceAccount", "serviceaccounts", ALWAYS_CHILD_VERBS, selector=_CHILD
)
NETWORK_POLICY = Kind(
    "networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", CHILD_VERBS, selector=_CHILD
)
SCALED_OBJECT = Kind(
    "keda.sh/v1alpha1",
    "ScaledObject",
    "scaledobjects",
    CHILD_VERBS,
    crd="scaledobjects.keda.sh",
    selector=_CHILD,
)
TRIGGER_AUTH = Kind(
    "keda.sh/v1alpha1",
    "TriggerAuthentication",
    "triggerauthentications",
    CHILD_VERBS,
    crd="triggerauthentications.keda.sh",
    selector=_CHILD,
)
HPA = Kind(
    "autoscaling/v2",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    CHILD_VERBS,
    selector=_CHILD,
)

CHILDREN: tuple[Kind, ...] = (
    DEPLOYMENT,
    SERVICE,
    PDB,
    SERVICE_ACCOUNT,
    NETWORK_POLICY,
    SERVICE_MONITOR,
    SCALED_OBJECT,
    TRIGGER_AUTH,
    HPA,
)

POOL = Kind(
    api.API_VERSION,
    api.KIND,
    api.PLURAL,
    ("list", "watch", "patch"),
    why="pools are watched; patch drops the finalizer of versions before 0.2",
)
POOL_STATUS = Kind(
    api.API_VERSION,
    api.KIND,
    f"{api.PLURAL}/status",
    ("patch",),
    why="status is server-side applied",
)
SECRET = Kind(
    "v1",
    "Secret",
    "secrets",
    ("list", "watch"),
    selector=f"{CREDENTIALS_LABEL}=true",
    why="Temporal credentials for the scaler, only Secrets that opted in by label",
)
# The same watch, in the operator's own namespace: ClusterTemporalConnections' Secrets live
# there. A cluster-wide install's ClusterRole covers it already; a namespaced install
# (Roles per watched namespace) needs this Role in its own namespace too.
CREDENTIALS_NAMESPACE_SECRET = replace(
    SECRET, why="ClusterTemporalConnection credentials, in the operator's own namespace only"
)
POD = Kind(
    "v1",
    "Pod",
    "pods",
    ("list", "watch"),
    selector=f"{GPU_POD_LABEL}=true",
    why="Pending GPU pods (GPUCapacityAvailable)",
)
NAMESPACE = Kind(
    "v1",
    "Namespace",
    "namespaces",
    ("list", "watch"),
    namespaced=False,
    why="pools in a terminating namespace are left alone",
)
CRD = Kind(
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    ("list", "watch"),
    namespaced=False,
    why="optional children (ServiceMonitor, KEDA) appear and vanish with their CRDs",
)
# Connections: watched while their CRDs are Established (an operator upgraded before its CRDs
# keeps working); status is written by the leader's health check.
CONNECTION = Kind(
    api.API_VERSION,
    api.CONNECTION_KIND,
    api.CONNECTION_PLURAL,
    ("list", "watch"),
    crd=f"{api.CONNECTION_PLURAL}.{api.GROUP}",
    why="connections that pools reference (spec.connectionRef)",
)
CONNECTION_STATUS = Kind(
    api.API_VERSION,
    api.CONNECTION_KIND,
    f"{api.CONNECTION_PLURAL}/status",
    ("patch",),
    why="the connection health check applies its status",
)
CLUSTER_CONNECTION = Kind(
    api.API_VERSION,
    api.CLUSTER_CONNECTION_KIND,
    api.CLUSTER_CONNECTION_PLURAL,
    ("list", "watch"),
    namespaced=False,
    crd=f"{api.CLUSTER_CONNECTION_PLURAL}.{api.GROUP}",
    why="cluster-wide connections, for the namespaces they allow",
)
CLUSTER_CONNECTION_STATUS = Kind(
    api.API_VERSION,
    api.CLUSTER_CONNECTION_KIND,
    f"{api.CLUSTER_CONNECTION_PLURAL}/status",
    ("patch",),
    namespaced=False,
    why="the connection health check applies its status",
)
CONNECTIONS: tuple[Kind, ...] = (CONNECTION, CLUSTER_CONNECTION)
STATUS_KINDS: tuple[Kind, ...] = (POOL_STATUS, CONNECTION_STATUS, CLUSTER_CONNECTION_STATUS)
EVENT = Kind("v1", "Event", "events", ("create",), why="Events on pools")
LEASE = Kind(
    "coordination.k8s.io/v1",
    "Lease",
    "leases",
    ("get", "create", "update"),
    why="leader election, in the operator's own namespace only",
)

WATCHED: tuple[Kind, ...] = (*CHILDREN, SECRET, POD, NAMESPACE, CRD, *CONNECTIONS)
# Cluster-wide rules (ClusterRole, or a Role per watched namespace for namespaced kinds).
CLUSTER_RULE_KINDS: tuple[Kind, ...] = (
    POOL,
    POOL_STATUS,
    CONNECTION,
    CONNECTION_STATUS,
    *CHILDREN,
    SECRET,
    POD,
    EVENT,
)
CLUSTER_ONLY_KINDS: tuple[Kind, ...] = (
    NAMESPACE,
    CRD,
    CLUSTER_CONNECTION,
    CLUSTER_CONNECTION_STATUS,
)
# Rules in the operator's own namespace only.
OWN_NAMESPACE_KINDS: tuple[Kind, ...] = (LEASE, CREDENTIALS_NAMESPACE_SECRET)

BY_KEY: dict[tuple[str, str], Kind] = {k.key: k for k in (*WATCHED, POOL, EVENT, LEASE)}


def child(api_version: str, kind: str) -> Kind:
    """The registered child kind for a rendered manifest; KeyError names an unregistered one."""
    found = BY_KEY.get((api_version, kind))
    if found is None or found not in CHILDREN:
        raise KeyError(f"{api_version} {kind} is not a registered child kind")
    return found


def docs_table() -> str:
    """The markdown table of docs/design.md (a unit test keeps the two equal)."""
    rows = ["| kind | API | verbs | watched with | why |", "|---|---|---|---|---|"]
    table = (*CHILDREN, POOL, POOL_STATUS, *CONNECTIONS, CONNECTION_STATUS,
             CLUSTER_CONNECTION_STATUS, SECRET, CREDENTIALS_NAMESPACE_SECRET, POD, NAMESPACE, CRD,
             EVENT, LEASE)  # fmt: skip
    for k in table:
        role = "child" if k in CHILDREN else k.why
        if k.crd:
            role += f" (when CRD `{k.crd}` is installed)"
        watched = (*WATCHED, POOL, CREDENTIALS_NAMESPACE_SECRET)
        watch = f"`{k.selector}`" if k.selector else ("all" if k in watched else "-")
        rows.append(
            f"| {k.kind}{'/status' if k in STATUS_KINDS else ''} | `{k.api_version}` "
            f"| {', '.join(k.verbs)} | {watch} | {role} |"
        )
    return "\n".join(rows)


@dataclass(frozen=True)
class UserRole:
    """A ClusterRole for people, not the operator: who may write or read which of our kinds.

    Each aggregates into the built-in `admin`/`edit`/`view` roles (as KEDA and
    temporal-worker-controller ship theirs), so a RoleBinding to `edit` in a namespace grants
    it there; bind the role itself to grant only that. The split follows docs/security.md:
    a pool author runs pods in the namespace; a connection author also decides where the
    namespace's opted-in credentials are sent.
    """

    name: str
    kinds: tuple[Kind, ...]
    verbs: tuple[str, ...]
    aggregate_to: tuple[str, ...]
    why: str


AUTHOR_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ_VERBS = ("get", "list", "watch")
_POOL_READ = Kind(api.API_VERSION, api.KIND, api.PLURAL, READ_VERBS)
_POOL_STATUS_READ = Kind(api.API_VERSION, api.KIND, f"{api.PLURAL}/status", READ_VERBS)
_CONN_READ = Kind(api.API_VERSION, api.CONNECTION_KIND, api.CONNECTION_PLURAL, READ_VERBS)
_CONN_STATUS_READ = Kind(
    api.API_VERSION, api.CONNECTION_KIND, f"{api.CONNECTION_PLURAL}/status", READ_VERBS
)
USER_ROLES: tuple[UserRole, ...] = (
    UserRole(
        "pool-author",
        (_POOL_READ,),
        AUTHOR_VERBS,
        ("admin", "edit"),
        "create and change TemporalWorkerPools (and so run their pods) in a namespace",
    ),
    UserRole(
        "connection-author",
        (_CONN_READ,),
        AUTHOR_VERBS,
        ("admin", "edit"),
        "create and change TemporalConnections: where the namespace's opted-in credentials go",
    ),
    UserRole(
        "viewer",
        (_POOL_READ, _POOL_STATUS_READ, _CONN_READ, _CONN_STATUS_READ),
        READ_VERBS,
        ("admin", "edit", "view"),
        "read pools, connections and their status",
    ),
)
