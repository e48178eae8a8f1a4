"""Autoscaling children (KEDA ScaledObject + TriggerAuthentication, or HPA) and their conditions.

Pure. An unversioned pool gets one ScaledObject or HPA named after it; a versioned pool
(spec.versioning) gets one per live build instead (`render_build_scaler`), named after and
targeting that build's Deployment, and keeps the one TriggerAuthentication.

The Builtin engine renders no child and no condition: the operator's scaler
(`scaling/loop.py`) writes Deployment replicas and owns the AutoscalingReady,
BacklogAvailable and GPUCapacityAvailable conditions with its own field manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker_runtime import contract
from workerpool_operator.api.v1alpha1 import (
    CONDITION_AUTOSCALING,
    AutoscalingSpec,
    TemporalWorkerPool,
)
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.status import ConditionSpec
from workerpool_operator.render.common import Manifest, object_meta
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

KEDA_API = "keda.sh/v1alpha1"
HPA_API = "autoscaling/v2"

# KEDA's temporal scaler reads both queue types; ours sums the same two.
KEDA_QUEUE_TYPES = "workflow,activity"


@dataclass(frozen=True)
class AutoscalingPlan:
    children: list[Manifest] = field(default_factory=list)
    conditions: list[ConditionSpec] = field(default_factory=list)


@dataclass(frozen=True)
class BuildScaler:
    """One live build of a versioned pool as its autoscaler sees it: the build, its Deployment
    (the scaler's target and name) and the fewest replicas it may scale that Deployment to."""

    build_id: str
    deployment: str
    min_replicas: int


def _target_ref(name: str) -> dict[str, str]:
    """The Deployment a scaler scales: the pool's own, or one build's."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def _meta(pool: TemporalWorkerPool, build: BuildScaler | None) -> Manifest:
    """The pool's object metadata; for a build's scaler, the build's name and build-ID label
    (the cache lists a pool's per-build scalers by it)."""
    meta = object_meta(pool)
    if build is not None:
        meta["name"] = build.deployment
        meta["labels"][BUILD_ID_LABEL] = build.build_id
    return meta


def _behavior(spec: AutoscalingSpec) -> dict[str, Any]:
    """HPA behavior carrying the pool's stabilization windows (same meaning in every engine)."""
    return {
        "scaleUp": {"stabilizationWindowSeconds": spec.scale_up_stabilization_seconds},
        "scaleDown": {"stabilizationWindowSeconds": spec.scale_down_stabilization_seconds},
    }


def _keda_auth_refs(pool: TemporalWorkerPool) -> list[dict[str, str]]:
    """secretTargetRef entries: mTLS material from the TLS Secret, the API key from its ref."""
    conn = pool.spec.effective_connection
    refs: list[dict[str, str]] = []
    if conn.tls is not None and conn.tls.secret_name:
        name = conn.tls.secret_name
        refs += [
            {"parameter": "ca", "name": name, "key": contract.TLS_CA_FILE},
            {"parameter": "cert", "name": name, "key": contract.TLS_CERT_FILE},
            {"parameter": "key", "name": name, "key": contract.TLS_KEY_FILE},
        ]
    if conn.api_key_secret_ref is not None:
        ref = conn.api_key_secret_ref
        refs.append({"parameter": "apiKey", "name": ref.name, "key": ref.key})
    return refs


def render_trigger_authentication(pool: TemporalWorkerPool) -> Manifest | None:
    """KEDA TriggerAuthentication for the pool's Secrets, or None when it connects in clear."""
    refs = _keda_auth_refs(pool)
    if not refs:
        return None
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": object_meta(pool),
        "spec": {"secretTargetRef": refs},
    }


def render_scaled_object(
    pool: TemporalWorkerPool, *, authenticated: bool, build: BuildScaler | None = None
) -> Manifest:
    """KEDA ScaledObject with the `temporal` trigger (metadata names as in KEDA >= 2.17). For a
    build: that build's Deployment, scaled on its Worker Deployment Version's own backlog
    (`workerDeploymentName` + `workerDeploymentBuildId`, KEDA >= 2.20: one
    DescribeWorkerDeploymentVersion per poll, the version's queues filtered to the pool's)."""
    spec = pool.spec.autoscaling or AutoscalingSpec(engine="KEDA")
    conn = pool.spec.effective_connection
    metadata: dict[str, str] = {
        "endpoint": conn.address,
        "namespace": conn.namespace,
        "taskQueue": pool.spec.task_queue,
        "queueTypes": KEDA_QUEUE_TYPES,
        "targetQueueSize": str(spec.target_backlog_per_replica),
        "activationTargetQueueSize": str(spec.activation_backlog),
    }
    if conn.tls is not None and conn.tls.server_name:
        metadata["tlsServerName"] = conn.tls.server_name
    if build is not None:
        versioning = pool.spec.versioning
        assert versioning is not None, "only versioned pools have builds"
        metadata["workerDeploymentName"] = versioning.effective_deployment_name(
            pool.namespace, pool.name
        )
        metadata["workerDeploymentBuildId"] = build.build_id
    trigger: dict[str, Any] = {"type": "temporal", "metadata": metadata}
    if authenticated:
        trigger["authenticationRef"] = {"name": pool.name}
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": _meta(pool, build),
        "spec": {
            "scaleTargetRef": _target_ref(pool.name if build is None else build.deployment),
            "minReplicaCount": spec.min_replicas if build is None else build.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": spec.poll_interval_seconds,
            # KEDA's wait before the last replica goes (scale to zero); the HPA window covers >0.
            "cooldownPeriod": spec.scale_down_stabilization_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(spec)}},
            "triggers": [trigger],
        },
    }


