"""The Go tools of hack/build-tools.sh (helm, promtool, kstatus), for tests and scripts.

They live in the same cache as the control plane (`$WORKERPOOLS_CACHE/tools/bin`). Tests that
need one call `require_tool`, which skips with a hint (`make tools`) when the tool is missing,
except under CI, where a missing tool fails the run: a green CI run means the tests ran.
"""

from __future__ import annotations

import os
from pathlib import Path

TOOLS = ("helm", "promtool", "kstatus")


def cache_dir() -> Path:
    cache = os.environ.get("WORKERPOOLS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workerpools"
    )
    return Path(cache)


def tools_dir() -> Path:
    return cache_dir() / "tools" / "bin"


def gitops_crds_dir() -> Path:
    """Upstream CRDs of the GitOps examples, copied by hack/build-tools.sh."""
    versions = dict(
        line.split("=", 1)
        for line in (Path(__file__).resolve().parents[1] / "hack" / "versions.env")
        .read_text()
        .splitlines()
        if "=" in line and not line.startswith("#")
    )
    name = "-".join(
        versions[k] for k in ("ARGOCD_VERSION", "FLUX_KUSTOMIZE_VERSION", "FLUX_SOURCE_VERSION")
    )
    return cache_dir() / "crds" / f"gitops-{name}"


def tool_path(name: str) -> Path | None:
    """The cached build of `name` (the pinned version, not whatever is on PATH), or None."""
    cached = tools_dir() / name
    return cached if cached.exists() and os.access(cached, os.X_OK) else None


def require_tool(name: str) -> str:
    """Path of the tool, or skip (fail under CI) the calling test with how to build it."""
    import pytest  # only tests call this

    path = tool_path(name)
    if path is None:
        reason = (
            f"{name} not built: run `make tools` (hack/build-tools.sh, cached in {tools_dir()})"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return str(path)
