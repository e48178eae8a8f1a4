"""Every metric name the chart's alerts and dashboard query is exported by something real.

Scrapes the real /metrics of a worker runtime (against the Temporal dev server, after
successful, failing and non-deterministic work) and of the operator (on the bed, leading, with
a Builtin pool polling that server), and fails on any queried name that neither exports, except
the names listed below with who must provide them.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testbed.runtime import runtime_env
from testbed.temporal import TemporalDevServer
from testbed.wait import until
from tests import builders
from tests.e2e.operator_process import OperatorProcess
from tests.metric_names import (
    alert_queries,
    exported_names,
    label_values_exported,
    label_values_used,
    used_names,
)
from tests.runtime.helpers import RuntimeProcess

APP = "tests.e2e.metrics_app"

# Queried, exported by something else than the runtime and the operator.
EXTERNAL = {
    "kube_pod_container_status_restarts_total": "kube-state-metrics (worker restarts alert)",
}
# Queried, to be exported by the operator but not yet (none today; see docs/observability.md).
REQUESTED_FROM_OPERATOR: dict[str, str] = {}


async def runtime_metrics(server: TemporalDevServer, tmp_path: Path) -> str:
    queue = f"names-{uuid.uuid4().hex[:8]}"
    env = runtime_env(server, queue, f"{APP}:WorkAndFail,{APP}:Nondeterministic",
                      f"{APP}:activities", TWP_MAX_CACHED_WORKFLOWS="0")  # fmt: skip
    rt = RuntimeProcess(env, tmp_path / "runtime.log")
    try:
        await rt.wait_status("/readyz", 200)
        client = await Client.connect(server.address, namespace=server.namespace)
        for i in range(3):
            await client.execute_workflow("WorkAndFail", i, id=f"w-{uuid.uuid4()}",
                                          task_queue=queue)  # fmt: skip
        handle = await client.start_workflow("Nondeterministic", id=f"nd-{uuid.uuid4()}",
                                             task_queue=queue)  # fmt: skip

        async def nondeterminism_seen() -> str:
            while True:
                text = await rt.metrics()
                if 'failure_reason="NonDeterminismError"' in text:
                    return text
                await asyncio.sleep(0.5)

        text = await asyncio.wait_for(nondeterminism_seen(), 60)
        await handle.terminate()
        return text
    finally:
        assert await rt.terminate() == 0, rt.output[-3000:]


def operator_metrics(kube: Any, namespace: str, server: TemporalDevServer, tmp_path: Path) -> str:
    op = OperatorProcess(kube.kubeconfig, ["-n", namespace, "--leader-elect"],
                         tmp_path / "operator.log", pod_namespace=namespace)  # fmt: skip
    try:
        until(lambda: op.sample("workerpool_operator_leader") == 1, "the operator to lead")
        pool = builders.pool(
            "names",
            connection={"address": server.address, "namespace": server.namespace},
            queue=f"names-{uuid.uuid4().hex[:6]}",
            workflows=(f"{APP}:WorkAndFail",),
            autoscaling={"engine": "Builtin", "minReplicas": 0, "maxReplicas": 2,
                         "pollIntervalSeconds": 5},
        )  # fmt: skip
        kube.apply(pool, namespace=namespace)
        until(lambda: op.sample("workerpool_backlog") is not None, "the scaler's first reading")
        until(lambda: op.sample("workerpool_scale_decisions_total") is not None, "a decision")
        return op.metrics()
    finally:
        op.stop()


# Labels whose values the alerts select and that this test's workload makes the SDK export;
# a renamed value (e.g. a new SDK's poller_type) then fails here, not silently in production.
CHECKED_LABELS = {"poller_type", "worker_type", "failure_reason"}


@pytest.mark.usefixtures("kube_cluster", "pool_crd")
def test_queried_metric_names_are_exported(
    kube_cluster: Any, namespace: str, temporal: TemporalDevServer, tmp_path: Path
) -> None:
    runtime_text = asyncio.run(runtime_metrics(temporal, tmp_path))
    runtime = exported_names(runtime_text)
    operator = exported_names(operator_metrics(kube_cluster, namespace, temporal, tmp_path))
    used = used_names()
    missing = {n: sorted(w) for n, w in used.items() if n not in runtime | operator}
    unexplained = {n: w for n, w in missing.items()
                   if n not in EXTERNAL and n not in REQUESTED_FROM_OPERATOR}  # fmt: skip
    assert not unexplained, f"queried but exported by neither runtime nor operator: {unexplained}"
    now_exported = sorted(set(REQUESTED_FROM_OPERATOR) & operator)
    assert not now_exported, f"the operator exports {now_exported} now: drop them from the list"
    assert not set(EXTERNAL) & (runtime | operator), "an EXTERNAL name is exported here now"
    selected = set().union(*(label_values_used(e) for e in alert_queries().values()))
    selected = {t for t in selected if t[1] in CHECKED_LABELS}
    seen = label_values_exported(runtime_text)
    # Histograms are selected by their _bucket series: compare on the family name.
    seen |= {(m.removesuffix("_bucket"), label, v) for m, label, v in seen}
    unseen = sorted(t for t in selected if t not in seen and (t[0] + "_bucket", *t[1:]) not in seen)
    assert selected, "no label values checked"
    assert not unseen, f"alert matchers select label values the runtime never exported: {unseen}"
    # The sources are real: the runtime's SDK and own metrics, the operator's and its scaler's.
    assert {"temporal_num_pollers", "twp_ready"} <= runtime
    assert {"workerpool_operator_leader", "workerpool_backlog"} <= operator


def test_nondeterminism_label_value_is_what_the_alert_matches() -> None:
    """The alert matches failure_reason="NonDeterminismError"; the runtime test above waits
    for exactly that sample, so a renamed label value fails there, not in production."""
    assert (
        'failure_reason="NonDeterminismError"'
        in alert_queries()["TemporalWorkerPoolNonDeterminism"]
    )
