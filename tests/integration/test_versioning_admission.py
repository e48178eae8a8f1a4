"""spec.versioning at admission, against the real kube-apiserver: every CEL rule of
api/versioning.py rejects with a message naming the fix, and valid blocks get their defaults."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import assert_rejected, with_spec


def versioned(**block: Any) -> dict[str, Any]:
    return with_spec(versioning=block)


REJECTED = [
    (
        "progressive-without-steps",
        versioned(strategy="Progressive"),
        "spec.versioning.strategy Progressive needs spec.versioning.steps",
    ),
    (
        "steps-without-progressive",
        versioned(strategy="AllAtOnce", steps=[{"rampPercentage": 10}]),
        "spec.versioning.steps is read only by strategy Progressive",
    ),
    (
        "steps-not-increasing",
        versioned(strategy="Progressive", steps=[{"rampPercentage": 50}, {"rampPercentage": 10}]),
        "rampPercentage must increase from one step to the next",
    ),
    (
        "steps-duplicate",
        versioned(strategy="Progressive", steps=[{"rampPercentage": 10}, {"rampPercentage": 10}]),
        "Duplicate value",
    ),
    (
        "ramp-100",
        versioned(strategy="Progressive", steps=[{"rampPercentage": 100}]),
        "should be less than or equal to 99",
    ),
    (
        "gate-with-manual",
        versioned(strategy="Manual", gate={"workflowType": "Smoke"}),
        "spec.versioning.gate never runs with strategy Manual",
    ),
    (
        "deployment-name-colon",
        versioned(deploymentName="team:pool"),
        "spec.versioning.deploymentName must not contain '.', ':'",
    ),
    (
        "deployment-name-dot",
        versioned(deploymentName="team/orders.eu"),
        "spec.versioning.deploymentName must not contain '.', ':'",
    ),
    (
        "deployment-name-quote",
        versioned(deploymentName="team'pool"),
        "spec.versioning.deploymentName must not contain '.', ':'",
    ),
    (
        "build-id-not-a-label-value",
        versioned(buildId="v1/bad"),
        "spec.versioning.buildId",
    ),
    (
        "sunset-delete-before-scale-down",
        versioned(sunset={"scaleDownDelaySeconds": 600, "deleteDelaySeconds": 60}),
        "spec.versioning.sunset.deleteDelaySeconds must be >= scaleDownDelaySeconds",
    ),
    (
        "unknown-strategy",
        versioned(strategy="BlueGreen"),
        "Unsupported value",
    ),
]


@pytest.mark.parametrize(("case", "doc", "message"), REJECTED, ids=[c[0] for c in REJECTED])
def test_versioning_rejected_with_readable_message(
    kube_cluster: Any,
    crd_installed: str,
    namespace: str,
    case: str,
    doc: dict[str, Any],
    message: str,
) -> None:
    assert_rejected(kube_cluster, namespace, case, doc, message)


def test_versioning_defaults(kube_cluster: Any, crd_installed: str, namespace: str) -> None:
    kube_cluster.apply(versioned(), namespace=namespace)
    live = kube_cluster.get("twp", "pool", namespace=namespace)["spec"]["versioning"]
    assert live == {
        "defaultBehavior": "Pinned",
        "strategy": "AllAtOnce",
        "paused": False,
        "rollbackWindowSeconds": 3600,
        "sunset": {"scaleDownDelaySeconds": 3600, "deleteDelaySeconds": 86400},
        "retention": 5,
    }


def test_versioning_full_block_admitted(
    kube_cluster: Any, crd_installed: str, namespace: str
) -> None:
    block = {
        "deploymentName": "payments/orders-v2",
        "defaultBehavior": "AutoUpgrade",
        "buildId": "release-2026.12_1",
        "strategy": "Progressive",
        "steps": [{"rampPercentage": 10, "pauseSeconds": 30}, {"rampPercentage": 50}],
        "gate": {"workflowType": "Smoke", "input": {"orders": [1, 2]}, "timeoutSeconds": 60},
        "paused": True,
        "rollbackWindowSeconds": 0,
        "sunset": {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 0},
        "retention": 0,
    }
    kube_cluster.apply(versioned(**block), namespace=namespace)
    live = kube_cluster.get("twp", "pool", namespace=namespace)["spec"]["versioning"]
    assert live["steps"] == [
        {"rampPercentage": 10, "pauseSeconds": 30},
        {"rampPercentage": 50, "pauseSeconds": 300},
    ]
    assert live["gate"] == {**block["gate"]}  # type: ignore[dict-item]
    assert live["deploymentName"] == "payments/orders-v2"


@pytest.mark.parametrize("engine", ["KEDA", "HPA"])
def test_versioned_pool_admitted_with_keda_and_hpa(
    kube_cluster: Any, crd_installed: str, namespace: str, engine: str
) -> None:
    """One ScaledObject or HPA per build (docs/versioning.md): both engines scale versioned
    pools, so admission takes them with spec.versioning."""
    autoscaling = {"engine": engine, "minReplicas": 0 if engine == "KEDA" else 1, "maxReplicas": 3}
    if engine == "HPA":
        autoscaling["cpuUtilization"] = 70
    kube_cluster.apply(with_spec(versioning={}, autoscaling=autoscaling), namespace=namespace)
    live = kube_cluster.get("twp", "pool", namespace=namespace)["spec"]
    assert live["autoscaling"]["engine"] == engine
    assert live["versioning"]["strategy"] == "AllAtOnce"
