"""Plan one pool's reconcile: (pool, capabilities, observed) -> Plan. Pure: no I/O, no clock.

The executor (`execute.py`) only carries a Plan out, then `finish` folds what happened (a write
refused, a foreign object found under the pool's name) into the status. Everything a user
would notice about a reconcile is decided here and table-tested in tests/unit/test_plan.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import ValidationError

from workerpool_operator import trust
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import (
    CHILDREN,
    DEPLOYMENT,
    REPLICAS_OWNERS,
    SERVICE_ACCOUNT,
    Kind,
    child,
)
from workerpool_operator.names import (
    ADOPT_ANNOTATION,
    LEGACY_FINALIZER,
    MANAGERS,
    FieldManagers,
)
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile import revoke
from workerpool_operator.reconcile.diff import up_to_date, with_hash
from workerpool_operator.reconcile.model import (
    ChildWrite,
    Handover,
    Observed,
    Outcome,
    Plan,
    adoptable,
    controlled_by,
    pod_template_extras,
)
from workerpool_operator.reconcile.status import (
    ConditionSpec,
    merge_conditions,
    workload_conditions,
    workload_from_deployment,
)
from workerpool_operator.reconcile.versioned import (
    keeps_unversioned,
    leaving,
    plan_builds,
    routing_conditions,
    scaler_owned,
)
from workerpool_operator.render import Capabilities, desired_children
from workerpool_operator.render.autoscaling import plan_autoscaling
from workerpool_operator.render.common import selector_string
from workerpool_operator.temporal.connections import (
    Resolved,
    Unresolved,
    resolve_connection,
    validation_message,
)
from workerpool_operator.versioning.model import ROLLOUT_CONDITION as ROLLOUT

Engine = Literal["Fixed", "Builtin", "KEDA", "HPA"]


# Ready/Degraded come first so `kubectl get` and GitOps tools find them where they look.
_ORDER = (
    api.CONDITION_READY,
    api.CONDITION_PROGRESSING,
    api.CONDITION_DEGRADED,
    api.CONDITION_STALLED,
)


def engine_of(pool: api.TemporalWorkerPool) -> Engine:
    """Who owns the Deployment's replicas: the spec (Fixed), our scaler, KEDA or an HPA."""
    spec = pool.spec.autoscaling
    if spec is None:
        return "Fixed"
    return spec.engine


def conflict_message(kind: Kind, namespace: str, name: str) -> str:
    consequence = ""
    if kind is SERVICE_ACCOUNT:
        consequence = " The Deployment is not written while it exists (its pods would run as it)."
    elif kind is DEPLOYMENT:
        consequence = " Nothing that scales it (HPA, ScaledObject) or its pods (PDB) is written."
    return (
        f"{kind.kind} {namespace}/{name} exists and is not controlled by this pool; left "
        f"untouched. Delete or rename it, or annotate it {ADOPT_ANNOTATION}=true to hand it "
        f"over.{consequence}"
    )


def _refused_connection(
    resolved: Resolved, caps: Capabilities, observed: Observed
) -> Unresolved | None:
    """A resolved connection the pool still may not use: an address the admin does not allow,
    or Secrets their owner did not opt in (pods and KEDA would get them)."""
    pool = resolved.pool
    problem = trust.address_not_allowed(pool, caps.grants, resolved.source)
    if problem is not None:
        return Unresolved(Reason.ADDRESS_NOT_ALLOWED, problem)
    if resolved.secrets_namespace != pool.namespace:
        # A ClusterTemporalConnection is the cluster admin's: its Secrets are read from the
        # operator's namespace (the scaler and the health check check the label there).
        return None
    problem = trust.secrets_not_opted_in(pool, observed.secrets, pool.namespace)
    if problem is not None:
        return Unresolved(Reason.CREDENTIALS_UNAVAILABLE, problem)
    return None


