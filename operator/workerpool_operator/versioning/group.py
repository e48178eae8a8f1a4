"""Release groups (pure): several pools of one namespace that name the same Temporal Worker
Deployment (spec.versioning.deploymentName) are released as one.

Temporal routes by version, and a version spans every task queue its workers poll: setting a
version current or ramping moves the workflow pool and the activity pool together, as long as
both run the same build ID and both have polled. So the group has:

- one build ID, derived from every member's image and pod template (`group_build_id`), so a
  change in any member is a new build that every member runs;
- one driver, the member whose name sorts first: only it makes routing calls, starts gates and
  judges analysis; the others run their build Deployments and report the group's state;
- one hold: new work moves to the group's build only once every member's Deployment of that
  build has a ready pod and a worker of the build has polled every member's task queue; until
  then the first member that is not there holds the group (`Group.holder`). Without the hold,
  a workflow of the new build could schedule an activity that only old workers serve.

- one verdict: a build that analysis or a gate rolled back is the group's, not the driver's.
  Every member records it in its own status.versions (`rejected`, at its own generation), and
  the group holds it while any member's record stands (`Group.rejected`): a new driver (the old
  one deleted, or a pool with an earlier name joining) reads it from the others and does not
  ramp the build again. It is lifted once every member that recorded it has a newer spec (a
  change to spec.versioning, which the members share, does that), as for a pool alone.

Every member's spec.versioning must be the same (`problem` names the first field that is not):
the rollout is one, so its strategy, steps, gates, analysis and sunset are too. Admission cannot
check this (a CEL rule sees one object), so it is a status condition and an Event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workerpool_operator.api.versioning import VersioningSpec
from workerpool_operator.versioning.build_id import group_build_id

GroupState = Literal["Invalid", "Held", "Rolling", "Current"]


@dataclass(frozen=True)
class Member:
    """One pool of a group as the cache holds it."""

    name: str
    spec: VersioningSpec
    task_queue: str
    image: str = ""
    template_hash: str = ""  # of its rendered pod template, connection settings excluded
    problem: str = ""  # why its template could not be rendered (its connection, ...)
    ready: Mapping[str, int] = field(default_factory=dict)  # build -> ready pods of its Deployment
    annotations: Mapping[str, str] = field(default_factory=dict)  # its promote/abort annotations
    rejected: Mapping[str, str] = field(default_factory=dict)  # build -> verdict it still holds


@dataclass(frozen=True)
class Group:
    """A release group of two or more pools (a pool alone is no group)."""

    deployment: str
    members: tuple[str, ...]  # sorted by name; the first one drives routing
    build_id: str
    queues: Mapping[str, str] = field(default_factory=dict)  # member -> its task queue
    ready: Mapping[str, int] = field(default_factory=dict)  # member -> ready pods of build_id
    problem: str = ""  # members disagree, or one cannot be rendered: nobody changes routing
    # (annotation, member, value): the promote/abort annotations on any member, which the
    # driver acts on (`kubectl annotate` on whichever pool one looks at).
    annotations: tuple[tuple[str, str, str], ...] = ()
    # build -> why analysis or a gate rolled it back, while any member's record of it stands.
    rejected: Mapping[str, str] = field(default_factory=dict)

    @property
    def driver(self) -> str:
        return self.members[0]

    def holder(self, polled: frozenset[str] | None) -> str:
        """The first member that holds the group's build back, and why ("" : none does).
        `polled`: the task queues Temporal has seen a worker of the build poll (None: not
        read, which holds too)."""
        for name in self.members:
            queue = self.queues.get(name, "")
            if self.ready.get(name, 0) < 1:
                return f"pool {name}: its Deployment of build {self.build_id} has no ready pod yet"
            if polled is None:
                return f"pool {name}: which task queues build {self.build_id} polls was not read"
            if queue not in polled:
                return (
                    f"pool {name}: no worker of build {self.build_id} has polled task queue "
                    f"{queue} yet"
                )
        return ""


def standing_verdicts(versions: Sequence[Mapping[str, Any]], generation: int) -> dict[str, str]:
    """build -> verdict, from one pool's status.versions: the records made at its generation
    or later (a newer spec lifts that pool's record, as `routing._rejected` has it)."""
    out: dict[str, str] = {}
    for v in versions:
        build, why, at = v.get("buildId"), v.get("rejected"), v.get("rejectedGeneration")
        if build and why and isinstance(at, int) and at >= generation:
            out[str(build)] = str(why)
    return out


def _dump(spec: VersioningSpec) -> dict[str, Any]:
    out = spec.model_dump(mode="json", by_alias=True)
    return dict(out)


def disagreement(deployment: str, members: Sequence[Member]) -> str:
    """The first spec.versioning field on which members differ, with every member's value and
    the fix; "" when they all agree."""
    if len(members) < 2:
        return ""
    dumps = {m.name: _dump(m.spec) for m in members}
    first = dumps[members[0].name]
    for key in first:
        values = {name: d.get(key) for name, d in dumps.items()}
        if len({repr(v) for v in values.values()}) > 1:
            shown = ", ".join(f"{name}: {v!r}" for name, v in sorted(values.items()))
            return (
                f"release group {deployment}: spec.versioning.{key} differs between its pools "
                f"({shown}); the pools that name deploymentName {deployment} are released as "
                f"one, so set spec.versioning.{key} the same on each (or give one another "
                "deploymentName)"
            )
    return ""


def form(deployment: str, members: Sequence[Member], elsewhere: Sequence[str] = ()) -> Group | None:
    """The group of the pools in `members` (those of one namespace naming `deployment`), or None
    for a pool alone. `elsewhere`: pools of other namespaces (`ns/name`) naming it too, which
    cannot take part (a group lives in one namespace)."""
    if len(members) < 2 and not elsewhere:
        return None
    ordered = sorted(members, key=lambda m: m.name)
    problem = disagreement(deployment, ordered)
    if not problem and elsewhere:
        problem = (
            f"release group {deployment}: pools of other namespaces name it too "
            f"({', '.join(sorted(elsewhere))}); a release group lives in one namespace, so give "
            "those pools another spec.versioning.deploymentName"
        )
    if not problem:
        broken = next((m for m in ordered if m.problem), None)
        if broken is not None:
            problem = f"release group {deployment}: pool {broken.name} cannot be rendered: " + (
                broken.problem
            )
    fixed = ordered[0].spec.build_id
    build = fixed or group_build_id([(m.name, m.image, m.template_hash) for m in ordered])
    return Group(
        deployment=deployment,
        members=tuple(m.name for m in ordered),
        build_id=build,
        queues={m.name: m.task_queue for m in ordered},
        ready={m.name: int(m.ready.get(build, 0)) for m in ordered},
        problem=problem,
        annotations=tuple(
            (key, m.name, value) for m in ordered for key, value in sorted(m.annotations.items())
        ),
        # The first member's wording when several recorded one build (the same verdict, copied).
        rejected={b: why for m in reversed(ordered) for b, why in m.rejected.items()},
    )


def state(group: Group, held_by: str, current: str | None, ramping: str | None) -> GroupState:
    """The group's state as every member reports it (from the same cache and Temporal)."""
    if group.problem:
        return "Invalid"
    if current == group.build_id and ramping is None:
        return "Current"
    if held_by:
        return "Held"
    return "Rolling"
