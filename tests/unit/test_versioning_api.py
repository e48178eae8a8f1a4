"""spec.versioning: the pydantic model agrees with the CRD's CEL rules, and stays opt-in."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workerpool_operator.api import crdgen
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.api.versioning import VersioningSpec

BASE: dict[str, Any] = {
    "connection": {"address": "temporal:7233"},
    "taskQueue": "q",
    "workflows": ["app.workflows:Flow"],
}


def test_unversioned_pool_has_no_versioning_and_dumps_unchanged() -> None:
    spec = api.TemporalWorkerPoolSpec.model_validate(BASE)
    assert spec.versioning is None
    assert "versioning" not in spec.dump()


def test_defaults() -> None:
    v = VersioningSpec()
    assert (v.strategy, v.default_behavior, v.paused, v.retention) == (
        "AllAtOnce",
        "Pinned",
        False,
        5,
    )
    assert (v.sunset.scale_down_delay_seconds, v.sunset.delete_delay_seconds) == (3600, 86400)
    assert v.effective_deployment_name("team", "orders") == "team/orders"
    assert VersioningSpec(deploymentName="x").effective_deployment_name("team", "orders") == "x"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"strategy": "Progressive"}, "needs at least one step"),
        ({"steps": [{"rampPercentage": 5}]}, "read only by strategy Progressive"),
        (
            {"strategy": "Progressive", "steps": [{"rampPercentage": 50}, {"rampPercentage": 5}]},
            "must increase",
        ),
        (
            {"strategy": "Progressive", "steps": [{"rampPercentage": 5}, {"rampPercentage": 5}]},
            "must increase",
        ),
        ({"strategy": "Manual", "gate": {"workflowType": "Smoke"}}, "gate never runs"),
        ({"deploymentName": "a:b"}, "must not contain '.', ':'"),
        ({"deploymentName": "team/orders.eu"}, "must not contain '.', ':'"),
        ({"deploymentName": 'a"b'}, "must not contain '.', ':'"),
        ({"buildId": "-bad"}, "String should match pattern"),
        ({"buildId": "x" * 64}, "at most 63"),
        (
            {"sunset": {"scaleDownDelaySeconds": 10, "deleteDelaySeconds": 5}},
            "deleteDelaySeconds must be >= scaleDownDelaySeconds",
        ),
    ],
)
def test_model_rejects_what_admission_rejects(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VersioningSpec.model_validate(block)


def test_crd_carries_the_block_and_the_columns() -> None:
    version = crdgen.crd()["spec"]["versions"][0]
    props = version["schema"]["openAPIV3Schema"]["properties"]
    block = props["spec"]["properties"]["versioning"]
    assert block["description"]
    rules = [r["message"] for r in block["x-kubernetes-validations"]]
    assert all(m.startswith("spec.versioning.") for m in rules)
    assert block["properties"]["steps"]["x-kubernetes-list-map-keys"] == ["rampPercentage"]
    status = props["status"]["properties"]
    assert status["versions"]["x-kubernetes-list-map-keys"] == ["buildId"]
    assert {"currentBuildId", "targetBuildId", "rampPercentage"} <= set(status)
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Current"]["jsonPath"] == ".status.currentBuildId"
    assert columns["Target"]["jsonPath"] == ".status.targetBuildId"
    assert columns["Ramp"]["jsonPath"] == ".status.rampPercentage"


def test_status_round_trips() -> None:
    status = api.TemporalWorkerPoolStatus.model_validate(
        {
            "currentBuildId": "a",
            "targetBuildId": "b",
            "rampPercentage": 10.0,
            "versions": [
                {"buildId": "a", "state": "Current", "openPinnedWorkflows": 3},
                {"buildId": "b", "state": "Ramping", "rampPercentage": 10.0},
            ],
        }
    )
    assert status.dump()["versions"][0] == {
        "buildId": "a",
        "state": "Current",
        "openPinnedWorkflows": 3,
    }
