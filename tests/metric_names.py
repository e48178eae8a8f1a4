"""Metric names used by PromQL queries (alerts, dashboard) and names exported on a /metrics page.

Small and dependency-free on purpose: the queries here are ours, so a tokenizer that removes
strings, label matchers, ranges and grouping clauses, then keeps identifiers that are not
functions or keywords, finds every metric name they use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "charts" / "workerpool-operator" / "files" / "alerts.yaml"
DASHBOARD = ROOT / "charts" / "workerpool-operator" / "files" / "dashboard.json"

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "inf", "nan"}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w(])\s*(\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*?)(?:,\s*[A-Za-z_][A-Za-z0-9_]*)?\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """Metric names in one PromQL (or Grafana label_values) expression."""
    grafana = _LABEL_VALUES.match(expr)  # Grafana variable: label_values(selector, label)
    if grafana:
        expr = grafana.group(1)
    names: set[str] = set()
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = _CLAUSE.sub(" ", expr)
    for match in _IDENT.finditer(expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def alert_queries() -> dict[str, str]:
    """Alert name -> expression, from the chart's rule file."""
    doc = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def dashboard_queries() -> dict[str, str]:
    """'panel title [refId]' (or 'variable NAME') -> expression, from the chart's dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out: dict[str, str] = {}

    def panels(items: Iterable[dict[str, object]]) -> Iterable[dict[str, object]]:
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])  # type: ignore[arg-type]

    for p in panels(dash["panels"]):
        for t in p.get("targets") or []:  # type: ignore[attr-defined]
            out[f"{p['title']} [{t['refId']}]"] = t["expr"]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            out[f"variable {v['name']}"] = q["query"] if isinstance(q, dict) else q
    return out


def used_names() -> dict[str, set[str]]:
    """Metric name -> where it is used ('alert X', 'dashboard Y')."""
    used: dict[str, set[str]] = {}
    for where, queries in (("alert", alert_queries()), ("dashboard", dashboard_queries())):
        for name, expr in queries.items():
            for metric in metric_names(expr):
                used.setdefault(metric, set()).add(f"{where} {name}")
    return used


def exported_names(text: str) -> set[str]:
    """Names a Prometheus text page exports: samples, and families declared by # TYPE (a
    labelled counter that never counted yet is declared but has no sample)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind.strip() == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind.strip() == "summary":
                names |= {f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"')


def label_values_used(expr: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) for each literal value an `=` or `=~ "a|b"` matcher selects."""
    out: set[tuple[str, str, str]] = set()
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            if op == "=":
                out.add((metric, label, value))
            elif op == "=~" and re.fullmatch(r"[A-Za-z0-9_|]+", value):
                out |= {(metric, label, v) for v in value.split("|")}
    return out


def label_values_exported(text: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) of every sample on a Prometheus text page."""
    out: set[tuple[str, str, str]] = set()
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, _, rest = line.partition("{")
        for label, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', rest):
            out.add((name, label, value))
    return out
