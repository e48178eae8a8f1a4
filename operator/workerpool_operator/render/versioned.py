"""The Deployment of one build of a versioned pool (spec.versioning), pure.

It is the pool's ordinary Deployment (render/deployment.py) with three differences: its name is
per build (`<pool>-<build>`, see versioning/build_id.py), the build ID is a label on it, its
selector and its pods (so two builds' Deployments never select each other's pods), and the pods
get the Worker Deployment Version from the env contract. Unversioned pools never come here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from worker_runtime.contract import CONNECTION_FIELDS, env_var
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.names import CREDENTIALS_HASH_ANNOTATION
from workerpool_operator.render.common import Manifest
from workerpool_operator.render.deployment import CONTAINER, TLS_VOLUME, render_deployment
from workerpool_operator.versioning.build_id import (
    BUILD_ID_LABEL,
    build_id,
    deployment_name,
    normalize,
)

# What says where and how a build's workers connect (never part of its build ID): rotating a
# credential or moving the connection rolls every live build in place (`with_connection`).
_CONNECTION_ENV = frozenset(env_var(f) for f in CONNECTION_FIELDS)


def target_build_id(pool: TemporalWorkerPool) -> str:
    """The build the spec asks for: spec.versioning.buildId, else derived from the image and
    the rendered pod template (connection settings and credentials excluded)."""
    versioning = pool.spec.versioning
    assert versioning is not None, "only versioned pools have builds"
    if versioning.build_id:
        return versioning.build_id
    template = render_deployment(pool, replicas=None)["spec"]["template"]
    return build_id(pool.spec.image.reference, template)


def render_build_deployment(
    pool: TemporalWorkerPool, build: str, *, replicas: int | None
) -> Manifest:
    """The Deployment running `build` of a versioned pool."""
    versioning = pool.spec.versioning
    assert versioning is not None, "only versioned pools have builds"
    out = copy.deepcopy(render_deployment(pool, replicas=replicas))
    out["metadata"]["name"] = deployment_name(pool.name, build)
    out["metadata"]["labels"][BUILD_ID_LABEL] = build
    spec = out["spec"]
    spec["selector"]["matchLabels"][BUILD_ID_LABEL] = build
    spec["template"]["metadata"]["labels"][BUILD_ID_LABEL] = build
    container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == CONTAINER)
    container["env"] = [
        *container["env"],
        {
            "name": env_var("worker_deployment_name"),
            "value": versioning.effective_deployment_name(pool.namespace, pool.name),
        },
        {"name": env_var("worker_build_id"), "value": build},
        {"name": env_var("default_versioning_behavior"), "value": versioning.default_behavior},
    ]
    return out


def _connection_parts(template: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template's connection settings: the worker container's connection env and TLS
    mount, the TLS volume and the credentials hash, normalized for comparison."""
    spec = template.get("spec") or {}
    containers = spec.get("containers") or []
    container: Mapping[str, Any] = next((c for c in containers if c.get("name") == CONTAINER), {})
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    parts = {
        "env": [e for e in container.get("env") or [] if e.get("name") in _CONNECTION_ENV],
        "mounts": [m for m in container.get("volumeMounts") or [] if m.get("name") == TLS_VOLUME],
        "volumes": [v for v in spec.get("volumes") or [] if v.get("name") == TLS_VOLUME],
        "hash": annotations.get(CREDENTIALS_HASH_ANNOTATION),
    }
    out = normalize(parts)
    assert isinstance(out, dict)
    return out


def _splice(items: list[Any], keep: Any, wanted: list[Any]) -> list[Any]:
    """`items` with the entries `keep` rejects replaced by `wanted`, in place of the first."""
    out, placed = [], False
    for item in items:
        if keep(item):
            out.append(item)
        elif not placed:
            out += wanted
            placed = True
    return out if placed else [*out, *wanted]


def with_connection(
    live: Mapping[str, Any], desired: Mapping[str, Any], *, replicas: int
) -> Manifest | None:
    """An older build's Deployment with the connection settings and credentials hash of
    `desired` (the pool's Deployment as rendered today), its own template otherwise kept (the
    code it runs is what its build ID names). None when it already has them."""
    live_tpl = (live.get("spec") or {}).get("template") or {}
    want = (desired.get("spec") or {}).get("template") or {}
    containers = (live_tpl.get("spec") or {}).get("containers") or []
    if not any(c.get("name") == CONTAINER for c in containers):
        return None  # not a worker Deployment as the operator writes them: leave it be
    if _connection_parts(live_tpl) == _connection_parts(want):
        return None
    template = copy.deepcopy(dict(live_tpl))
    meta = template.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    wanted_hash = ((want.get("metadata") or {}).get("annotations") or {}).get(
        CREDENTIALS_HASH_ANNOTATION
    )
    annotations.pop(CREDENTIALS_HASH_ANNOTATION, None)
    if wanted_hash:
        annotations[CREDENTIALS_HASH_ANNOTATION] = wanted_hash
    meta["annotations"] = annotations
    want_spec = want.get("spec") or {}
    want_container = next(c for c in want_spec["containers"] if c["name"] == CONTAINER)
    spec = template["spec"]
    for container in spec["containers"]:
        if container.get("name") != CONTAINER:
            continue
        container["env"] = _splice(
            list(container.get("env") or []),
            lambda e: e.get("name") not in _CONNECTION_ENV,
            [e for e in want_container.get("env") or [] if e.get("name") in _CONNECTION_ENV],
        )
        container["volumeMounts"] = _splice(
            list(container.get("volumeMounts") or []),
            lambda m: m.get("name") != TLS_VOLUME,
            [m for m in want_container.get("volumeMounts") or [] if m.get("name") == TLS_VOLUME],
        )
    spec["volumes"] = _splice(
        list(spec.get("volumes") or []),
        lambda v: v.get("name") != TLS_VOLUME,
        [v for v in want_spec.get("volumes") or [] if v.get("name") == TLS_VOLUME],
    )
    live_meta = live.get("metadata") or {}
    live_spec = dict(live.get("spec") or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": live_meta["name"],
            "namespace": live_meta.get("namespace"),
            "labels": dict(live_meta.get("labels") or {}),
            "ownerReferences": list(live_meta.get("ownerReferences") or []),
        },
        "spec": {
            **{k: v for k, v in live_spec.items() if k != "template"},
            "replicas": replicas,
            "template": template,
        },
    }
