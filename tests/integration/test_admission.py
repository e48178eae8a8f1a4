"""The CRD's schema and CEL rules reject bad pools at admission, with messages naming the fix.

Against the real kube-apiserver: every rule in api/v1alpha1.py is exercised here.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

VALID: dict[str, Any] = {
    "apiVersion": "workerpools.io/v1alpha1",
    "kind": "TemporalWorkerPool",
    "metadata": {"name": "pool"},
    "spec": {
        "connection": {"address": "temporal:7233"},
        "taskQueue": "q",
        "workflows": ["app.workflows:Flow"],
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    doc["spec"].update(changes)
    return doc


CASES = [
    ("address-scheme", with_spec(connection={"address": "http://t:7233"}), "host:port"),
    ("address-no-port", with_spec(connection={"address": "temporal"}), "host:port"),
    (
        "api-key-without-tls",
        with_spec(connection={"address": "t:7233", "apiKeySecretRef": {"name": "k"}}),
        "requires connection.tls",
    ),
    ("empty-queue", with_spec(taskQueue=""), "spec.taskQueue must not be empty"),
    ("blank-queue", with_spec(taskQueue="   "), "spec.taskQueue must not be empty"),
    ("nothing-hosted", with_spec(workflows=[]), "must host something"),
    ("bad-import-path", with_spec(workflows=["app.workflows.Flow"]), "should match"),
    (
        "min-over-max",
        with_spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "minReplicas must not exceed",
    ),
    (
        "hpa-without-target",
        with_spec(autoscaling={"engine": "HPA"}),
        "needs autoscaling.cpuUtilization",
    ),
    (
        "hpa-to-zero",
        with_spec(autoscaling={"engine": "HPA", "minReplicas": 0, "cpuUtilization": 70}),
        "cannot scale to zero",
    ),
    ("replicas-and-autoscaling", with_spec(replicas=2, autoscaling={}), "autoscaler owns"),
    ("gpu-zero", with_spec(gpu={"count": 0}), "gpu.count must be at least 1"),
    (
        "gpu-in-limits",
        with_spec(gpu={"count": 1}, resources={"limits": {"nvidia.com/gpu": 1}}),
        "spec.gpu.count",
    ),
    (
        "pdb-both",
        with_spec(disruptionBudget={"maxUnavailable": 1, "minAvailable": 1}),
        "exactly one of",
    ),
    (
        "service-monitor-enabled-typo",
        with_spec(metrics={"serviceMonitor": {"enabled": "yes"}}),
        "spec.metrics.serviceMonitor.enabled",
    ),
    ("engine-typo", with_spec(autoscaling={"engine": "Keda"}), "Unsupported value"),
    ("negative-replicas", with_spec(replicas=-1), "spec.replicas"),
    ("name-too-long", {**VALID, "metadata": {"name": "p" * 64}}, "DNS-1035 label"),
    ("name-starts-with-digit", {**VALID, "metadata": {"name": "1pool"}}, "DNS-1035 label"),
]


@pytest.mark.parametrize(("case", "doc", "message"), CASES, ids=[c[0] for c in CASES])
def test_rejected_with_readable_message(
    kube_cluster: Any,
    crd_installed: str,
    namespace: str,
    case: str,
    doc: dict[str, Any],
    message: str,
) -> None:
    result = kube_cluster.apply(doc, namespace=namespace, check=False)
    assert result.returncode != 0, f"{case} was admitted"
    assert message in result.stderr, result.stderr
    name = doc["metadata"]["name"]
    assert not kube_cluster.exists("temporalworkerpools", name, namespace=namespace)


@pytest.mark.parametrize(
    "doc",
    [
        VALID,
        with_spec(metrics={"serviceMonitor": {"enabled": True}}),
        with_spec(metrics={"serviceMonitor": {"enabled": False}}),
        with_spec(
            connection={
                "address": "ns.acct.tmprl.cloud:7233",
                "tls": {},
                "apiKeySecretRef": {"name": "k", "key": "api-key"},
            },
            autoscaling={"engine": "KEDA", "minReplicas": 0, "maxReplicas": 3},
            gpu={"count": 2, "resourceName": "nvidia.com/mig-1g.10gb"},
        ),
    ],
    ids=["minimal", "sm-true", "sm-false", "cloud-gpu-keda"],
)
def test_valid_pools_admitted_with_defaults(
    kube_cluster: Any, crd_installed: str, namespace: str, doc: dict[str, Any]
) -> None:
    kube_cluster.apply(doc, namespace=namespace)
    live = kube_cluster.get("twp", "pool", namespace=namespace)
    assert live["spec"]["connection"]["namespace"] == "default"  # defaulted by the schema
    assert live["spec"]["worker"]["gracefulShutdownSeconds"] == 30
