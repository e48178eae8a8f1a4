"""The HPA engine end to end on real resource metrics: the operator, as deployed (`python -m
workerpool_operator`, scoped to the test's namespace), renders the HorizontalPodAutoscaler, the
bed's real kube-controller-manager (HPA controller) scales the pool's Deployment on CPU or memory
utilization that it reads from `metrics.k8s.io`.

`metrics.k8s.io` is served by a real metrics-server (built from its Go module by
hack/build-metrics-server.sh) run as a local process and aggregated by the bed's kube-apiserver
(testbed/metrics_server.py). It scrapes kwok, which plays the kubelets of the fake nodes and
simulates the pods' usage from a kwok ClusterResourceUsage that the test sets for its own
namespace: "the workers are busy" is 2x (CPU) or 3x (memory) the target, "idle" far below it.

Missing metrics-server skips locally and fails under CI=true (make setup builds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import metrics_server as msbed
from testbed.operator import deployed_operator
from testbed.pytest_cluster import KubeCluster
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.builders import condition_of
from workerpool_operator.api import v1alpha1 as api

pytestmark = pytest.mark.e2e

WAIT_S = 300.0  # a shared 2-core machine; bounds a wait, never asserted on
MIN, MAX = 1, 3


@dataclass(frozen=True)
class Case:
    """One utilization target, with per-pod usages above and below it."""

    resource: str
    requests: dict[str, str]
    target: int
    busy: dict[str, str]  # simulated per-container usage: {"cpu": ..., "memory": ...}
    busy_utilization: int  # what that is in percent of the request
    idle: dict[str, str]


CASES = {
    # 400m of a 200m request = 200 % against a 50 % target: ceil(1 x 4) -> capped at MAX.
    "cpu": Case("cpu", {"cpu": "200m", "memory": "1Gi"}, 50,
                {"cpu": "400m", "memory": "100Mi"}, 200, {"cpu": "10m", "memory": "100Mi"}),
    # 150Mi of a 100Mi request = 150 % against a 50 % target: ceil(1 x 3) = MAX.
    "memory": Case("memory", {"cpu": "1", "memory": "100Mi"}, 50,
                   {"cpu": "10m", "memory": "150Mi"}, 150, {"cpu": "10m", "memory": "10Mi"}),
}  # fmt: skip


def current_utilization(hpa: dict[str, Any], resource: str) -> int | None:
    """status.currentMetrics[resource].current.averageUtilization, as `kubectl get hpa` shows."""
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        res = metric.get("resource") or {}
        if metric.get("type") == "Resource" and res.get("name") == resource:
            value = res.get("current", {}).get("averageUtilization")
            return None if value is None else int(value)
    return None


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_hpa_engine_scales_the_pool_on_real_resource_metrics(
    kube_cluster: KubeCluster,
    namespace: str,
    temporal: TemporalDevServer,
    metrics_server: msbed.MetricsServer,
    pool_crd: object,
    case: Case,
    tmp_path: Path,
) -> None:
    name = f"hpa-{case.resource}"
    kube = kube_cluster
    pool = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "connection": {"address": temporal.address, "namespace": temporal.namespace},
            "taskQueue": name,
            "workflows": ["app.workflows:Flow"],
            "resources": {"requests": case.requests},
            "autoscaling": {
                "engine": "HPA",
                "minReplicas": MIN,
                "maxReplicas": MAX,
                f"{case.resource}Utilization": case.target,
                "scaleDownStabilizationSeconds": 0,
            },
        },
    }

    def replicas() -> int:
        return int(kube.get("deployment", name, namespace=namespace)["spec"].get("replicas", 1))

    def hpa() -> dict[str, Any]:
        return kube.get("hpa", name, namespace=namespace)

    def state() -> str:
        hpa_now = kube.run("get", "hpa", name, "-n", namespace, "-o", "yaml").stdout
        pods = kube.run("get", "pods", "-n", namespace, "-o", "wide").stdout
        served = kube.run(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        )  # fmt: skip
        return (
            f"deployment replicas {replicas()}\nHPA:\n{hpa_now[-2500:]}\npods:\n{pods}\n"
            f"PodMetrics: {served.stdout[-1500:]}{served.stderr[-500:]}\n{metrics_server.logs()}"
        )

    with msbed.simulated_usage(kube.kubeconfig, namespace, **case.busy):
        kube.apply(pool)
        async with deployed_operator(kube, namespace, tmp_path):
            await eventually(
                lambda: kube.exists("hpa", name, namespace=namespace),
                "the operator's HorizontalPodAutoscaler",
                state,
            )
            spec = hpa()["spec"]
            assert spec["scaleTargetRef"] == {
                "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            }  # fmt: skip
            assert (spec["minReplicas"], spec["maxReplicas"]) == (MIN, MAX)
            (metric,) = spec["metrics"]
            assert metric["resource"] == {
                "name": case.resource,
                "target": {"type": "Utilization", "averageUtilization": case.target},
            }
            await eventually(
                lambda: condition_of(
                    kube.get(api.KIND.lower(), name, namespace=namespace),
                    api.CONDITION_AUTOSCALING,
                ).get("status") == "True",
                "the pool's AutoscalingReady=True",
                state,
            )  # fmt: skip

            # Busy workers: the HPA controller reads the utilization from metrics.k8s.io and
            # raises the Deployment the operator left without spec.replicas.
            await eventually(lambda: replicas() == MAX, f"the HPA scales 1 -> {MAX}", state)
            scaled = hpa()
            busy = current_utilization(scaled, case.resource)
            assert busy is not None, scaled.get("status")
            # kwok's simulated usage, as metrics-server computed it (CPU: a rate of a counter).
            assert case.busy_utilization * 0.8 <= busy <= case.busy_utilization * 1.2, busy
            active = condition_of(scaled, "ScalingActive")
            assert (active.get("status"), active.get("reason")) == ("True", "ValidMetricFound")
            assert scaled["status"]["desiredReplicas"] == MAX

            # Idle workers: far below the target, back to minReplicas (scale-down window 0).
            msbed.set_usage(kube.kubeconfig, namespace, cpu=case.idle["cpu"],
                            memory=case.idle["memory"])  # fmt: skip
            await eventually(lambda: replicas() == MIN, f"the HPA scales {MAX} -> {MIN}", state)
            idle = current_utilization(hpa(), case.resource)
            assert idle is not None, hpa().get("status")
            assert idle < case.target
