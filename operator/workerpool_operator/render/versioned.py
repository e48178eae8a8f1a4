"""The Deployment of one build of a versioned pool (spec.versioning), pure.

It is the pool's ordinary Deployment (render/deployment.py) with three differences: its name is
per build (`<pool>-<build>`, see versioning/build_id.py), the build ID is a label on it, its
selector and its pods (so two builds' Deployments never select each other's pods), and the pods
get the Worker Deployment Version from the env contract. Unversioned pools never come here.
"""

from __future__ import annotations

import copy

from worker_runtime.contract import env_var
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.common import Manifest
from workerpool_operator.render.deployment import CONTAINER, render_deployment
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL, build_id, deployment_name


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