def credentials_hash(pool: api.TemporalWorkerPool, secrets: Mapping[str, Mapping[str, Any]]) -> str:
    """Hash of the referenced Secrets' data: a rotation changes the pod template and rolls."""
    conn = pool.spec.effective_connection
    names = []
    if conn.tls is not None and conn.tls.secret_name:
        names.append(conn.tls.secret_name)
    if conn.api_key_secret_ref is not None:
        names.append(conn.api_key_secret_ref.name)
    if not names:
        return ""
    material = {n: (secrets.get(n) or {}).get("data") for n in sorted(set(names))}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def service_monitor_condition(pool: api.TemporalWorkerPool, caps: Capabilities) -> ConditionSpec:
    mode = pool.spec.metrics.service_monitor.mode()
    if mode == "Disabled":
        return ConditionSpec(
            api.CONDITION_SERVICE_MONITOR, "False", Reason.DISABLED, "disabled in spec"
        )
    if not caps.service_monitor:
        msg = "monitoring.coreos.com/v1 ServiceMonitor CRD is not installed"
        if mode == "Enabled":
            msg += (
                "; install prometheus-operator, or remove metrics.serviceMonitor.enabled to "
                "create it only when the CRD exists"
            )
        return ConditionSpec(api.CONDITION_SERVICE_MONITOR, "False", Reason.CRD_NOT_INSTALLED, msg)
    return ConditionSpec(api.CONDITION_SERVICE_MONITOR, "True", Reason.CREATED)


def _invalid(pool_body: Mapping[str, Any], message: str) -> Plan:
    plan = Plan(pool=None, invalid=message)
    plan.conditions = {
        api.CONDITION_READY: ConditionSpec(
            api.CONDITION_READY, "False", Reason.INVALID_SPEC, message
        ),
        api.CONDITION_DEGRADED: ConditionSpec(
            api.CONDITION_DEGRADED, "True", Reason.INVALID_SPEC, message
        ),
    }
    return plan


def _unresolved(
    pool: api.TemporalWorkerPool, problem: Unresolved, observed: Observed, drop: int | None
) -> Plan:
    """No usable connection: write nothing, and say why on Ready and Degraded. A connection
    that refuses the pool revokes what carries its credentials (reconcile/revoke.py); when the
    planner only cannot tell (not found, unreadable), running workers keep what they have."""
    out = Plan(pool=pool, drop_finalizer=drop)
    ready, degraded = api.CONDITION_READY, api.CONDITION_DEGRADED
    message = problem.message
    if problem.reason in revoke.REVOKING:
        message += revoke.CONSEQUENCE
        out.revoke = revoke.revocations(pool, observed)
    out.conditions[ready] = ConditionSpec(ready, "False", problem.reason, message)
    out.conditions[degraded] = ConditionSpec(degraded, "True", problem.reason, message)
    if problem.reason in revoke.REVOKING:
        out.fields = {"replicas": 0, "readyReplicas": 0}
        return out
    deployment = observed.children.get(DEPLOYMENT)
    if deployment is not None and controlled_by(deployment, pool.uid):
        workload = workload_from_deployment(deployment)
        out.fields = {"replicas": workload.replicas, "readyReplicas": workload.ready}
    return out


def _handover(
    pool: api.TemporalWorkerPool, live: Mapping[str, Any] | None, managers: FieldManagers
) -> Handover | None:
    engine = engine_of(pool)
    if engine == "Fixed" or live is None:
        return None
    owners = list(live.get(REPLICAS_OWNERS) or [])
    ours = f"{managers.operator}/Apply"
    if ours not in owners or any(o != ours for o in owners):
        return None  # someone else already holds the field: dropping ours removes nothing
    current = (live.get("spec") or {}).get("replicas")
    replicas = 1 if current is None else int(current)
    return Handover(replicas, managers.scaler if engine == "Builtin" else managers.handover)


