"""Carry one pool's Plan out: hand spec.replicas over, server-side apply the children that
differ (never taking over a name someone else holds), prune, and say what happened (`Outcome`).
The decisions are all in `plan.py`; this module only does the writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from workerpool_operator import metrics, trust
from workerpool_operator.kinds import DEPLOYMENT, PDB, POOL, SCALED_OBJECT, TRIGGER_AUTH
from workerpool_operator.kube.client import Kube
from workerpool_operator.kube.errors import ApiError, ServerError, TooManyRequests, Unauthorized
from workerpool_operator.names import LEGACY_FINALIZER
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import ChildWrite, Outcome, Plan, adoptable, controlled_by
from workerpool_operator.reconcile.plan import conflict_message

log = logging.getLogger(__name__)

# A child write the API server keeps answering with 5xx is reported (ApplyFailed) from this
# many consecutive failed reconciles on (still retried): some 5xx are not transient, e.g. a
# quantity the CRD's pattern admits but the Deployment decoder refuses ("quantities must match
# the regular expression"), and a pool must never sit silently without a status.
SERVER_ERRORS_BEFORE_REPORT = 3


class Executor:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def drop_finalizer(self, ns: str, name: str, index: int) -> None:
        """Pools made before 0.2 carry kopf's finalizer; without timers nothing needs it."""
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": LEGACY_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        with contextlib.suppress(ApiError):  # 422: the list changed meanwhile; next event
            await self.kube.patch(
                POOL, ns, name, ops, content_type="application/json-patch+json", verb="finalizer"
            )

    async def execute(self, ns: str, name: str, p: Plan, *, attempt: int = 1) -> Outcome:
        """The plan's writes and prunes; `attempt` counts this pool's failed reconciles in a
        row (plus this one), so a 5xx that persists is reported instead of retried silently.

        Throttling and credentials trouble raise (the whole pool is retried); a refusal of the
        object itself (invalid, forbidden by quota or policy) becomes the pool's ApplyFailed.
        """
        outcome = Outcome()
        if p.pool is None:  # InvalidSpec: nothing to write, only the status to report
            return outcome
        pool = p.pool
        if p.handover is not None:
            h = p.handover
            target = h.deployment or name
            await self.kube.apply_replicas(ns, target, h.replicas, h.manager)
            log.info(
                "handed spec.replicas over",
                extra={"pool": f"{ns}/{name}", "deployment": target, "replicas": h.replicas,
                       "to": h.manager},
            )  # fmt: skip

        # Every child the caches do not hold is looked up first, all at once: a name someone
        # else holds (an object the label-selected caches do not see) is a conflict. Knowing
        # every conflict before the first write makes each phase below one round trip of
        # writes instead of a lookup and then a write (a new pool, three phases: four round
        # trips instead of six).
        # A versioned pool's build Deployments carry their own names.
        unknown = [(w, str(w.manifest["metadata"]["name"])) for w in p.writes if not w.known]
        lives = await asyncio.gather(
            *(self.kube.get(w.kind, ns, named, cached=True) for w, named in unknown)
        )
        held: set[tuple[str, str]] = set()  # (kind, name) of objects someone else holds
        for (w, named), live in zip(unknown, lives, strict=True):
            if live is not None and not controlled_by(live, pool.uid) and not adoptable(live):
                outcome.conflicts[w.kind] = conflict_message(w.kind, ns, named)
                held.add((w.kind.kind, named))

        async def write(w: ChildWrite) -> None:
            if (w.kind.kind, str(w.manifest["metadata"]["name"])) in held:
                return
            try:
                await self.kube.apply(w.manifest)
                if not w.known:
                    outcome.created += 1
            except (Unauthorized, TooManyRequests):
                raise
            except ApiError as exc:
                sentence = f"{w.kind.kind} {ns}/{name}: {exc.sentence()}"
                if isinstance(exc, ServerError):
                    if attempt < SERVER_ERRORS_BEFORE_REPORT:
                        raise
                    sentence += f" (HTTP {exc.status} {attempt} times in a row; still retrying)"
                outcome.failures[w.kind] = sentence
                metrics.ERRORS.labels(Reason.APPLY_FAILED).inc()

        # In phases: a conflict blocks what would point at it (trust.blocked_by_conflicts), and
        # what a child points at exists before it: the ServiceAccount before the Deployment
        # (its pods run as it), the Deployment before what scales it. KEDA resolves a
        # ScaledObject's TriggerAuthentication when it first sees it: the ScaledObject goes
        # last, and not at all while its TriggerAuthentication is refused. The PDB names no
        # object, only the pool's pod labels: it goes first, so the pods are covered from the
        # moment they exist, and a new pool's writes take three round trips, not four.
        targets = trust.TARGETS_DEPLOYMENT - {PDB}
        phases = [
            [w for w in p.writes if w.kind is not DEPLOYMENT and w.kind not in targets],
            [w for w in p.writes if w.kind is DEPLOYMENT],
            [w for w in p.writes if w.kind in targets and w.kind is not SCALED_OBJECT],
            [w for w in p.writes if w.kind is SCALED_OBJECT],
        ]
        for phase in phases:
            blocked = trust.blocked_by_conflicts({**p.conflicts, **outcome.conflicts})
            if any(w.kind is SCALED_OBJECT for w in phase) and (
                TRIGGER_AUTH in outcome.failures or TRIGGER_AUTH in outcome.conflicts
            ):
                continue
            await asyncio.gather(*(write(w) for w in phase if w.kind not in blocked))
        for kind, uid in p.prune:
            await self.kube.delete(kind, ns, name, uid=uid)
        for d in p.drop:  # a versioned pool's per-build scalers no longer wanted
            await self.kube.delete(d.kind, ns, d.name, uid=d.uid or None)
        for r in p.revoke:  # the connection no longer admits the pool (reconcile/revoke.py)
            if await self.kube.delete(r.kind, ns, r.name, uid=r.uid or None):
                outcome.revoked.append(f"{r.kind.kind} {r.name}")
        if outcome.revoked:
            log.warning(
                "revoked: the connection no longer admits the pool",
                extra={"pool": f"{ns}/{name}", "deleted": outcome.revoked},
            )
        return outcome

    async def settle_builds(self, ns: str, p: Plan, manager: str) -> list[str]:
        """A versioned pool's other builds, after routing: their replicas (under `manager`,
        never the operator's own, which owns their templates) and the retired Deployments
        (deleted with a UID precondition, so a re-created namesake survives). Returns the
        Deployments deleted."""
        if p.versioned is None:
            return []
        for deployment, replicas in p.versioned.scale.items():
            await self.kube.apply_replicas(ns, deployment, replicas, manager)
        retired = []
        for deployment, uid in p.retire:
            if await self.kube.delete(DEPLOYMENT, ns, deployment, uid=uid or None):
                retired.append(deployment)
        return retired
