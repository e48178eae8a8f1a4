"""The help pages users reach from a status or an alert: every reason has its troubleshooting
section (what it means, the command to see more, the fix), and the operator reference lists every
flag."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.settings import parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_every_condition_reason_has_a_troubleshooting_section() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)`\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL))
    missing = set(api.REASONS) - set(sections)
    assert not missing, f"reasons without a section in docs/troubleshooting.md: {sorted(missing)}"
    assert not set(sections) - set(api.REASONS), "a section for a reason the operator never sets"
    for reason, body in sections.items():
        assert "```sh\n" in body, f"{reason}: no command to see more"
        assert "\nFix: " in body, f"{reason}: no fix"


def test_every_operator_flag_is_in_the_reference() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parse_args(["--help"])
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", out.getvalue()))
    doc = (ROOT / "docs" / "operator-reference.md").read_text()
    assert flags, out.getvalue()
    missing = {f for f in flags if f"`{f}" not in doc}
    assert not missing, f"flags missing from docs/operator-reference.md: {sorted(missing)}"


def test_chart_values_table_is_generated_from_the_schema() -> None:
    """The chart README's values table has a row per schema key (`hack.chart_values_doc`)."""
    from hack import chart_values_doc

    readme = chart_values_doc.README.read_text()
    assert chart_values_doc.render(readme) == readme, "run `python -m hack.chart_values_doc`"
    schema = json.loads((chart_values_doc.CHART / "values.schema.json").read_text())
    for key in schema["properties"]:
        assert f"| `{key}" in readme, key
