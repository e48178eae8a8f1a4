"""The operator process (one per test, watching only the test's namespace) against the real
kube-apiserver and kwok nodes."""

from __future__ import annotations

import functools
import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from testbed.operator import metric
from testbed.wait import until
from tests.builders import condition, pool
from tests.integration.conftest import RESYNC_S

pytestmark = pytest.mark.usefixtures("operator")

if TYPE_CHECKING:
    from testbed.operator import OperatorProcess


def pool_doc(name: str = "orders", **spec: Any) -> dict[str, Any]:
    return pool(
        name,
        queue="orders",
        workflows=("app.workflows:OrderWorkflow",),
        activities=["app.activities:charge"],
        **spec,
    )


def wait_ready(kube: Any, ns: str, name: str, ready: int) -> None:
    def probe() -> bool:
        st = kube.get("twp", name, namespace=ns).get("status") or {}
        cond = condition(kube, ns, name, "Ready")
        return cond.get("status") == "True" and st.get("readyReplicas") == ready

    until(probe, f"pool {name} Ready with {ready} ready replicas", wait_s=120)


def parse_table(text: str) -> list[dict[str, str]]:
    """kubectl's table by header offsets (empty cells stay empty instead of shifting columns)."""
    header, *rows = text.splitlines()
    cells = list(re.finditer(r"\S+", header))
    names = [m.group() for m in cells]
    starts = [m.start() for m in cells]
    bounds = [*starts[1:], None]
    return [
        {n: row[a:b].strip() for n, a, b in zip(names, starts, bounds, strict=True)} for row in rows
    ]


def env_of(dep: dict[str, Any]) -> dict[str, str]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_pool_becomes_children_and_ready(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc(replicas=2), namespace=namespace)
    for kind in ("deployment", "service", "poddisruptionbudget", "servicemonitor"):
        until(functools.partial(kube_cluster.exists, kind, "orders", namespace=namespace),
              f"{kind} orders created")  # fmt: skip
    dep = kube_cluster.get("deployment", "orders", namespace=namespace)
    assert dep["spec"]["replicas"] == 2
    assert env_of(dep)["TWP_TASK_QUEUE"] == "orders"
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "TemporalWorkerPool",
        "orders",
        True,
    )
    wait_ready(kube_cluster, namespace, "orders", 2)

    pool = kube_cluster.get("twp", "orders", namespace=namespace)
    assert pool["status"]["observedGeneration"] == pool["metadata"]["generation"]
    assert pool["status"]["selector"] == "workerpools.io/pool=orders"
    assert condition(kube_cluster, namespace, "orders", "ServiceMonitorReady")["status"] == "True"
    assert condition(kube_cluster, namespace, "orders", "Degraded")["status"] == "False"

    table = kube_cluster.kubectl("get", "workerpools", "-n", namespace)
    assert table.split("\n")[0].split() == [
        "NAME",
        "QUEUE",
        "DESIRED",
        "READY",
        "BACKLOG",
        "GPU",
        "STATUS",
        "AGE",
    ]
    (row,) = parse_table(table)
    assert row["NAME"] == "orders"
    assert row["QUEUE"] == "orders"
    assert (row["DESIRED"], row["READY"], row["STATUS"]) == ("2", "2", "Available")
    assert row["GPU"] == ""
    assert row["BACKLOG"] == ""
    wide = kube_cluster.kubectl("get", "twp", "-o", "wide", "-n", namespace)
    (wide_row,) = parse_table(wide)
    assert wide_row["MESSAGE"] == "2/2 replicas ready"

    # kubectl wait works on the Ready condition (what Argo CD/Flux health checks build on)
    kube_cluster.kubectl(
        "wait", "--for=condition=Ready", "twp/orders", "-n", namespace, "--timeout=30s"
    )


def test_edit_rolls_out_and_scale_subresource(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc(replicas=1), namespace=namespace)
    wait_ready(kube_cluster, namespace, "orders", 1)
    kube_cluster.kubectl(
        "patch",
        "twp",
        "orders",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"image": {"tag": "0.2.0"}, "taskQueue": "orders-v2"}}),
    )

    def rolled() -> bool:
        dep = kube_cluster.get("deployment", "orders", namespace=namespace)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        return image.endswith(":0.2.0") and env_of(dep)["TWP_TASK_QUEUE"] == "orders-v2"

    until(rolled, "Deployment rolled to the edited spec")

    kube_cluster.kubectl("scale", "twp/orders", "--replicas=3", "-n", namespace)
    until(
        lambda: (
            kube_cluster.get("deployment", "orders", namespace=namespace)["spec"]["replicas"] == 3
        ),
        "kubectl scale on the pool reaches the Deployment",
    )
    wait_ready(kube_cluster, namespace, "orders", 3)


