"""The committed CRD is generated from the pydantic model and is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