def render_hpa(pool: TemporalWorkerPool, build: BuildScaler | None = None) -> Manifest:
    """autoscaling/v2 HorizontalPodAutoscaler on average CPU and/or memory utilization: of the
    pool's Deployment, or of one build's (the same metrics, its own minimum)."""
    spec = pool.spec.autoscaling or AutoscalingSpec(engine="HPA")
    metrics: list[dict[str, Any]] = []
    for resource, target in (("cpu", spec.cpu_utilization), ("memory", spec.memory_utilization)):
        if target is not None:
            metrics.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": resource,
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            )
    return {
        "apiVersion": HPA_API,
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(pool, build),
        "spec": {
            "scaleTargetRef": _target_ref(pool.name if build is None else build.deployment),
            "minReplicas": max(spec.min_replicas if build is None else build.min_replicas, 1),
            "maxReplicas": spec.max_replicas,
            "metrics": metrics,
            "behavior": _behavior(spec),
        },
    }


def _missing_requests(pool: TemporalWorkerPool, spec: AutoscalingSpec) -> list[str]:
    """Resources with a utilization target but no request: the HPA cannot compute a percent."""
    requests = (pool.spec.resources.requests or {}) if pool.spec.resources else {}
    wanted = [
        name
        for name, target in (("cpu", spec.cpu_utilization), ("memory", spec.memory_utilization))
        if target is not None
    ]
    return [name for name in wanted if name not in requests]


def plan_autoscaling(pool: TemporalWorkerPool, *, keda_installed: bool) -> AutoscalingPlan:
    """Children and AutoscalingReady for KEDA and HPA; nothing for Builtin or fixed replicas.
    A versioned pool's ScaledObjects or HPAs are per build and come from the routing pass
    (reconcile/versioned.py `plan_build_scalers`); only its TriggerAuthentication is here."""
    spec = pool.spec.autoscaling
    versioned = pool.spec.versioning is not None
    if spec is None or spec.engine == "Builtin":
        return AutoscalingPlan()
    if spec.engine == "KEDA":
        if not keda_installed:
            return AutoscalingPlan(
                conditions=[
                    ConditionSpec(
                        CONDITION_AUTOSCALING,
                        "False",
                        Reason.CRD_NOT_INSTALLED,
                        "keda.sh/v1alpha1 ScaledObject CRD is not installed: install KEDA "
                        "(>= 2.17 for the temporal scaler) or set autoscaling.engine: Builtin",
                    )
                ]
            )
        auth = render_trigger_authentication(pool)
        # The TriggerAuthentication first: KEDA resolves it when the ScaledObject appears.
        children = [] if auth is None else [auth]
        if versioned:
            message = (
                "one KEDA ScaledObject per live build scales that build's Deployment on its "
                "Worker Deployment Version's backlog"
            )
        else:
            children.append(render_scaled_object(pool, authenticated=auth is not None))
            message = (
                f"KEDA ScaledObject {pool.name} scales the Deployment on the task-queue backlog"
            )
        tls = pool.spec.effective_connection.tls
        if tls is not None and not _keda_auth_refs(pool):
            message += (
                "; note: without a tls.secretName or API key KEDA's temporal scaler connects "
                "without TLS"
            )
        return AutoscalingPlan(
            children=children,
            conditions=[ConditionSpec(CONDITION_AUTOSCALING, "True", Reason.CREATED, message)],
        )
    # HPA
    children = [] if versioned else [render_hpa(pool)]
    missing = _missing_requests(pool, spec)
    if missing:
        condition = ConditionSpec(
            CONDITION_AUTOSCALING,
            "False",
            Reason.RESOURCE_REQUESTS_MISSING,
            f"the HPA needs spec.resources.requests.{' and '.join(missing)} to compute "
            "utilization; it will not scale until they are set",
        )
    else:
        condition = ConditionSpec(
            CONDITION_AUTOSCALING,
            "True",
            Reason.CREATED,
            "one HorizontalPodAutoscaler per live build scales that build's Deployment on "
            "resource utilization"
            if versioned
            else f"HorizontalPodAutoscaler {pool.name} scales the Deployment on resource "
            "utilization",
        )
    return AutoscalingPlan(children=children, conditions=[condition])


def render_build_scaler(
    pool: TemporalWorkerPool, build: BuildScaler, *, authenticated: bool
) -> Manifest:
    """A versioned KEDA or HPA pool's autoscaler of one build (see `plan_autoscaling`)."""
    spec = pool.spec.autoscaling
    assert spec is not None, "only autoscaled pools"
    assert spec.engine in ("KEDA", "HPA"), "only KEDA and HPA pools"
    if spec.engine == "KEDA":
        return render_scaled_object(pool, authenticated=authenticated, build=build)
    return render_hpa(pool, build)
