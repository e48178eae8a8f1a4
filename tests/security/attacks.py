"""The `attack` marker: each attack test names the path it tries to break (issue 20).

The suite counts them into `bench-results/security.json` (`attacks_tried`,
`attacks_blocked`): an attack is blocked when its test passes, since each test asserts the
outcome a defender wants. Parametrized cases count once each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])


def attack(path: str) -> Callable[[F], F]:
    """Mark a test as an attack on `path` (the claim in docs/security.md it tries to break)."""

    def mark(fn: F) -> F:
        marked: F = pytest.mark.attack(path)(fn)
        return marked

    return mark
