"""Render the workers' Deployment from a pool (pure; golden-tested).

Env variable names come from `worker_runtime.contract`, the one module both sides import.
"""

from __future__ import annotations

from typing import Any

from worker_runtime import contract
from worker_runtime.contract import env_var, otel_env_var
from workerpool_operator.api.v1alpha1 import (
    RESERVED_ENV_NAMES,
    TRACING_ENV_NAMES,
    TemporalWorkerPool,
)
from workerpool_operator.names import VERSION_LABEL
from workerpool_operator.render.common import (
    Manifest,
    label_value,
    labels,
    object_meta,
    selector_labels,
)
from workerpool_operator.render.identity import service_account_name

CONTAINER = "worker"
RUNTIME_UID = 10001
# Extra time on top of the drain so the runtime can shut its client down before SIGKILL.
TERMINATION_GRACE_MARGIN_SECONDS = 15
TLS_VOLUME = "temporal-tls"
# RollingUpdate defaults. CPU pools surge (no capacity lost while rolling); GPU pools replace one
# pod at a time in place, because a surge pod on a full GPU node pool stays Pending forever.
DEFAULT_ROLLOUT = {"maxSurge": "25%", "maxUnavailable": 0}
DEFAULT_GPU_ROLLOUT = {"maxSurge": 0, "maxUnavailable": 1}


def _env(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "value": str(value).lower() if isinstance(value, bool) else str(value)}


# spec.tracing.samplingRatio is applied with this sampler: a span whose parent was sampled (a
# client that started the workflow with tracing) is always recorded, new traces by the ratio.
TRACING_SAMPLER = "parentbased_traceidratio"


