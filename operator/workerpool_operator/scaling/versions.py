"""The Builtin engine's per-version decisions for a versioned pool, pure (issue 19).

Each live version of the pool has its own backlog (one `DescribeWorkerDeploymentVersion` with
task-queue stats per version, `observe.py`), its own `decide` with its own history (so its own
stabilization windows and zero guard), and its own busy-worker floor (slot use from the workers'
heartbeats):

- New work (the Current and the Ramping version): their backlogs are summed into the
  backlog-derived total T; the Ramping version decides on its share of it,
  ceil(T x ramp% / 100), the Current version on the rest, ceil(T x (100 - ramp%) / 100). So the
  Ramping version never gets 0 while it has a ramp and there is backlog, and the two together
  are within one replica each of their share of ceil(T / target). `minReplicas` and
  `maxReplicas` are split by the same shares so that the parts add up to them (largest
  remainder; each version's max at least 1, so only a `maxReplicas` below the number of
  new-work versions is exceeded, by the one worker each needs to keep its version polling).
- Draining versions decide on their own backlog while their exact open pinned count (the one
  the routing pass reads and writes to status.versions) is above 0 or unknown, and get 0 the
  moment it is 0.
- Drained and Inactive versions that are not the target get 0 (no call is made for them);
  the target before it serves new work, and a version that has not registered, get no decision
  (the routing pass sizes them from status.desiredReplicas).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from workerpool_operator.scaling.decide import Backlog, Decision, History, Observation, Policy
from workerpool_operator.scaling.decide import decide as decide_one

NEW_WORK = ("Current", "Ramping")
DESCRIBED = (*NEW_WORK, "Draining")  # the versions the scaler reads a backlog for


@dataclass(frozen=True)
class VersionInput:
    """One build as the scaler sees it in one step."""

    build_id: str
    state: str  # status.versions[].state (VersionState)
    current_replicas: int  # the build's Deployment spec.replicas
    ready_replicas: int | None = None
    ramp_percentage: float | None = None  # while Ramping
    open_pinned: int | None = None  # exact count; None: unknown (treated as busy)
    backlog: Backlog | None = None  # this version's queues; None with `error`, or not described
    error: str | None = None
    busy_workers: int | None = None  # workers of this build with a task slot in use
    target: bool = False  # the build the spec asks for (the routing pass keeps it up)


@dataclass(frozen=True)
class VersionDecision:
    build_id: str
    replicas: int
    message: str
    history: History
    backlog: int | None = None  # the count the decision used (a share for new work)
    share: float | None = None  # the version's share of new work (0-1); None: not new work
    direction: str = "none"


def described(versions: Sequence[VersionInput]) -> list[str]:
    """Build IDs to read a backlog for: Current, Ramping and Draining (with pinned work)."""
    return [v.build_id for v in versions if _reads(v)]


def _reads(v: VersionInput) -> bool:
    return v.state in NEW_WORK or (v.state == "Draining" and v.open_pinned != 0)


def shares(versions: Sequence[VersionInput]) -> dict[str, float]:
    """Each new-work version's share of new work: the ramp for the Ramping one, the rest for the
    Current one (none for it while ramping from unversioned workers, which get the rest)."""
    out: dict[str, float] = {}
    ramped = 0.0
    for v in versions:
        if v.state == "Ramping":
            pct = min(max(v.ramp_percentage or 0.0, 0.0), 100.0)
            out[v.build_id] = pct / 100.0
            ramped += pct / 100.0
    for v in versions:
        if v.state == "Current":
            out[v.build_id] = max(0.0, 1.0 - ramped)
    return out


def decide_versions(
    versions: Sequence[VersionInput],
    histories: Mapping[str, History],
    policy: Policy,
    now: float,
) -> list[VersionDecision]:
    """One decision per version that gets one (see the module docstring), in input order."""
    share = shares(versions)
    new_work = [v for v in versions if v.build_id in share]
    failed = next((v.error or "no backlog reading" for v in new_work if v.backlog is None), None)
    total = _total([v.backlog for v in new_work if v.backlog is not None])
    least = split(policy.min_replicas, share, least=0)
    most = split(policy.max_replicas, share, least=1)
    out: list[VersionDecision] = []
    for v in versions:
        history = histories.get(v.build_id, History())
        if v.build_id in share:
            s = share[v.build_id]
            own = replace(policy, min_replicas=least[v.build_id], max_replicas=most[v.build_id])
            backlog = None if failed is not None else _share(total, s, v)
            d = decide_one(_observation(v, backlog, failed), history, own, now)
            why = f"{v.state.lower()} {round(s * 100, 2):g}% of new work"
            out.append(_version(v, d, why, s))
        elif v.state == "Draining" and v.open_pinned != 0:
            own = replace(policy, min_replicas=0)
            backlog = None if v.backlog is None else _pinned(v.backlog, v)
            d = decide_one(_observation(v, backlog, v.error), history, own, now)
            pinned = "unknown" if v.open_pinned is None else str(v.open_pinned)
            out.append(_version(v, d, f"draining, {pinned} pinned workflows open", None))
        elif v.state in ("Draining", "Drained", "Inactive") and not v.target:
            why = "its last pinned workflow ended" if v.state != "Inactive" else "it gets no work"
            out.append(
                VersionDecision(
                    v.build_id,
                    0,
                    f"build {v.build_id}: 0 replicas, {why}",
                    History(),
                    direction="down" if v.current_replicas > 0 else "none",
                )
            )
    return out


def split(total: int, shares: Mapping[str, float], *, least: int) -> dict[str, int]:
    """`total` replicas split by `shares` so that the parts add up to `total` (largest
    remainder, ties to the larger share), each part at least `least`: a bound of the pool
    (`maxReplicas`: what it may cost) stays a bound of the versions together. Raising a part to
    `least` is paid for by the largest parts above it, so only a `total` below `least` times the
    number of parts is exceeded."""
    if not shares:
        return {}
    weight = sum(shares.values()) or 1.0
    exact = {b: total * s / weight for b, s in shares.items()}
    parts = {b: math.floor(x + 1e-9) for b, x in exact.items()}
    by_remainder = sorted(shares, key=lambda b: (parts[b] - exact[b], -shares[b], b))
    for b in by_remainder[: total - sum(parts.values())]:
        parts[b] += 1
    for b in parts:
        while parts[b] < least:
            donor = max(parts, key=lambda d: (parts[d], d))
            if parts[donor] <= least:
                parts[b] = least  # nothing left to take: the floor wins
                break
            parts[donor] -= 1
            parts[b] += 1
    return parts


def _observation(v: VersionInput, backlog: Backlog | None, error: str | None) -> Observation:
    return Observation(
        current_replicas=v.current_replicas,
        backlog=backlog,
        error=error if backlog is None else None,
        ready_replicas=v.ready_replicas,
        busy_workers=v.busy_workers,
    )


def floor(v: VersionInput) -> int:
    """The routing pass's floor for the build (reconcile/versioned.py applies it too): the
    target and the Ramping build keep 1 (a version exists only once a worker of it polled), a
    Draining build keeps 1 while its pinned work is open or uncounted."""
    if v.target or v.state == "Ramping" or (v.state == "Draining" and v.open_pinned != 0):
        return 1
    return 0


def _version(v: VersionInput, d: Decision, why: str, share: float | None) -> VersionDecision:
    replicas, kept = d.replicas, ""
    if replicas < floor(v):
        replicas, kept = floor(v), f"; kept at {floor(v)} ({v.state.lower()} build)"
    return VersionDecision(
        v.build_id,
        replicas,
        f"build {v.build_id} ({why}): {d.message}{kept}",
        d.history,
        backlog=d.backlog,
        share=share,
        direction="none" if replicas == v.current_replicas else d.direction,
    )


def _total(readings: Sequence[Backlog]) -> Backlog:
    """The new-work versions' backlogs summed: the backlog-derived total."""
    if not readings:
        return Backlog(count=0)
    return Backlog(
        count=sum(b.count for b in readings),
        age_seconds=max(b.age_seconds for b in readings),
        add_rate=sum(b.add_rate for b in readings),
        dispatch_rate=sum(b.dispatch_rate for b in readings),
        pollers=sum(b.pollers for b in readings),
    )


def _pinned(backlog: Backlog, v: VersionInput) -> Backlog:
    """The version's exact open pinned count as the zero guard's running-workflow signal."""
    return replace(backlog, running_workflows=v.open_pinned, running_unknown=v.open_pinned is None)


def _share(total: Backlog, share: float, v: VersionInput) -> Backlog:
    """The version's part of the total: its share of the count and rates (rounded up, so a share
    above 0 of a backlog above 0 is never 0), its own pollers and pinned count."""
    own = v.backlog
    return Backlog(
        count=math.ceil(total.count * share - 1e-9),
        age_seconds=total.age_seconds,
        add_rate=total.add_rate * share,
        dispatch_rate=total.dispatch_rate * share,
        pollers=own.pollers if own is not None else 0,
        running_workflows=v.open_pinned,
        running_unknown=v.open_pinned is None,
    )
