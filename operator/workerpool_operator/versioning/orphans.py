"""What a deleted versioned pool left in Temporal, and how to remove it safely (pure).

No finalizer holds a pool (the 0.2 promise): deleting one takes its Deployments away through
ownerReferences, but its Worker Deployment and versions stay in Temporal, where they count
against the server's per-namespace limits. The leader's janitor (`versioning/janitor.py`) lists
each connection's Worker Deployments now and then; this module decides, from what it read, which
of them are this operator's orphans and which calls remove one. It never removes a version that
may still have work: open workflows (the exact visibility count) or pollers keep it, and routing
is only unset while the version it points at is idle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workerpool_operator.versioning.model import (
    Call,
    DeleteVersion,
    DeploymentState,
    SetCurrent,
    SetRamping,
)


@dataclass(frozen=True)
class Scope:
    """Which Worker Deployments this operator may call its own."""

    identity: str  # the manager identity it claims (`workerpool-operator@<cluster>`)
    protected: frozenset[str]  # deployment names the pools in the cache use or may use
    namespaces: frozenset[str] | None = None  # watched namespaces; None: every namespace


def pool_deployment_names(pools: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Every deployment name a pool in the cache uses or may use: the default `<ns>/<pool>` and
    its spec.versioning.deploymentName, read from the raw body so that an unversioned pool (the
    way back from versioning is manual) or one that no longer validates keeps its own."""
    out = set()
    for body in pools:
        meta = body.get("metadata") or {}
        out.add(f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")
        versioning = (body.get("spec") or {}).get("versioning")
        if isinstance(versioning, Mapping) and versioning.get("deploymentName"):
            out.add(str(versioning["deploymentName"]))
    return frozenset(out)


def candidates(names: Iterable[str], scope: Scope) -> list[str]:
    """Listed Worker Deployments that may be orphans: no pool in the cache uses the name, and an
    operator that watches only some namespaces sees only names under one of them (a deployment
    named otherwise may belong to a pool it cannot see, so it is never touched)."""
    out = []
    for name in names:
        if name in scope.protected:
            continue
        if scope.namespaces is not None:
            namespace, slash, _ = name.partition("/")
            if not slash or namespace not in scope.namespaces:
                continue
        out.append(name)
    return sorted(set(out))


@dataclass(frozen=True)
class VersionCheck:
    """What could still need one version: its open workflows and its pollers (None: unread)."""

    open_workflows: int | None
    pollers: bool | None

    @property
    def idle(self) -> bool:
        return self.open_workflows == 0 and self.pollers is False

    def why_kept(self) -> str:
        if self.open_workflows is None:
            return "its open workflows could not be counted"
        if self.open_workflows:
            return f"{self.open_workflows} open workflow(s)"
        if self.pollers is None:
            return "its pollers could not be read"
        return "workers still poll it"


@dataclass(frozen=True)
class Orphan:
    """One candidate as Temporal has it: DescribeWorkerDeployment and a check per version."""

    deployment: str
    state: DeploymentState
    checks: Mapping[str, VersionCheck]


@dataclass(frozen=True)
class Removal:
    """The calls that remove what is idle of one orphan, in order, and what stays (and why)."""

    deployment: str
    calls: tuple[Call, ...]
    delete_deployment: bool  # DeleteWorkerDeployment once every call above went through
    kept: tuple[tuple[str, str], ...] = ()  # (build, why)
    waits_for_work: bool = False  # a kept version has open workflows (hours, maybe days)


def plan_removal(orphan: Orphan, identity: str) -> Removal | None:
    """The removal of an orphan, or None when it is not this operator's to remove: gone already,
    or its routing is managed by another identity or by nobody (Manual pools never claim it, so
    they are left to their owner).

    Temporal refuses to delete the current or ramping version, so routing is unset first (the
    ramp cleared, the current version set to unversioned), each only when the version it points
    at is idle; then every idle version is deleted, and the deployment once no version is left.
    """
    t = orphan.state
    if not t.exists or t.manager_identity != identity:
        return None
    idle = {b for b, check in orphan.checks.items() if check.idle}
    calls: list[Call] = []
    routed = {b for b in (t.current_build, t.ramping_build) if b is not None}
    if t.ramping_build is not None and t.ramping_build in idle:
        calls.append(SetRamping(None, 0.0))
        routed.discard(t.ramping_build)
    if t.current_build is not None and t.current_build in idle:
        calls.append(SetCurrent(None))
        routed.discard(t.current_build)
    kept: list[tuple[str, str]] = []
    busy = False
    for v in t.versions:
        check = orphan.checks.get(v.build_id, VersionCheck(None, None))
        if v.build_id in idle and v.build_id not in routed:
            calls.append(DeleteVersion(v.build_id))
        else:
            kept.append((v.build_id, check.why_kept()))
            busy |= bool(check.open_workflows)
    return Removal(
        deployment=orphan.deployment,
        calls=tuple(calls),
        delete_deployment=not kept,
        kept=tuple(kept),
        waits_for_work=busy,
    )
