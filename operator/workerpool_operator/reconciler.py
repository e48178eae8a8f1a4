"""Reconcile one pool: render children, apply what changed, prune what is gone, report status.

Synchronous on purpose: kopf runs sync handlers in its thread pool, and the kubernetes client is
blocking. A per-pool lock keeps the timer, pool events and child events from racing each other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kube import Kube
from workerpool_operator.render import Capabilities, desired_children
from workerpool_operator.render.autoscaling import OPTIONAL_KINDS, plan_autoscaling
from workerpool_operator.render.common import selector_string
from workerpool_operator.render.observability import SERVICE_MONITOR_API
from workerpool_operator.status import (
    ConditionSpec,
    merge_conditions,
    now_rfc3339,
    workload_conditions,
    workload_from_deployment,
)

log = logging.getLogger(__name__)

KEDA_API = "keda.sh/v1alpha1"
PRUNABLE: list[tuple[str, str]] = [(SERVICE_MONITOR_API, "ServiceMonitor"), *OPTIONAL_KINDS]


def validation_message(err: ValidationError) -> str:
    """One line per problem, naming the spec field (camelCase path) and what is wrong."""
    parts = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{path}: {e['msg']}")
    return "; ".join(parts)


def service_monitor_condition(pool: api.TemporalWorkerPool, caps: Capabilities) -> ConditionSpec:
    mode = pool.spec.metrics.service_monitor.mode()
    if mode == "Disabled":
        return ConditionSpec(api.CONDITION_SERVICE_MONITOR, "False", "Disabled", "disabled in spec")
    if not caps.service_monitor:
        msg = "monitoring.coreos.com/v1 ServiceMonitor CRD is not installed"
        if mode == "Enabled":
            msg += "; install prometheus-operator or set metrics.serviceMonitor.enabled: Auto"
        return ConditionSpec(api.CONDITION_SERVICE_MONITOR, "False", "CRDNotInstalled", msg)
    return ConditionSpec(api.CONDITION_SERVICE_MONITOR, "True", "Created")


@dataclass
class _Slot:
    """Per-pool coalescing state: one reconcile runs, later requests fold into one rerun."""

    running: bool = False
    pending: bool = False


@dataclass
class Reconciler:
    kube: Kube
    _slots: dict[tuple[str, str], _Slot] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._slots.pop((namespace, name), None)

    def reconcile(self, body: Mapping[str, Any]) -> int:
        """Converge one pool; returns the number of writes it made (0 when all was current).

        Events come in bursts (a new pool's children each fire one), and the timer and pool
        handlers may overlap: while one reconcile of a pool runs, further requests only mark it
        dirty and return, and the running one goes round once more with a freshly read pool.
        """
        meta = body.get("metadata", {})
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if meta.get("deletionTimestamp"):
            return 0
        with self._guard:
            slot = self._slots.setdefault(key, _Slot())
            if slot.running:
                slot.pending = True
                metrics.RECONCILES.labels("coalesced").inc()
                return 0
            slot.running = True
        before = self.kube.writes
        current: Mapping[str, Any] | None = body
        try:
            while current is not None:
                self._reconcile_once(current)
                with self._guard:
                    rerun, slot.pending = slot.pending, False
                # Bodies left behind may carry a status older than what we just wrote: reread.
                current = self.kube.get(api.API_VERSION, api.KIND, *key) if rerun else None
        finally:
            with self._guard:
                slot.running = False
                slot.pending = False
        return self.kube.writes - before

    def _reconcile_once(self, body: Mapping[str, Any]) -> None:
        start = time.perf_counter()
        try:
            self._reconcile(body)
            metrics.RECONCILES.labels("success").inc()
        except Exception:
            metrics.RECONCILES.labels("error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - start)

    def _status(
        self,
        body: Mapping[str, Any],
        fields: dict[str, Any],
        conditions: list[ConditionSpec],
    ) -> None:
        meta = body["metadata"]
        live = dict(body.get("status") or {})
        generation = int(meta.get("generation") or 0)
        status = {
            "observedGeneration": generation,
            **fields,
            "conditions": merge_conditions(
                live.get("conditions") or [], conditions, generation=generation, now=now_rfc3339()
            ),
        }
        # Compare against the live status with our own timestamps, so an unchanged pool is not
        # rewritten just because the clock moved.
        self.kube.apply_status(
            api.API_VERSION, api.KIND, meta["namespace"], meta["name"], status, live
        )

    def _reconcile(self, body: Mapping[str, Any]) -> None:
        try:
            pool = api.TemporalWorkerPool.from_body(body)
        except ValidationError as err:
            message = validation_message(err)
            metrics.ERRORS.labels("InvalidSpec").inc()
            previous = {c.get("type"): c for c in (body.get("status") or {}).get("conditions", [])}
            if previous.get(api.CONDITION_READY, {}).get("reason") != "InvalidSpec":
                self.kube.event(
                    {"apiVersion": api.API_VERSION, "kind": api.KIND, **body},
                    reason="InvalidSpec",
                    message=message,
                    type_="Warning",
                )
            self._status(
                body,
                {},
                [
                    ConditionSpec(api.CONDITION_READY, "False", "InvalidSpec", message),
                    ConditionSpec(api.CONDITION_DEGRADED, "True", "InvalidSpec", message),
                ],
            )
            return

        caps = Capabilities(
            service_monitor=self.kube.served(SERVICE_MONITOR_API, "ServiceMonitor"),
            keda=self.kube.served(KEDA_API, "ScaledObject"),
        )
        children = desired_children(pool, caps)
        plan = plan_autoscaling(pool, keda_installed=caps.keda)
        children += plan.children

        failure: str | None = None
        for child in children:
            try:
                self.kube.apply(child)
            except ApiException as exc:
                failure = f"{child['kind']} {pool.name}: {exc.status} {exc.reason}: {exc.body}"
                metrics.ERRORS.labels("ApplyFailed").inc()
                log.warning("apply failed: %s", failure)

        wanted = {(c["apiVersion"], c["kind"]) for c in children}
        for api_version, kind in PRUNABLE:
            if (api_version, kind) in wanted or not self.kube.served(api_version, kind):
                continue
            live = self.kube.get(api_version, kind, pool.namespace, pool.name)
            owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
            if any(o.get("uid") == pool.uid for o in owners):
                self.kube.delete(api_version, kind, pool.namespace, pool.name)

        deployment = self.kube.get("apps/v1", "Deployment", pool.namespace, pool.name)
        workload = workload_from_deployment(deployment)
        autoscaled = pool.spec.autoscaling is not None
        conditions = workload_conditions(workload, autoscaled=autoscaled)
        if failure is not None:
            conditions[0] = ConditionSpec(api.CONDITION_READY, "False", "ApplyFailed", failure)
            conditions[2] = ConditionSpec(api.CONDITION_DEGRADED, "True", "ApplyFailed", failure)
        conditions.append(service_monitor_condition(pool, caps))
        conditions += plan.conditions

        fields: dict[str, Any] = {
            "replicas": workload.replicas,
            "readyReplicas": workload.ready,
            "selector": selector_string(pool),
        }
        builtin = (
            autoscaled
            and pool.spec.autoscaling is not None
            and (pool.spec.autoscaling.engine == "Builtin")
        )
        if not builtin:  # the Builtin scaler owns desiredReplicas with its own field manager
            fields["desiredReplicas"] = workload.desired
        self._status(body, fields, conditions)
