"""kopf handlers: thin adapters from watch events to `Reconciler.reconcile`.

Level-triggered: pool create/update/resume, a periodic resync timer, and any event on a child
(drift repair) all converge through the same function, which writes nothing when nothing changed.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import kopf

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kube import Kube
from workerpool_operator.reconciler import Reconciler
from workerpool_operator.render.common import MANAGED_BY
from workerpool_operator.scaling.autoscaler import run_autoscaler
from workerpool_operator.scaling.backlog import BacklogPoller

log = logging.getLogger(__name__)

RESYNC_SECONDS = float(os.environ.get("WORKERPOOL_RESYNC_SECONDS", "60"))
CHILD_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY}
POOL = (api.GROUP, api.VERSION, api.PLURAL)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account, else $KUBECONFIG as set when the operator starts."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Annotation-only bookkeeping (our status schema is typed) and warnings-only kopf Events."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{api.GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.execution.max_workers = int(os.environ.get("WORKERPOOL_WORKERS", "8"))
    if "kube" not in memo:
        memo.kube = Kube()
    memo.reconciler = Reconciler(memo.kube)
    if "poller" not in memo:
        memo.poller = BacklogPoller()  # one per process: coalesces polls across pools


@kopf.index(*POOL)
def pools(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str | None, str], Any]:
    """Pool bodies by (namespace, name), so child events can find their owner without a GET."""
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.on.resume(*POOL)
@kopf.on.create(*POOL)
@kopf.on.update(*POOL)
def reconcile_pool(body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.reconciler.reconcile(body)


@kopf.timer(*POOL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync_pool(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """Safety net for missed events; costs reads only when everything is current."""
    metrics.POOLS.set(len(kwargs["pools"]))
    memo.reconciler.reconcile(body)


@kopf.on.delete(*POOL, optional=True)
def forget_pool(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Children go with the pool through ownerReferences; only local state is dropped."""
    memo.reconciler.forget(str(namespace), name)


def builtin_engine(spec: kopf.Spec, **_: Any) -> bool:
    """Pools whose replicas the operator's own scaler owns."""
    autoscaling = spec.get("autoscaling")
    return autoscaling is not None and autoscaling.get("engine", "Builtin") == "Builtin"


@kopf.daemon(*POOL, when=builtin_engine, cancellation_timeout=10)
async def autoscale(body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """The Builtin engine: poll backlog, decide, write replicas (stops when the engine changes)."""
    await run_autoscaler(memo.kube, lambda: body, memo.poller, stopped)


def _owner(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/"):
            return str(ref.get("name"))
    return None


def child_event(body: kopf.Body, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    """A child changed or vanished: reconcile its pool (restores drift, refreshes status)."""
    pools: kopf.Index[Any, Any] = kwargs["pools"]
    owner = _owner(body)
    if owner is None:
        return
    for pool_body in pools.get((namespace, owner), []):
        memo.reconciler.reconcile(pool_body)


for _group, _version, _plural in (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("monitoring.coreos.com", "v1", "servicemonitors"),
    ("keda.sh", "v1alpha1", "scaledobjects"),
    ("keda.sh", "v1alpha1", "triggerauthentications"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
):
    kopf.on.event(_group, _version, _plural, labels=CHILD_LABELS, id=f"child-{_plural}")(
        child_event
    )
