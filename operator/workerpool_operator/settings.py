"""Typed settings of one operator process, built once from the command line and handed to the
composition root (`app.Operator`) through kopf's memo: no environment round trip.

Every flag also has an environment variable, read here once as the flag's default (so a
Deployment can set either); nothing else in the operator reads the environment.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from dataclasses import dataclass, field

from workerpool_operator import names
from workerpool_operator.grants import Grants, grants_from_env


def default_identity() -> str:
    """A unique name for this replica when the pod name is unknown (outside a cluster)."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Settings:
    # None: every namespace; otherwise the namespaces watched and reconciled.
    namespaces: tuple[str, ...] | None = None
    # Pools reconciled concurrently (each pool is serialized).
    workers: int = 16
    # Every pool is looked at again this often (free when its children are current).
    resync_seconds: float = 300.0
    leader_elect: bool = False
    lease_name: str = names.LEASE_NAME
    # The operator's namespace: its Lease, and the Secrets of ClusterTemporalConnections.
    namespace: str = names.DEFAULT_NAMESPACE
    identity: str = field(default_factory=default_identity)
    managers: names.FieldManagers = names.MANAGERS
    # What the cluster admin grants pools beyond their authors' rights (docs/security.md).
    grants: Grants = field(default_factory=Grants)
    # Names this install among those that share a Temporal namespace (the routing identity).
    cluster_name: str = "default"
    # Temporal's matching.maxVersionsInDeployment (per namespace, 100 unless the server's
    # dynamic config says otherwise): versioned pools keep below it and report nearing it.
    version_cap: int = 100
    # How often the leader removes the Temporal side of deleted versioned pools (0: never).
    janitor_seconds: float = 300.0

    @property
    def routing_identity(self) -> str:
        """The manager identity this operator claims on Worker Deployments: two clusters whose
        pools share a Temporal namespace and deployment name must not both steer it."""
        return f"{self.managers.operator}@{self.cluster_name}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="workerpool-operator", description="Temporal worker pools operator."
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; $WATCH_NAMESPACES=a,b)",
    )
    p.add_argument("--metrics-port", type=int, default=int(env("METRICS_PORT", 8080)))
    p.add_argument("--liveness-port", type=int, default=int(env("LIVENESS_PORT", 8081)))
    p.add_argument(
        "--leader-elect",
        action="store_true",
        default=_env_flag("WORKERPOOL_LEADER_ELECT"),
        help="act only while holding the Lease (--lease-name) in the operator's namespace",
    )
    p.add_argument(
        "--lease-name",
        default=env("WORKERPOOL_LEASE_NAME", names.LEASE_NAME),
        help="Lease of the leader election: two installs in one namespace need two names",
    )
    p.add_argument(
        "--operator-namespace",
        default=env("POD_NAMESPACE", names.DEFAULT_NAMESPACE),
        help="the operator's namespace: its Lease and ClusterTemporalConnection Secrets "
        "($POD_NAMESPACE)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("WORKERPOOL_WORKERS", "16")),
        help="pools reconciled concurrently (each pool is serialized)",
    )
    p.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env("WORKERPOOL_RESYNC_SECONDS", "300")),
        help="look at every pool again this often (free when its children are current)",
    )
    p.add_argument(
        "--cluster-name",
        default=env("WORKERPOOL_CLUSTER", "default"),
        help="this cluster's name in the manager identity claimed on Temporal Worker Deployments "
        "(versioned pools): give each cluster sharing a Temporal namespace its own",
    )
    p.add_argument(
        "--version-cap",
        type=int,
        default=int(env("WORKERPOOL_VERSION_CAP", "100")),
        help="the versions Temporal allows in one Worker Deployment (the server's dynamic config "
        "matching.maxVersionsInDeployment, 100 by default): idle builds are retired to keep a "
        "slot free for the next one, and VersionLimitNear is reported at 80%% of it",
    )
    p.add_argument(
        "--janitor-seconds",
        type=float,
        default=float(env("WORKERPOOL_JANITOR_SECONDS", "300")),
        help="how often the leader removes from Temporal the Worker Deployments of deleted "
        "versioned pools (0: never)",
    )
    p.add_argument(
        "--field-manager-suffix",
        default="",
        help="tests only: append -SUFFIX to every field manager, so managedFields tell "
        "operators on one cluster apart",
    )
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The Settings the parsed flags (and their environment defaults) describe."""
    namespaces = args.namespace or [
        n for n in os.environ.get("WATCH_NAMESPACES", "").split(",") if n
    ]
    return Settings(
        namespaces=None if args.all_namespaces or not namespaces else tuple(namespaces),
        workers=args.workers,
        resync_seconds=args.resync_seconds,
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        namespace=args.operator_namespace,
        identity=os.environ.get("POD_NAME") or default_identity(),
        managers=names.MANAGERS.suffixed(args.field_manager_suffix),
        # WORKERPOOL_NETWORK_GRANTS, _METRICS_NAMESPACES, _DNS_NAMESPACE, _DNS_POD_LABELS,
        # _ALLOWED_ADDRESSES, _SERVICE_ACCOUNTS (the chart's grants.* values)
        grants=grants_from_env(os.environ),
        cluster_name=args.cluster_name,
        version_cap=args.version_cap,
        janitor_seconds=args.janitor_seconds,
    )