def test_drift_is_repaired(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc(), namespace=namespace)
    wait_ready(kube_cluster, namespace, "orders", 1)

    uid = kube_cluster.get("service", "orders", namespace=namespace)["metadata"]["uid"]
    kube_cluster.delete("service", "orders", namespace=namespace)
    until(
        lambda: (
            kube_cluster.exists("service", "orders", namespace=namespace)
            and kube_cluster.get("service", "orders", namespace=namespace)["metadata"]["uid"] != uid
        ),
        "deleted Service restored",
    )

    kube_cluster.kubectl(
        "set", "env", "deployment/orders", "-n", namespace, "TWP_TASK_QUEUE=hijacked"
    )
    until(
        lambda: (
            env_of(kube_cluster.get("deployment", "orders", namespace=namespace))["TWP_TASK_QUEUE"]
            == "orders"
        ),
        "edited Deployment env restored",
    )

    kube_cluster.kubectl("delete", "pdb", "orders", "-n", namespace)
    until(lambda: kube_cluster.exists("pdb", "orders", namespace=namespace), "PDB restored")


def writes_so_far(op: OperatorProcess, namespace: str) -> float:
    """The operator's write requests into one namespace (apply, status, delete), from its
    /metrics; an operator that does not answer fails the test instead of reading 0."""
    return metric(op.metrics(), "workerpool_operator_writes_total", namespace=namespace)


def test_idle_resync_writes_nothing(
    kube_cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    """After convergence, several resync periods (3 s in tests) make no write request at all.

    A workflows-only pool on purpose: its empty TWP_ACTIVITIES is dropped by the API server,
    which once made every resync re-apply an unchanged Deployment.
    """
    doc = pool_doc()
    del doc["spec"]["activities"]
    kube_cluster.apply(doc, namespace=namespace)
    wait_ready(kube_cluster, namespace, "orders", 1)
    kinds = ["twp", "deployment", "service", "pdb", "servicemonitor"]

    def versions() -> dict[str, str]:
        return {
            k: kube_cluster.get(k, "orders", namespace=namespace)["metadata"]["resourceVersion"]
            for k in kinds
        }

    # Settled: nothing changed across a whole resync period (reads more than one period apart;
    # trailing status writes, e.g. readyReplicas, may take a few periods to stop).
    seen: list[dict[str, str]] = []

    def unchanged_for_a_resync() -> bool:
        seen.append(versions())
        return len(seen) > 1 and seen[-1] == seen[-2]

    until(unchanged_for_a_resync, "no write for a whole resync period", lambda: seen[-2:],
          interval=RESYNC_S + 1)  # fmt: skip
    before, writes_before = versions(), writes_so_far(operator, namespace)
    time.sleep(10)  # > 3 resync periods; not a timing assertion: we assert on writes
    assert versions() == before
    assert writes_so_far(operator, namespace) == writes_before


def test_service_monitor_toggle_prunes(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc(), namespace=namespace)
    until(
        lambda: kube_cluster.exists("servicemonitor", "orders", namespace=namespace),
        "ServiceMonitor created (Auto, CRD installed)",
    )
    kube_cluster.kubectl(
        "patch",
        "twp",
        "orders",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"metrics": {"serviceMonitor": {"enabled": false}}}}',
    )
    until(
        lambda: not kube_cluster.exists("servicemonitor", "orders", namespace=namespace),
        "ServiceMonitor removed when disabled",
    )
    until(
        lambda: (
            condition(kube_cluster, namespace, "orders", "ServiceMonitorReady").get("reason")
            == "Disabled"
        ),
        "ServiceMonitorReady=False/Disabled",
    )


def test_deleting_the_pool_removes_children(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc(), namespace=namespace)
    until(
        lambda: kube_cluster.exists("deployment", "orders", namespace=namespace),
        "Deployment created",
    )
    kube_cluster.delete("twp", "orders", namespace=namespace)
    for kind in ("deployment", "service", "pdb", "servicemonitor"):

        def gone(k: str = kind) -> bool:
            return not kube_cluster.exists(k, "orders", namespace=namespace)

        until(gone, f"{kind} garbage-collected with the pool", wait_s=90)


def test_gpu_pool_lands_on_gpu_nodes(kube_cluster: Any, namespace: str) -> None:
    kube_cluster.apply(pool_doc("llm", gpu={"count": 2}, replicas=2), namespace=namespace)
    wait_ready(kube_cluster, namespace, "llm", 2)
    pods = kube_cluster.get("pods", namespace=namespace, selector="workerpools.io/pool=llm")
    for pod in pods["items"]:
        node = kube_cluster.get("node", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"
