"""Golden files: a rendered text compared with a reviewed copy under tests/unit/golden/.

With UPDATE_GOLDEN set, a file that differs (or is missing) is rewritten and the test FAILS,
naming it: an update is a change to review, never a pass. An unchanged file passes, since it
was compared before anything was written.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest


def compare(golden: Path, text: str) -> None:
    """Fail unless `golden` holds exactly `text`; with UPDATE_GOLDEN, rewrite it and fail."""
    old = golden.read_text() if golden.exists() else None
    if old == text:
        return
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
        pytest.fail(
            f"UPDATE_GOLDEN: rewrote {golden.name}; review the diff and run again without it"
        )
    if old is None:
        pytest.fail(f"missing {golden}: run UPDATE_GOLDEN=1 once, then review the new file")
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True), "golden", "rendered"
        )
    )
    pytest.fail(f"{golden.name} differs from the rendering (review, then UPDATE_GOLDEN=1):\n{diff}")
