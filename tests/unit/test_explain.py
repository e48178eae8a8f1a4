"""`kubectl explain` documents every field of every CRD: kubectl explain shows exactly the
`description` of each node of the CRD's schema, so a field without one is a blank in explain.
The model's fields get theirs from pydantic (a docstring or `description=`), the embedded pod
fields from Kubernetes' own OpenAPI (first sentence, hack/k8s_schemas.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
CRDS = sorted((ROOT / "crds").glob("workerpools.io_*.yaml"))
# Standard fields every object has; kubectl explain documents them from the API machinery.
STANDARD = {"apiVersion", "kind", "metadata"}


def undocumented(crd_file: Path = CRD) -> list[str]:
    """`kubectl explain` paths (temporalworkerpool.spec.x.y) of schema nodes without a
    description; list items and map values are explained at the field itself."""
    crd = yaml.safe_load(crd_file.read_text())
    top = crd["spec"]["names"]["singular"]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    root = version["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            here = f"{path}.{name}"
            if not (path == top and name in STANDARD):
                if not sub.get("description"):
                    missing.append(here)
                walk(sub, here)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], path)

    if not root.get("description"):
        missing.append(top)
    walk(root, top)
    return sorted(set(missing))


@pytest.mark.parametrize("crd_file", CRDS, ids=lambda p: p.stem)
def test_every_field_has_a_description(crd_file: Path) -> None:
    assert undocumented(crd_file) == []


def test_own_top_level_fields_are_documented() -> None:
    """The fields users meet first are documented today and must stay so."""
    missing = set(undocumented())
    for path in ("spec", "spec.connection", "spec.connection.address", "spec.taskQueue",
                 "spec.workflows", "spec.activities", "spec.replicas", "spec.autoscaling",
                 "spec.autoscaling.engine", "spec.gpu", "status"):  # fmt: skip
        assert f"temporalworkerpool.{path}" not in missing, path
