"""The `attack` marker: each attack test names the path it tries to break (issue 20).

The suite counts them into `bench-results/security.json` (`attacks_tried`,
`attacks_blocked`): an attack is blocked when its test passes, since each test asserts the
outcome a defender wants. Parametrized cases count once each.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from testbed.wait import eventually

F = TypeVar("F", bound=Callable[..., Any])


def attack(path: str) -> Callable[[F], F]:
    """Mark a test as an attack on `path` (the claim in docs/security.md it tries to break)."""

    def mark(fn: F) -> F:
        marked: F = pytest.mark.attack(path)(fn)
        return marked

    return mark


# How long an attack test waits for the operator's answer (a status reason, a written child):
# seconds on an idle bed; TWP_ATTACK_WAIT_S shortens it to try the suite on code before a fix.
ATTACK_WAIT_S = float(os.environ.get("TWP_ATTACK_WAIT_S", "120"))


async def until(
    probe: Callable[[], Any], what: str, state: Callable[[], Any] | None = None
) -> None:
    """testbed.wait.eventually with the attack suite's bound."""
    await eventually(probe, what, state, wait_s=ATTACK_WAIT_S)