def _legacy_finalizer(pool_body: Mapping[str, Any]) -> int | None:
    finalizers = list((pool_body.get("metadata") or {}).get("finalizers") or [])
    return finalizers.index(LEGACY_FINALIZER) if LEGACY_FINALIZER in finalizers else None


def plan(
    pool_body: Mapping[str, Any],
    caps: Capabilities,
    observed: Observed,
    *,
    namespace_terminating: bool = False,
    managers: FieldManagers = MANAGERS,
) -> Plan:
    """Everything one reconcile of this pool should do, given what the caches hold."""
    meta = pool_body.get("metadata") or {}
    drop = _legacy_finalizer(pool_body)
    if meta.get("deletionTimestamp") or namespace_terminating:
        # Children go with the pool through ownerReferences; never hold a deletion up.
        return Plan(pool=None, act=False, drop_finalizer=drop)
    try:
        pool = api.TemporalWorkerPool.from_body(pool_body)
    except ValidationError as err:
        out = _invalid(pool_body, validation_message(err))
        out.drop_finalizer = drop
        return out
    resolved = resolve_connection(
        pool,
        connection=observed.connection,
        namespace_labels=observed.namespace_labels,
        credentials_namespace=observed.credentials_namespace,
    )
    if isinstance(resolved, Unresolved):
        return _unresolved(pool, resolved, observed, drop)
    refused = _refused_connection(resolved, caps, observed)
    if refused is not None:
        return _unresolved(pool, refused, observed, drop)
    pool = resolved.pool
    try:
        manifests = desired_children(pool, caps)
        autoscaling = plan_autoscaling(pool, keda_installed=caps.keda)
        manifests += autoscaling.children
    except Exception as exc:  # a spec the schema let through but the renderer cannot use
        out = _invalid(pool_body, f"spec cannot be rendered: {type(exc).__name__}: {exc}")
        out.drop_finalizer = drop
        return out

    out = Plan(pool=pool, drop_finalizer=drop)
    digest = credentials_hash(pool, observed.secrets)
    wanted: set[Kind] = set()
    versioned = pool.spec.versioning is not None
    # spec.versioning removed: the unversioned Deployment is rendered as for any pool, while
    # the builds drain (versioned.leaving).
    leaving_to = None if versioned else leaving(pool_body, observed.builds)
    if versioned:
        # One Deployment per build instead of the pool's own (see _plan_builds).
        manifests = [m for m in manifests if child(m["apiVersion"], m["kind"]) is not DEPLOYMENT]
        if keeps_unversioned(pool_body, observed):
            wanted.add(DEPLOYMENT)
    for manifest in manifests:
        kind = child(manifest["apiVersion"], manifest["kind"])
        wanted.add(kind)
        if kind is DEPLOYMENT:
            manifest = pod_template_extras(manifest, pool, digest)
        desired = with_hash(manifest)
        live = observed.children.get(kind)
        if live is not None and not controlled_by(live, pool.uid):
            if adoptable(live):
                out.writes.append(ChildWrite(kind, desired, known=True))
            else:
                out.conflicts[kind] = conflict_message(kind, pool.namespace, pool.name)
            continue
        if not up_to_date(desired, live):
            out.writes.append(ChildWrite(kind, desired, known=live is not None))
    # Nothing points at an object the pool does not control: a foreign ServiceAccount keeps the
    # Deployment from being written, a foreign Deployment keeps what scales it from being written.
    blocked = trust.blocked_by_conflicts(out.conflicts)
    out.writes = [w for w in out.writes if w.kind not in blocked]
    for kind in CHILDREN:
        live = observed.children.get(kind)
        prunable = "delete" in kind.verbs  # the always-present children are never pruned
        if kind not in wanted and live is not None and controlled_by(live, pool.uid) and prunable:
            out.prune.append((kind, str(live["metadata"].get("uid") or "")))

    deployment: Mapping[str, Any] | None = observed.children.get(DEPLOYMENT)
    if deployment is not None and not controlled_by(deployment, pool.uid):
        deployment = None
    engine = engine_of(pool)
    if versioned:
        deployment = plan_builds(out, pool, pool_body, observed, digest, keda_installed=caps.keda)
        if deployment is not None and scaler_owned(pool):
            # Builtin -> KEDA/HPA: the target build's Deployment is applied without replicas
            # from now on; its current count is handed over first, as for a pool's own.
            handover = _handover(pool, deployment, managers)
            if handover is not None:
                name = str(deployment["metadata"]["name"])
                out.handover = replace(handover, deployment=name)
    else:
        if leaving_to is not None:
            plan_builds(out, pool, pool_body, observed, digest)
        out.handover = _handover(pool, deployment, managers)
    workload = workload_from_deployment(deployment)
    for cond in workload_conditions(workload, autoscaled=engine != "Fixed"):
        out.conditions[cond.type] = cond
    if versioned or leaving_to is not None:
        routing_conditions(out)
    sm = service_monitor_condition(pool, caps)
    out.conditions[sm.type] = sm
    for cond in autoscaling.conditions:
        out.conditions[cond.type] = cond
    # update: a versioned pool whose Temporal could not be read has kept its routing fields
    out.fields.update({
        "replicas": workload.replicas,
        "readyReplicas": workload.ready,
        "selector": selector_string(pool),
        # what `kubectl get -o wide` shows, also for pools that take it from connectionRef
        "connection": pool.spec.effective_connection.address,
        # which runtime the workers run: an unpinned tag follows the operator's version
        "runtimeImage": pool.spec.image.reference,
    })  # fmt: skip
    if engine != "Builtin":  # the Builtin scaler owns desiredReplicas with its own manager
        out.fields["desiredReplicas"] = workload.desired
    if out.versioned is not None:
        # An absent field (nothing current, no ramp) is left out: under server-side apply
        # that removes what an earlier pass set, where a null would be refused.
        out.fields.update({k: v for k, v in out.versioned.status.items() if v is not None})
    return out


