"""Revocation (issue 20), pure: a pool its connection stops admitting loses what carries the
connection's credentials.

A connection's Secrets are used only by the pools the connection admits. When the decision
turns against a pool that ran (its connection's `allowedPools` or a ClusterTemporalConnection's
`allowedNamespaces` no longer selects it, or the admin's address allowlist no longer allows its
address), the planner lists the children that hand the credentials on or act with them: the
Deployment (its pods mount the Secrets and dial the address), a versioned pool's build
Deployments, the TriggerAuthentication (KEDA reads the Secrets), the ScaledObjects (KEDA dials
the address) and the HPAs (they scale what is gone), the pool's own and its builds'. The
executor deletes them, each by UID, and the reporter tells it in an `AccessRevoked` Event.
What carries nothing (ServiceAccount, Service, PodDisruptionBudget, NetworkPolicy,
ServiceMonitor) stays. Re-admitting the pool is an ordinary reconcile: every child is written
again.

Reasons that say only "cannot tell" hold the pool as it is instead: a connection not in the cache
(deleted, or its CRD's watch restarting) or unreadable, and a Secret missing from the opted-in
cache. Stopping workers on a cache gap would be worse than the credentials they already hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import DEPLOYMENT, HPA, SCALED_OBJECT, TRIGGER_AUTH, Kind
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import Observed, Revocation, controlled_by

# The admission decisions that revoke: someone with the right to say no said it.
REVOKING: frozenset[Reason] = frozenset(
    {Reason.POOL_NOT_ALLOWED, Reason.CONNECTION_NOT_ALLOWED, Reason.ADDRESS_NOT_ALLOWED}
)
# Deleted in this order: what dials with the credentials first, then what holds them.
CARRIERS: tuple[Kind, ...] = (SCALED_OBJECT, HPA, TRIGGER_AUTH, DEPLOYMENT)

CONSEQUENCE = (
    " Until then the pool runs no workers: its Deployment, ScaledObject, TriggerAuthentication "
    "and HPA (what reaches the connection's address with its credentials) are deleted, and "
    "written again once the pool is admitted."
)


def revocations(pool: api.TemporalWorkerPool, observed: Observed) -> list[Revocation]:
    """The pool's children that carry its (no longer admitted) connection's credentials."""
    out = []
    for kind in CARRIERS:
        live = observed.children.get(kind)
        if live is not None and controlled_by(live, pool.uid):
            out.append(_of(kind, live))
        # a versioned pool's per-build Deployments, ScaledObjects and HPAs
        per_build = observed.builds if kind is DEPLOYMENT else observed.build_scalers
        for obj in per_build:
            if obj.get("kind", DEPLOYMENT.kind) == kind.kind and controlled_by(obj, pool.uid):
                out.append(_of(kind, obj))
    return out


def _of(kind: Kind, live: Mapping[str, Any]) -> Revocation:
    meta = live.get("metadata") or {}
    return Revocation(kind, str(meta.get("name") or ""), str(meta.get("uid") or ""))
