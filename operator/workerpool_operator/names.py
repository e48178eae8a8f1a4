"""Names the operator writes into the cluster, spelled once: field managers, labels,
annotations, the Lease and the operator's namespace (like kopf's `conventions.py`)."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "workerpools.io"
OPERATOR = "workerpool-operator"
# Where the operator runs, its Lease lives and ClusterTemporalConnections keep their Secrets.
DEFAULT_NAMESPACE = "workerpools-system"
LEASE_NAME = OPERATOR

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VERSION_LABEL = "app.kubernetes.io/version"
POOL_LABEL = f"{GROUP}/pool"
# Only Secrets carrying this label are ever read or cached (see docs/security.md).
CREDENTIALS_LABEL = f"{GROUP}/temporal-credentials"
# Pods of GPU pools carry this label, so the Pod cache holds only what GPU capacity needs.
GPU_POD_LABEL = f"{GROUP}/gpu"

TASK_QUEUE_ANNOTATION = f"{GROUP}/task-queue"
ADOPT_ANNOTATION = f"{GROUP}/adopt"
# A versioned pool's manual rollout actions without a spec edit (`kubectl annotate`): each names
# the build it is meant for, so a stale one never acts on a later build.
PROMOTE_ANNOTATION = f"{GROUP}/promote"
ABORT_ANNOTATION = f"{GROUP}/abort"
APPLIED_HASH_ANNOTATION = f"{GROUP}/applied-hash"
CREDENTIALS_HASH_ANNOTATION = f"{GROUP}/credentials-hash"
LEGACY_FINALIZER = f"{GROUP}/finalizer"


@dataclass(frozen=True)
class FieldManagers:
    """Server-side apply field managers: each writer owns its own fields of an object.

    `suffixed` exists for tests: two operators on one bed then show up as different writers in
    managedFields, so a test can prove that the operator it started did the work.
    """

    operator: str = OPERATOR
    # The Builtin scaler: Deployment spec.replicas and its own status fields.
    scaler: str = "workerpool-autoscaler"
    # Owner of spec.replicas until KEDA's or the HPA's first change of it (see plan.Handover).
    handover: str = "workerpool-handover"
    health: str = "workerpool-connection-health"
    # Versioned pools: spec.replicas of builds that are no longer the target (a manager of its
    # own, so scaling one never drops the operator's template fields; see versioning/pool.py).
    versioning: str = "workerpool-versioning"

    def suffixed(self, suffix: str) -> FieldManagers:
        if not suffix:
            return self
        return FieldManagers(
            *(
                f"{name}-{suffix}"
                for name in (
                    self.operator,
                    self.scaler,
                    self.handover,
                    self.health,
                    self.versioning,
                )
            )
        )


MANAGERS = FieldManagers()
