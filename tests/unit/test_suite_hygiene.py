"""The suite itself: test modules share code through tests/builders.py and testbed/, never by
importing one another (a test module's import runs its module-level fixtures and marks)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_imports_another() -> None:
    found = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [
                f"{path.relative_to(TESTS)} imports {n}"
                for n in names
                if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert not found, "\n".join(found)