def tracing_env(pool: TemporalWorkerPool) -> list[dict[str, Any]]:
    """The standard OTEL_* variables of spec.tracing (none without it); headers only from the
    referenced Secret."""
    tracing = pool.spec.tracing
    if tracing is None:
        return []
    env = [
        _env(otel_env_var("endpoint"), tracing.endpoint),
        _env(otel_env_var("protocol"), tracing.protocol),
        _env(otel_env_var("service_name"), tracing.service_name or pool.name),
        _env(otel_env_var("sampler"), TRACING_SAMPLER),
        _env(otel_env_var("sampler_arg"), tracing.sampling_ratio),
    ]
    ref = tracing.headers_secret_ref
    if ref is not None:
        env.append(
            {
                "name": otel_env_var("headers"),
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    return env


def runtime_env(pool: TemporalWorkerPool) -> list[dict[str, Any]]:
    """The env contract values for this pool, then the user's env.

    The user's env wins on a name clash, except for the contract variables the operator writes
    from the spec (`api.RESERVED_ENV_NAMES`): admission refuses those, and a pool stored before
    that rule still gets the operator's values, so the worker polls the pool's own queue.
    """
    spec = pool.spec
    conn = spec.effective_connection
    env: list[dict[str, Any]] = [
        _env(env_var("temporal_address"), conn.address),
        _env(env_var("temporal_namespace"), conn.namespace),
        _env(env_var("task_queue"), spec.task_queue),
        _env(env_var("workflows"), ",".join(spec.workflows)),
        _env(env_var("activities"), ",".join(spec.activities)),
        _env(env_var("metrics_port"), spec.metrics.port),
        _env(env_var("graceful_shutdown_seconds"), spec.worker.graceful_shutdown_seconds),
        _env(env_var("pool_name"), pool.name),
        {"name": env_var("pod_name"), "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": env_var("pod_namespace"),
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    if conn.tls is not None:
        env.append(_env(env_var("tls_enabled"), True))
        # The Secret is mounted at contract.TLS_MOUNT_PATH and the runtime uses whichever of
        # ca.crt / tls.crt / tls.key it holds: no explicit paths, so a Secret without ca.crt
        # (server signed by a public CA) falls back to the system roots instead of crashing.
        if conn.tls.server_name:
            env.append(_env(env_var("tls_server_name"), conn.tls.server_name))
    if conn.api_key_secret_ref is not None:
        ref = conn.api_key_secret_ref
        env.append(
            {
                "name": env_var("api_key"),
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    tuning = spec.worker
    for field in contract.WORKER_TUNING_FIELDS:
        value = getattr(tuning, field)
        if value is not None:
            env.append(_env(env_var(field), value))
    env += tracing_env(pool)
    # Admission refuses the tracing names in spec.env while spec.tracing is set (like the
    # reserved TWP_* names); a pool stored before that rule still gets spec.tracing's values.
    reserved = RESERVED_ENV_NAMES + (TRACING_ENV_NAMES if spec.tracing is not None else ())
    user = [e for e in spec.env or [] if str(e.get("name", "")).upper() not in reserved]
    user_names = {e.get("name") for e in user}
    return [e for e in env if e["name"] not in user_names] + user


def _resources(pool: TemporalWorkerPool) -> dict[str, Any]:
    res = pool.spec.resources
    requests: dict[str, Any] = dict(res.requests or {}) if res else {}
    limits: dict[str, Any] = dict(res.limits or {}) if res else {}
    gpu = pool.spec.gpu
    if gpu is not None:
        limits[gpu.resource_name] = gpu.count
        requests[gpu.resource_name] = gpu.count
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _gpu_tolerations(pool: TemporalWorkerPool) -> list[dict[str, Any]]:
    gpu = pool.spec.gpu
    if gpu is None:
        return []
    if gpu.tolerations is not None:
        return list(gpu.tolerations)
    return [{"key": gpu.resource_name.split("/")[0] + "/gpu", "operator": "Exists"}]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def rolling_update(pool: TemporalWorkerPool) -> dict[str, Any]:
    """maxSurge/maxUnavailable: the spec's, else the CPU or GPU default, field by field."""
    defaults = DEFAULT_GPU_ROLLOUT if pool.spec.gpu is not None else DEFAULT_ROLLOUT
    rollout = pool.spec.rollout
    return {
        "maxSurge": rollout.max_surge
        if rollout and rollout.max_surge is not None
        else defaults["maxSurge"],
        "maxUnavailable": rollout.max_unavailable
        if rollout and rollout.max_unavailable is not None
        else defaults["maxUnavailable"],
    }


def version_label(pool: TemporalWorkerPool) -> str:
    """app.kubernetes.io/version: the tag (or digest), made a valid label value."""
    image = pool.spec.image
    return label_value(image.digest or image.resolved_tag)


def render_deployment(pool: TemporalWorkerPool, *, replicas: int | None) -> Manifest:
    """The workers' Deployment.

    `replicas=None` leaves `spec.replicas` out of the applied fields so an autoscaler (ours with
    its own field manager, KEDA or HPA) owns it; server-side apply then never fights it.
    """
    spec = pool.spec
    template = spec.template
    tmeta = template.metadata if template and template.metadata else None
    port = spec.metrics.port

    pod_labels = {**(tmeta.labels or {} if tmeta else {}), **labels(pool)}
    pod_annotations = {
        **(tmeta.annotations or {} if tmeta else {}),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": contract.METRICS_PATH,
    }

    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    tls = spec.effective_connection.tls
    if tls is not None and tls.secret_name:
        volumes.append(
            {"name": TLS_VOLUME, "secret": {"secretName": tls.secret_name, "defaultMode": 0o440}}
        )
        mounts.append({"name": TLS_VOLUME, "mountPath": contract.TLS_MOUNT_PATH, "readOnly": True})
    gpu = spec.gpu
    if gpu is not None and gpu.shm_size is not None:
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": gpu.shm_size}}
        )
        mounts.append({"name": "dshm", "mountPath": contract.SHM_MOUNT_PATH})
    if template is not None:
        # The user's own volumes (model weights, config): after ours, so ours never move.
        volumes += template.volumes or []
        mounts += template.volume_mounts or []

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image.reference,
        "imagePullPolicy": spec.image.pull_policy,
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "env": runtime_env(pool),
        "startupProbe": _probe(contract.HEALTHZ_PATH, period=2, failures=150),
        "livenessProbe": _probe(contract.HEALTHZ_PATH, period=10, failures=3),
        "readinessProbe": _probe(contract.READYZ_PATH, period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if spec.env_from:
        container["envFrom"] = list(spec.env_from)
    resources = _resources(pool)
    if resources:
        container["resources"] = resources

    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": spec.worker.graceful_shutdown_seconds
        + TERMINATION_GRACE_MARGIN_SECONDS,
        "serviceAccountName": service_account_name(pool),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": volumes,
    }
    node_selector = {
        **((template.node_selector or {}) if template else {}),
        **((gpu.node_selector or {}) if gpu else {}),
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [*((template.tolerations or []) if template else []), *_gpu_tolerations(pool)]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if gpu is not None and gpu.runtime_class_name:
        pod_spec["runtimeClassName"] = gpu.runtime_class_name
    if template is not None:
        for field, key in (
            ("affinity", "affinity"),
            ("topology_spread_constraints", "topologySpreadConstraints"),
            ("priority_class_name", "priorityClassName"),
            ("image_pull_secrets", "imagePullSecrets"),
        ):
            value = getattr(template, field)
            if value is not None:
                pod_spec[key] = value

    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(pool)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(pool)},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        deployment_spec = {"replicas": replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(pool, {VERSION_LABEL: version_label(pool)}),
        "spec": deployment_spec,
    }
