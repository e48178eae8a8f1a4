"""The Grafana dashboard: well-formed, every query valid PromQL (promtool parses it), the panels
the issue asks for present, and shipped unchanged by the chart with the sidecar label."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from testbed.tools import require_tool
from tests.metric_names import DASHBOARD, dashboard_queries, metric_names

ROOT = Path(__file__).resolve().parents[2]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's variables the way it would before sending the query."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(namespace|pool)\}?", ".*", expr)


def test_panels_are_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] == "temporal-workerpools"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "namespace", "pool"}
    for p in dash["panels"]:
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p.get("description"), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)}
        for i, (where, expr) in enumerate(sorted(queries.items()))
        if not where.startswith("variable ")
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_pool_queries_filter_by_the_variables() -> None:
    for where, expr in dashboard_queries().items():
        if where.startswith("variable "):
            continue
        names = metric_names(expr)
        if any(n.startswith(("workerpool_operator_", "workerpool_temporal_calls")) for n in names):
            continue  # operator-wide panels
        assert "$namespace" in expr, where
        assert "$pool" in expr, where


def test_the_asked_for_signals_are_shown() -> None:
    """Per pool: backlog, desired and ready replicas, schedule-to-start, slots, activity rates
    and failures, GPU (issue 11)."""
    shown = set().union(*(metric_names(e) for e in dashboard_queries().values()))
    for metric in (
        "workerpool_backlog",
        "workerpool_desired_replicas",
        "twp_ready",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_used",
        "temporal_worker_task_slots_available",
        "twp_activities_started_total",
        "twp_activities_failed_total",
        "workerpool_pool_condition",
        "twp_llm_tokens_total",
    ):
        assert metric in shown, metric
    titles = " ".join(p["title"] for p in dashboard()["panels"])
    assert "GPU" in titles


def test_chart_ships_the_dashboard_for_the_sidecar() -> None:
    helm = require_tool("helm")
    out = subprocess.run(
        [helm, "template", "wp", str(ROOT / "charts" / "workerpool-operator"),
         "--set", "dashboard.enabled=true", "--show-only", "templates/dashboard.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cm = yaml.safe_load(out)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    ((name, text),) = cm["data"].items()
    assert name.endswith(".json")
    assert json.loads(text) == dashboard()
