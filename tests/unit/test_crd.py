"""The committed CRD is generated from the pydantic model and is a structural schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from workerpool_operator.api import crdgen
from workerpool_operator.api import v1alpha1 as api

ROOT = Path(__file__).resolve().parents[2]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key in ("properties",):
            for name, child in (node.get(key) or {}).items():
                out += _walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                out += _walk(node[key], f"{path}[]")
    return out


def test_committed_crd_is_current() -> None:
    committed = (ROOT / "crds" / crdgen.CRD_FILE).read_text()
    assert committed == crdgen.render_yaml(), "crds/ is stale: run `make crds` and commit"


def test_schema_is_structural() -> None:
    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("default", 0) is not None, path
        if "anyOf" in node:  # only the int-or-string idiom is structural
            assert node.get("x-kubernetes-int-or-string"), path
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"


def test_names_subresources_and_columns() -> None:
    doc = yaml.safe_load((ROOT / "crds" / crdgen.CRD_FILE).read_text())
    names = doc["spec"]["names"]
    assert names["shortNames"] == ["workerpools", "workerpool", "twp"]
    assert names["categories"] == ["temporal"]
    version = doc["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Queue", "Desired", "Ready", "Backlog", "GPU", "Status", "Age"]


def test_every_spec_field_is_documented() -> None:
    """kubectl explain should teach every field of the top-level spec."""
    spec = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    undocumented = [k for k, v in spec["properties"].items() if not v.get("description")]
    assert undocumented == []


def test_conditions_are_a_map_list_keyed_by_type() -> None:
    status = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_every_reason_is_documented_and_valid() -> None:
    for reason, doc in api.REASONS.items():
        assert doc
        assert api.Condition.model_fields["reason"].metadata  # pattern enforced
        api.Condition(
            type="Ready", status="True", reason=reason, last_transition_time="2026-01-01T00:00:00Z"
        )


def test_every_reason_is_in_the_api_docs() -> None:
    """Reasons are API: docs/api.md must list each one the operator can set."""
    docs = (ROOT / "docs" / "api.md").read_text()
    missing = [r for r in api.REASONS if f"`{r}`" not in docs]
    assert missing == []


def _field(*path: str) -> dict[str, Any]:
    node = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for name in path:
        node = node["items"] if name == "[]" else node["properties"][name]
    return dict(node)


def test_k8s_schemas_are_current() -> None:
    """api/k8s_schemas.json is what hack/k8s_schemas.py extracts from the bed's Kubernetes."""
    from hack import k8s_schemas

    version = k8s_schemas.kubernetes_version()
    directory = k8s_schemas.spec_dir(version)
    if directory is None:
        pytest.skip(f"k8s.io/kubernetes@{version} not in the Go module cache (make controlplane)")
    fresh = k8s_schemas.render(k8s_schemas.extract(directory, version))
    assert k8s_schemas.OUT.read_text() == fresh, "run `python -m hack.k8s_schemas` and commit"
    assert crdgen.k8s_schemas()["source"] == f"k8s.io/kubernetes@{version} api/openapi-spec/v3"


def test_pod_fields_carry_the_upstream_kubernetes_schema() -> None:
    """What a pool passes into pods is typed as in core/v1, not free-form objects."""
    env = _field("env")
    assert env["items"]["required"] == ["name"]
    assert env["x-kubernetes-list-map-keys"] == ["name"]
    assert env["items"]["properties"]["valueFrom"]["properties"]["secretKeyRef"]
    volumes = _field("template", "volumes", "[]")
    assert {"persistentVolumeClaim", "emptyDir", "secret", "configMap"} <= set(
        volumes["properties"]
    )
    seconds = _field("template", "tolerations", "[]")["properties"]["tolerationSeconds"]
    assert (seconds["type"], seconds["format"]) == ("integer", "int64")
    assert seconds["description"].startswith("TolerationSeconds represents")  # upstream's words
    affinity = _field("template", "affinity")
    assert set(affinity["properties"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    assert _field("template", "topologySpreadConstraints", "[]")["required"]
    cpu = _field("resources", "requests")["additionalProperties"]
    assert cpu["x-kubernetes-int-or-string"] is True
    assert "pattern" in cpu
    assert _field("rollout", "maxSurge")["x-kubernetes-int-or-string"] is True
    assert _field("disruptionBudget", "minAvailable")["x-kubernetes-int-or-string"] is True
    # our description and rules sit on top of the upstream schema
    assert "TWP_" in env["description"]
    assert any("TWP_" in r["message"] for r in env["x-kubernetes-validations"])


def test_every_list_and_map_under_a_cel_rule_is_bounded() -> None:
    """Unbounded lists and maps make the API server's CEL cost estimate explode."""
    spec = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for name in ("env", "envFrom"):
        assert spec["properties"][name]["maxItems"]
    for name in ("volumes", "volumeMounts", "tolerations", "topologySpreadConstraints"):
        assert spec["properties"]["template"]["properties"][name]["maxItems"]


CRD_SIZE_LIMIT = 256 * 1024


def test_crd_stays_small() -> None:
    """Far below the API server's 3 MiB request and etcd's 1.5 MiB value limits, and under the
    256 KiB that `kubectl apply` without --server-side can store in its annotation."""
    size = len(json.dumps(crdgen.crd(), separators=(",", ":")))
    assert size < CRD_SIZE_LIMIT, f"CRD is {size} bytes"
