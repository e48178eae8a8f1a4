"""One version number everywhere: every artifact that names a release names this one."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from worker_runtime import __version__
from workerpool_operator.api import v1alpha1 as api

ROOT = Path(__file__).resolve().parents[2]


def test_chart_version_and_app_version_are_the_release() -> None:
    chart = yaml.safe_load((ROOT / "charts/workerpool-operator/Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__)


def test_manifests_run_the_release() -> None:
    kustomization = yaml.safe_load((ROOT / "manifests/kustomization.yaml").read_text())
    tags = {i["name"]: i["newTag"] for i in kustomization["images"]}
    assert tags == {"workerpools/operator": __version__}
    deployment = (ROOT / "manifests/deployment.yaml").read_text()
    assert f"image: workerpools/operator:{__version__}" in deployment


def test_pools_default_to_the_release_runtime() -> None:
    assert __version__ == api.DEFAULT_IMAGE_TAG


def test_every_release_tag_in_docs_and_samples_is_the_release() -> None:
    """A `worker-runtime:X.Y.Z` or `tag: X.Y.Z` left behind by a bump is a stale instruction."""
    pattern = re.compile(r"(?:worker-runtime(?:-gpu)?:|operator:|\btag: )(\d+\.\d+\.\d+)\b")
    docs = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    files = [*docs, *(ROOT / "manifests").rglob("*.yaml")]
    stale = {
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in files
        for m in pattern.finditer(path.read_text())
        if m.group(1) != __version__
    }
    assert not stale, sorted(stale)


def test_changelog_has_a_section_for_the_release() -> None:
    assert f"\n## {__version__}\n" in (ROOT / "CHANGELOG.md").read_text()
