"""Autoscaling renderers: golden KEDA/HPA objects and a table of engine x cluster capabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import golden as golden_file
from tests.unit.conn_helper import resolved_pool
from workerpool_operator.api.v1alpha1 import REASONS, TemporalWorkerPool
from workerpool_operator.kinds import child as child_kind
from workerpool_operator.render.autoscaling import plan_autoscaling

GOLDEN = Path(__file__).parent / "golden"


def pool(autoscaling: dict[str, Any] | None, **spec: Any) -> TemporalWorkerPool:
    body: dict[str, Any] = {
        "connection": {"address": "temporal-frontend.temporal.svc:7233", "namespace": "prod"},
        "taskQueue": "orders",
        "workflows": ["app.wf:Flow"],
        **spec,
    }
    if autoscaling is not None:
        body["autoscaling"] = autoscaling
    return resolved_pool(
        {"metadata": {"name": "orders", "namespace": "shop", "uid": "uid-1"}, "spec": body}
    )


KEDA_API_KEY = pool(
    {
        "engine": "KEDA",
        "minReplicas": 0,
        "maxReplicas": 20,
        "targetBacklogPerReplica": 10,
        "activationBacklog": 2,
        "pollIntervalSeconds": 15,
        "scaleDownStabilizationSeconds": 120,
    },
    connection={
        "address": "prod.a1b2c.tmprl.cloud:7233",
        "namespace": "prod.a1b2c",
        "tls": {},
        "apiKeySecretRef": {"name": "temporal-cloud", "key": "api-key"},
    },
)
HPA = pool(
    {"engine": "HPA", "minReplicas": 2, "maxReplicas": 8, "cpuUtilization": 70,
     "memoryUtilization": 80},
    resources={"requests": {"cpu": "500m", "memory": "1Gi"}},
)  # fmt: skip

GOLDEN_CASES = {"autoscaling-keda-api-key": KEDA_API_KEY, "autoscaling-hpa": HPA}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str) -> None:
    plan = plan_autoscaling(GOLDEN_CASES[name], keda_installed=True)
    text = yaml.safe_dump_all(plan.children, sort_keys=True)
    golden = GOLDEN / f"{name}.yaml"
    golden_file.compare(golden, text)


def kinds(p: TemporalWorkerPool, keda: bool) -> list[str]:
    return [c["kind"] for c in plan_autoscaling(p, keda_installed=keda).children]


@pytest.mark.parametrize(
    ("autoscaling", "keda", "want_kinds", "want_condition"),
    [
        (None, True, [], None),
        ({"engine": "Builtin"}, True, [], None),  # the Builtin scaler owns its conditions
        ({"engine": "KEDA"}, True, ["ScaledObject"], ("True", "Created")),
        ({"engine": "KEDA"}, False, [], ("False", "CRDNotInstalled")),
        ({"engine": "HPA", "cpuUtilization": 60}, False, ["HorizontalPodAutoscaler"],
         ("False", "ResourceRequestsMissing")),
    ],
)  # fmt: skip
def test_engine_table(
    autoscaling: dict[str, Any] | None,
    keda: bool,
    want_kinds: list[str],
    want_condition: tuple[str, str] | None,
) -> None:
    plan = plan_autoscaling(pool(autoscaling), keda_installed=keda)
    assert [c["kind"] for c in plan.children] == want_kinds
    if want_condition is None:
        assert plan.conditions == []
    else:
        (cond,) = plan.conditions
        assert cond.type == "AutoscalingReady"
        assert (cond.status, cond.reason) == want_condition
        assert cond.reason in REASONS  # every reason we emit is documented API


def test_keda_missing_crd_tells_the_user_what_to_do() -> None:
    (cond,) = plan_autoscaling(pool({"engine": "KEDA"}), keda_installed=False).conditions
    assert "install KEDA" in cond.message
    assert "Builtin" in cond.message


def test_children_are_owned_named_after_the_pool_and_target_its_deployment() -> None:
    for p in (KEDA_API_KEY, HPA):
        for child in plan_autoscaling(p, keda_installed=True).children:
            # a registered child kind the operator may delete: pruned when no longer wanted
            assert "delete" in child_kind(child["apiVersion"], child["kind"]).verbs
            meta = child["metadata"]
            assert (meta["name"], meta["namespace"]) == ("orders", "shop")
            (owner,) = meta["ownerReferences"]
            assert owner["uid"] == "uid-1"
            assert owner["controller"] is True
            ref = child["spec"].get("scaleTargetRef")
            if ref is not None:
                assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}


def trigger(p: TemporalWorkerPool) -> dict[str, Any]:
    (so,) = [
        c for c in plan_autoscaling(p, keda_installed=True).children if c["kind"] == "ScaledObject"
    ]
    (t,) = so["spec"]["triggers"]
    return dict(t)


def test_keda_trigger_carries_queue_targets_as_strings() -> None:
    t = trigger(KEDA_API_KEY)
    assert t["type"] == "temporal"
    md = t["metadata"]
    assert md["endpoint"] == "prod.a1b2c.tmprl.cloud:7233"
    assert md["namespace"] == "prod.a1b2c"
    assert md["taskQueue"] == "orders"
    assert md["targetQueueSize"] == "10"
    assert md["activationTargetQueueSize"] == "2"
    assert md["queueTypes"] == "workflow,activity"
    assert all(isinstance(v, str) for v in md.values())  # KEDA metadata is map[string]string
    assert t["authenticationRef"] == {"name": "orders"}


def test_keda_mtls_secret_maps_to_ca_cert_key() -> None:
    p = pool(
        {"engine": "KEDA"},
        connection={
            "address": "temporal:7233",
            "tls": {"secretName": "temporal-mtls", "serverName": "temporal.internal"},
        },
    )
    children = plan_autoscaling(p, keda_installed=True).children
    (auth,) = [c for c in children if c["kind"] == "TriggerAuthentication"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "ca": ("temporal-mtls", "ca.crt"),
        "cert": ("temporal-mtls", "tls.crt"),
        "key": ("temporal-mtls", "tls.key"),
    }
    assert trigger(p)["metadata"]["tlsServerName"] == "temporal.internal"


def test_keda_plaintext_has_no_trigger_authentication() -> None:
    p = pool({"engine": "KEDA"})
    assert kinds(p, True) == ["ScaledObject"]
    assert "authenticationRef" not in trigger(p)


def test_keda_windows_and_bounds_follow_the_spec() -> None:
    (_auth, so) = plan_autoscaling(KEDA_API_KEY, keda_installed=True).children
    spec = so["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 20)
    assert spec["pollingInterval"] == 15
    assert spec["cooldownPeriod"] == 120
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_hpa_targets_cpu_and_memory_utilization() -> None:
    (hpa,) = plan_autoscaling(HPA, keda_installed=False).children
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    (cond,) = plan_autoscaling(HPA, keda_installed=False).conditions
    assert cond.status == "True"


def test_hpa_without_memory_request_says_which_is_missing() -> None:
    p = pool(
        {"engine": "HPA", "minReplicas": 1, "memoryUtilization": 80},
        resources={"requests": {"cpu": "1"}},
    )
    (cond,) = plan_autoscaling(p, keda_installed=False).conditions
    assert cond.reason == "ResourceRequestsMissing"
    assert "requests.memory" in cond.message
