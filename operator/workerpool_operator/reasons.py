"""Condition and Event reasons: one enum, documented as API (docs/api.md lists every member).

Pure. mypy checks that every condition the operator sets uses a member, so a typo is a type
error, not a new undocumented reason that GitOps health checks do not know.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Ready
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    REPLICAS_NOT_READY = "ReplicasNotReady"
    INVALID_SPEC = "InvalidSpec"
    APPLY_FAILED = "ApplyFailed"
    NAME_CONFLICT = "NameConflict"
    CONNECTION_NOT_FOUND = "ConnectionNotFound"
    CONNECTION_NOT_ALLOWED = "ConnectionNotAllowed"
    POOL_NOT_ALLOWED = "PoolNotAllowed"
    CONNECTION_INVALID = "ConnectionInvalid"
    ADDRESS_NOT_ALLOWED = "AddressNotAllowed"
    # Progressing
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLOUT_STALLED = "RolloutStalled"
    # ServiceMonitorReady / AutoscalingReady
    CREATED = "Created"
    CRD_NOT_INSTALLED = "CRDNotInstalled"
    DISABLED = "Disabled"
    # Autoscaling / backlog / GPU
    BACKLOG_POLLED = "BacklogPolled"
    TEMPORAL_UNAVAILABLE = "TemporalUnavailable"
    INSUFFICIENT_GPU = "InsufficientGPU"
    GPUS_SCHEDULED = "GPUsScheduled"
    CREDENTIALS_UNAVAILABLE = "CredentialsUnavailable"
    # TemporalConnection Ready
    CONNECTED = "Connected"
    NAMESPACE_NOT_FOUND = "NamespaceNotFound"
    RESOURCE_REQUESTS_MISSING = "ResourceRequestsMissing"
    # Events on the pool
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    ACCESS_REVOKED = "AccessRevoked"
    # Degraded
    AS_EXPECTED = "AsExpected"
    # VersionRollout / VersionLimit (versioned pools) and routing Events
    TARGET_CURRENT = "TargetCurrent"
    WAITING_FOR_POLLERS = "WaitingForPollers"
    GATED = "Gated"
    GATE_FAILED = "GateFailed"
    ANALYSIS_FAILED = "AnalysisFailed"
    ABORTED = "AbortedByUser"
    RELEASE_GROUP_HELD = "ReleaseGroupHeld"
    RELEASE_GROUP_FOLLOWING = "FollowingReleaseGroup"
    RELEASE_GROUP_INVALID = "ReleaseGroupInvalid"
    RAMPING = "Ramping"
    PROMOTED = "Promoted"
    PAUSED = "Paused"
    ROLLED_BACK = "RolledBack"
    MANUAL = "ManualRouting"
    OWNED_ELSEWHERE = "RoutingOwnedElsewhere"
    ROUTING_UPDATING = "RoutingUpdateInProgress"
    PROMOTION_REFUSED = "PromotionRefused"
    VERSION_LIMIT_NEAR = "VersionLimitNear"
    WITHIN_VERSION_LIMIT = "WithinVersionLimit"
    VERSION_RETIRED = "VersionRetired"


DOCS: dict[Reason, str] = {
    Reason.AVAILABLE: "All desired replicas are updated and ready.",
    Reason.SCALED_TO_ZERO: "The pool has no replicas because the autoscaler scaled it to zero.",
    Reason.REPLICAS_NOT_READY: "Fewer replicas are ready than desired.",
    Reason.INVALID_SPEC: (
        "The spec passed admission but cannot be rendered; the message names the field. "
        "Nothing is retried until the spec changes."
    ),
    Reason.APPLY_FAILED: (
        "The API server refused a child object; the message names the object and field. "
        "Retried with backoff (up to 5 minutes apart)."
    ),
    Reason.NAME_CONFLICT: (
        "An object with the pool's name exists and the pool does not control it; the operator "
        "leaves it alone and reconciles everything else. Delete or rename it, or annotate it "
        "with workerpools.io/adopt=true to hand it to the pool."
    ),
    Reason.CONNECTION_NOT_FOUND: (
        "spec.connectionRef names a TemporalConnection (in the pool's namespace) or "
        "ClusterTemporalConnection that does not exist, or whose CRD is not installed. Nothing "
        "is created or changed until it appears; existing children are left as they are."
    ),
    Reason.CONNECTION_NOT_ALLOWED: (
        "spec.connectionRef names a ClusterTemporalConnection whose spec.allowedNamespaces does "
        "not select the pool's namespace. Nothing is written for the pool, and what carried the "
        "connection's credentials is deleted (Deployment, ScaledObject, TriggerAuthentication, "
        "HPA: the pool runs no workers); all is written again once the namespace is allowed. "
        "Ask the cluster admin to label the namespace or widen allowedNamespaces, or use a "
        "TemporalConnection."
    ),
    Reason.POOL_NOT_ALLOWED: (
        "spec.connectionRef names a connection whose spec.allowedPools does not select the "
        "pool's labels. Nothing is written for the pool, and what carried the connection's "
        "credentials is deleted (Deployment, ScaledObject, TriggerAuthentication, HPA: the pool "
        "runs no workers); all is written again once the connection admits the pool. Set the "
        "labels the connection's owner asks for on the pool, or ask them to widen "
        "spec.allowedPools."
    ),
    Reason.CONNECTION_INVALID: (
        "The referenced connection's spec cannot be read (it passed an older admission); the "
        "message names the field. Children are left as they are."
    ),
    Reason.ADDRESS_NOT_ALLOWED: (
        "The pool's Temporal address (spec.connection or its connection's) is not among the "
        "addresses the cluster admin allows (operator setting grants.allowedAddresses). Nothing "
        "is written or dialled for it, and a pool that ran before loses its Deployment and "
        "autoscaler objects until the address is allowed. Pool, or connection: use an allowed "
        "address."
    ),
    Reason.ROLLOUT_IN_PROGRESS: "The Deployment is rolling out a new template or scaling.",
    Reason.ROLLOUT_COMPLETE: "The latest template is fully rolled out.",
    Reason.ROLLOUT_STALLED: "The Deployment exceeded its progress deadline.",
    Reason.CREATED: "The child object exists and matches the spec.",
    Reason.CRD_NOT_INSTALLED: "The prometheus-operator/KEDA CRD is not installed in the cluster.",
    Reason.DISABLED: "The feature is turned off in the spec.",
    Reason.BACKLOG_POLLED: "Temporal reported the task-queue backlog.",
    Reason.TEMPORAL_UNAVAILABLE: "DescribeTaskQueue failed; replicas are held.",
    Reason.INSUFFICIENT_GPU: "Pods are Pending for lack of schedulable GPUs.",
    Reason.GPUS_SCHEDULED: "Every GPU pod found a node.",
    Reason.CREDENTIALS_UNAVAILABLE: (
        "A Secret named in spec.connection (TLS or API key) is missing, lacks a key, or does "
        "not carry the opt-in label workerpools.io/temporal-credentials=true. A Secret that "
        "did not opt in is never handed to pods or KEDA: nothing is written for the pool until "
        "the namespace owner labels it; the Builtin autoscaler holds replicas."
    ),
    Reason.CONNECTED: (
        "Connection Ready: the operator's health check reached the server (GetSystemInfo) and "
        "the Temporal namespace exists."
    ),
    Reason.NAMESPACE_NOT_FOUND: (
        "Connection: the server answered, but DescribeNamespace found no such Temporal namespace."
    ),
    Reason.RESOURCE_REQUESTS_MISSING: (
        "HPA engine: a utilization target has no matching spec.resources.requests entry, so "
        "the HPA cannot compute a percentage and does not scale."
    ),
    Reason.SCALED_UP: "Event: the Builtin autoscaler raised the Deployment's replicas.",
    Reason.SCALED_DOWN: "Event: the Builtin autoscaler lowered the Deployment's replicas.",
    Reason.ACCESS_REVOKED: (
        "Event: the pool's connection stopped admitting it (PoolNotAllowed, ConnectionNotAllowed, "
        "AddressNotAllowed), so the operator deleted the children that carried the connection's "
        "credentials or acted with them; the message lists them. They are written again once "
        "the connection admits the pool."
    ),
    Reason.AS_EXPECTED: "Nothing is wrong.",
    Reason.TARGET_CURRENT: (
        "Versioned pool: the build the spec asks for is Temporal's current version; new "
        "workflows start on it."
    ),
    Reason.WAITING_FOR_POLLERS: (
        "Versioned pool: the new build's Deployment runs, but none of its workers has polled "
        "yet, so Temporal does not know the version; routing waits (check the new pods' logs "
        "if it lasts)."
    ),
    Reason.GATED: (
        "Versioned pool: the gate workflow (spec.versioning.gate) runs pinned to the new build; "
        "no traffic moves before it succeeds."
    ),
    Reason.GATE_FAILED: (
        "Versioned pool: the gate workflow failed on the new build; no traffic moves to it. Fix "
        "the build: a new build runs the gate again."
    ),
    Reason.ANALYSIS_FAILED: (
        "Versioned pool: while the new build ramped, more of its closed workflows failed or "
        "timed out, or more of its workers' workflow tasks or activity tasks failed, than "
        "spec.versioning.analysis allows (the message names the rule), so its ramp was cleared "
        "at once (the current build takes all new work). It is not ramped again until the spec "
        "changes."
    ),
    Reason.RELEASE_GROUP_HELD: (
        "Versioned pool driving a release group (pools naming one spec.versioning."
        "deploymentName): the group's new build is ready to move, but a member pool's "
        "Deployment of it has no ready pod or none of its workers has polled that pool's task "
        "queue; no new work moves before every member runs the build. The message names the "
        "member."
    ),
    Reason.RELEASE_GROUP_FOLLOWING: (
        "Versioned pool in a release group: another member (the first by name) makes the "
        "group's routing changes; this pool runs the group's build and reports its state "
        "(status.releaseGroup)."
    ),
    Reason.RELEASE_GROUP_INVALID: (
        "Versioned pools naming one spec.versioning.deploymentName disagree on a "
        "spec.versioning field (or live in other namespaces, or one cannot be rendered); no "
        "member changes routing until they agree. The message names the field and each pool's "
        "value."
    ),
    Reason.ABORTED: (
        "Versioned pool: spec.versioning.abort or the annotation workerpools.io/abort names the "
        "target build, so it gets no new work (its ramp is cleared) while it is not current."
    ),
    Reason.RAMPING: (
        "Versioned pool: the new build gets the message's share of new workflows "
        "(spec.versioning.steps); the next step follows its pause."
    ),
    Reason.PROMOTED: "Versioned pool (Event): the new build was made Temporal's current version.",
    Reason.PAUSED: (
        "Versioned pool: spec.versioning.paused holds routing where it is and deletes no build; "
        "set it to false to go on."
    ),
    Reason.ROLLED_BACK: (
        "Versioned pool: the build the spec asks for was current within "
        "spec.versioning.rollbackWindowSeconds, so it became current again at once (a revert "
        "of the spec is a rollback)."
    ),
    Reason.MANUAL: (
        "Versioned pool with strategy Manual: the operator runs each build's Deployment but "
        "never changes routing; the message gives the temporal CLI command."
    ),
    Reason.OWNED_ELSEWHERE: (
        "Versioned pool: the Worker Deployment's manager identity is someone else's (a person "
        "or another controller); the operator reports instead of fighting. Unset the manager "
        "identity to hand routing back."
    ),
    Reason.ROUTING_UPDATING: (
        "Versioned pool: Temporal is still propagating the last routing change; the operator "
        "looks again in seconds."
    ),
    Reason.PROMOTION_REFUSED: (
        "Versioned pool: Temporal refused a routing change (the message has its answer, such as "
        "a stale conflict token, a version that is not present, or a build whose workers have "
        "not polled every task queue yet); retried on the next pass. Meanwhile "
        "status.currentBuildId and status.rampPercentage show the routing Temporal kept."
    ),
    Reason.VERSION_LIMIT_NEAR: (
        "Versioned pool (condition VersionLimit and a Warning Event): versions that hold work "
        "(current, ramping, the target, draining with open pinned workflows) fill at least 80% "
        "of the versions Temporal allows (--version-cap); at the cap new builds stop "
        "registering. Idle builds are retired on their own and do not count."
    ),
    Reason.WITHIN_VERSION_LIMIT: "Versioned pool: the Worker Deployment is below its version cap.",
    Reason.VERSION_RETIRED: (
        "Versioned pool (Event): a drained build's Deployment was deleted after its sunset delay "
        "(or past spec.versioning.retention)."
    ),
}