def finish(
    p: Plan,
    outcome: Outcome,
    live_status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: str,
) -> dict[str, Any]:
    """The status to apply: the plan's conditions, overridden by conflicts and failures."""
    conditions = dict(p.conditions)
    if outcome.routing_refused:
        refused = ConditionSpec(ROLLOUT, "False", Reason.PROMOTION_REFUSED, outcome.routing_refused)
        conditions[ROLLOUT] = refused
        conditions[api.CONDITION_READY] = replace(refused, type=api.CONDITION_READY)
    conflicts = {**p.conflicts, **outcome.conflicts}
    problem: tuple[Reason, str] | None = None
    if outcome.failures:
        problem = (Reason.APPLY_FAILED, "; ".join(outcome.failures.values()))
    elif conflicts:
        problem = (Reason.NAME_CONFLICT, "; ".join(conflicts.values()))
    if problem is not None:
        reason, message = problem
        conditions[api.CONDITION_READY] = ConditionSpec(
            api.CONDITION_READY, "False", reason, message
        )
        conditions[api.CONDITION_DEGRADED] = ConditionSpec(
            api.CONDITION_DEGRADED, "True", reason, message
        )
    degraded = conditions.get(api.CONDITION_DEGRADED)
    if degraded is not None:  # kstatus's name for it (see CONDITION_STALLED)
        conditions[api.CONDITION_STALLED] = replace(degraded, type=api.CONDITION_STALLED)
    ordered = [conditions[t] for t in _ORDER if t in conditions]
    ordered += [c for t, c in conditions.items() if t not in _ORDER]
    fields = dict(p.fields)
    if outcome.routing_refused and p.versioned is not None:
        # Temporal kept its routing: the status shows it as read, not as the calls meant it.
        for key, value in p.versioned.status_if_refused.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
    return {
        "observedGeneration": generation,
        **fields,
        "conditions": merge_conditions(
            (live_status or {}).get("conditions") or [], ordered, generation=generation, now=now
        ),
    }
