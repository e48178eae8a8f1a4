"""GitOps, without a cluster: Argo CD's health check (examples/gitops/argocd/health.lua) and
Flux's kstatus run on pools recorded from the e2e bed in each state (tests/unit/fixtures/pools,
recorded by tests/e2e/test_gitops_health.py), and the examples in examples/gitops/ validated
against the upstream CRD schemas (Argo CD Application, Flux Kustomization and GitRepository,
fetched from their Go modules by hack/build-tools.sh) or, for the HelmRelease, helm-controller's
own Go type; their chart values against the chart's values.schema.json."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from testbed.tools import gitops_crds_dir, require_tool
from tests.gitops_health import FIXTURES, HEALTH_LUA, argocd_health, kstatus

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
CHART = ROOT / "charts" / "workerpool-operator"

# Recorded state -> (Argo CD status, kstatus status)
EXPECTED = {
    "healthy": ("Healthy", "Current"),
    "zero": ("Healthy", "Current"),
    "rolling": ("Progressing", "InProgress"),
    # kstatus knows Ready/Reconciling/Stalled, not Degraded: Stalled mirrors it (docs/api.md).
    "degraded": ("Degraded", "Failed"),
}


def fixture(state: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / f"{state}.yaml").read_text())  # type: ignore[no-any-return]


def test_fixtures_cover_every_state() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_argocd_health_of_recorded_pools(state: str) -> None:
    health = argocd_health(fixture(state))
    assert health["status"] == EXPECTED[state][0], health
    assert health["message"]


def test_argocd_messages_name_the_reason() -> None:
    assert argocd_health(fixture("degraded"))["message"].startswith("RolloutStalled:")
    assert argocd_health(fixture("healthy"))["message"].startswith("Available:")


def test_argocd_waits_for_the_operator() -> None:
    """A new generation not yet observed, or no status at all, is Progressing."""
    pool = fixture("healthy")
    pool["metadata"]["generation"] += 1
    assert argocd_health(pool)["status"] == "Progressing"
    bare = fixture("healthy")
    del bare["status"]
    assert argocd_health(bare)["status"] == "Progressing"
    degraded_but_stale = fixture("degraded")
    degraded_but_stale["metadata"]["generation"] += 1
    assert argocd_health(degraded_but_stale)["status"] == "Progressing"


def test_kstatus_of_recorded_pools() -> None:
    binary = require_tool("kstatus")
    got = kstatus(binary, [fixture(s) for s in sorted(EXPECTED)])
    assert {s: got[s]["status"] for s in EXPECTED} == {s: e[1] for s, e in EXPECTED.items()}


def test_kstatus_in_progress_while_a_new_generation_rolls() -> None:
    binary = require_tool("kstatus")
    pool = fixture("healthy")
    pool["metadata"]["generation"] += 1
    got = kstatus(binary, [pool])["healthy"]
    assert got["status"] == "InProgress", got
    assert "observed generation" in got["message"]


def test_argocd_cm_carries_the_same_lua() -> None:
    cm = yaml.safe_load((GITOPS / "argocd" / "argocd-cm.yaml").read_text())
    key = "resource.customizations.health.workerpools.io_TemporalWorkerPool"
    assert cm["data"][key] == HEALTH_LUA.read_text()


def test_docs_reference_the_lua_file() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    assert "examples/gitops/argocd/health.lua" in api
    assert "hs = {status" not in api, "docs/api.md must reference health.lua, not copy it"


# --- examples/gitops against upstream schemas ------------------------------------------------


def strict(schema: Any) -> Any:
    """A CRD schema as the API server reads it with strict field validation: objects with
    declared properties reject unknown fields unless they preserve them."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schema(file: str, version: str) -> dict[str, Any]:
    path = gitops_crds_dir() / file
    if not path.exists():
        require_tool("gitops-crds")  # skips (fails under CI) with the hint to run make tools
    crd = yaml.safe_load(path.read_text())
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(copy.deepcopy(ver["schema"]["openAPIV3Schema"]))
    schema["properties"]["metadata"] = {"type": "object"}
    return schema  # type: ignore[no-any-return]


SCHEMA_CHECKED = {
    "argocd/application.yaml": ("application-crd.yaml", "v1alpha1"),
    "argocd/pools-application.yaml": ("application-crd.yaml", "v1alpha1"),
    "flux/kustomization.yaml": ("kustomize.toolkit.fluxcd.io_kustomizations.yaml", "v1"),
    "flux/gitrepository.yaml": ("source.toolkit.fluxcd.io_gitrepositories.yaml", "v1"),
}


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((GITOPS / name).read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(SCHEMA_CHECKED))
def test_example_matches_upstream_crd(name: str) -> None:
    file, version = SCHEMA_CHECKED[name]
    doc = example(name)
    assert doc["apiVersion"].endswith(f"/{version}")
    jsonschema.Draft7Validator(crd_schema(file, version)).validate(doc)


def test_strict_schema_catches_a_typo() -> None:
    doc = example("flux/kustomization.yaml")
    doc["spec"]["prunne"] = True
    with pytest.raises(jsonschema.ValidationError, match="prunne"):
        jsonschema.Draft7Validator(crd_schema(*SCHEMA_CHECKED["flux/kustomization.yaml"])).validate(
            doc
        )


def validate_helmrelease(doc: dict[str, Any]) -> dict[str, str]:
    binary = require_tool("kstatus")
    out = subprocess.run(
        [binary, "validate"], input=yaml.safe_dump(doc), capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout  # fmt: skip
    return json.loads(out)  # type: ignore[no-any-return]


def test_helmrelease_decodes_strictly_into_helm_controllers_type() -> None:
    doc = example("flux/helmrelease.yaml")
    assert validate_helmrelease(doc)["status"] == "Valid"
    typo = copy.deepcopy(doc)
    typo["spec"]["chart"]["spec"]["sourceRefs"] = typo["spec"]["chart"]["spec"].pop("sourceRef")
    result = validate_helmrelease(typo)
    assert result["status"] == "Invalid"
    assert "sourceRefs" in result["message"]


def test_examples_point_at_this_repository() -> None:
    app = example("argocd/application.yaml")
    assert (ROOT / app["spec"]["source"]["path"] / "Chart.yaml").exists()
    pools = example("argocd/pools-application.yaml")
    assert (ROOT / pools["spec"]["source"]["path"]).is_dir()
    hr = example("flux/helmrelease.yaml")
    assert (ROOT / hr["spec"]["chart"]["spec"]["chart"] / "Chart.yaml").exists()
    ks = example("flux/kustomization.yaml")
    assert (ROOT / ks["spec"]["path"]).is_dir()
    repo = example("flux/gitrepository.yaml")
    assert hr["spec"]["chart"]["spec"]["sourceRef"]["name"] == repo["metadata"]["name"]
    assert ks["spec"]["sourceRef"]["name"] == repo["metadata"]["name"]


@pytest.mark.parametrize(
    ("name", "path"),
    [("argocd/application.yaml", ("spec", "source", "helm", "valuesObject")),
     ("flux/helmrelease.yaml", ("spec", "values"))],
)  # fmt: skip
def test_example_values_fit_the_chart(name: str, path: tuple[str, ...], tmp_path: Path) -> None:
    values: Any = example(name)
    for key in path:
        values = values[key]
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(values, schema)
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    helm = require_tool("helm")
    result = subprocess.run([helm, "template", "wp", str(CHART), "-f", str(file)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
