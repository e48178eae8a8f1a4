"""The version cap of a Worker Deployment (pure).

Temporal keeps at most `matching.maxVersionsInDeployment` versions in one Worker Deployment (a
per-namespace dynamic config setting, 100 by default; `--version-cap` tells the operator the
server's value). At the cap a new build's workers register only if the server can delete an old
version itself, and it cannot while the old ones look draining to it (its drainage status lags by
minutes), are current or ramping: the rollout then waits for a version that never appears
(temporal-worker-controller #7, #377; temporal#10737). Two rules keep that from happening:

- **room**: idle builds (no open pinned workflow by the exact count, neither the target nor
  serving new work) are retired oldest first, ahead of their sunset delays and retention, so
  that a slot always stays free for the next build;
- **report**: the versions that cannot be retired (current, ramping, the target, draining with
  open workflows) are counted against the cap, and `VersionLimitNear` is reported from 80% of it,
  while there is still room to act (let pinned work finish or move it, raise the cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workerpool_operator.reasons import Reason
from workerpool_operator.versioning.model import (
    LIMIT_CONDITION,
    VERSION_CAP_WARN_RATIO,
    Condition,
)


def retire_for_room(
    cap: int, registered: int, target_registered: bool, idle_oldest_first: Sequence[str]
) -> list[str]:
    """The idle builds to retire now so that, once the target has registered, at most cap - 1
    versions exist: the next build finds its slot without the server's own deletion."""
    allowed = cap - 1 - (0 if target_registered else 1)
    excess = registered - max(0, allowed)
    return list(idle_oldest_first[: max(0, excess)])


def limit_condition(cap: int, registered: int, held: int, deployment: str) -> Condition:
    """VersionLimit: True (VersionLimitNear) once the versions that hold work reach 80% of the
    cap; idle ones do not count, they are retired as room is needed."""
    near = max(1, math.floor(cap * VERSION_CAP_WARN_RATIO))
    if held >= near:
        return Condition(
            LIMIT_CONDITION,
            "True",
            Reason.VERSION_LIMIT_NEAR,
            f"{held} of at most {cap} versions of {deployment} hold work (current, ramping, the "
            "target, or draining with open pinned workflows) and cannot be retired; at the cap "
            "new builds stop registering. Let the pinned workflows of old builds finish (or "
            "move them with `temporal workflow update-options`), or raise the server's "
            "matching.maxVersionsInDeployment and the operator's --version-cap with it",
        )
    return Condition(
        LIMIT_CONDITION,
        "False",
        Reason.WITHIN_VERSION_LIMIT,
        f"{registered} of at most {cap} versions, {held} of them holding work",
    )
