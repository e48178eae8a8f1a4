"""Pytest plugin: a real Kubernetes API for e2e tests (local kwok control plane or kind).

Fixtures:
    kube_cluster (session): a `KubeCluster` with `.kubeconfig` (path str), `.local` (True for
        the kwokctl test bed), `.kubectl(*args)`, `.run(*args)`, `.apply(manifest)`,
        `.delete(...)`, `.get(...)`, `.exists(...)`, `.wait_for(probe, what=...)`, `.env()` and
        `.api_client()`.
        Source: `TWP_E2E_KUBECONFIG` (any cluster, e.g. kind from hack/kind-up.sh; nothing is
        started or stopped) or else the local test bed, reused when healthy and stopped at the
        end only if this session started it and no other session still uses it.
    namespace (function): name of a fresh namespace (its default ServiceAccount exists), deleted
        after the test without waiting for finalisation.

Tests using these fixtures are marked `e2e` automatically. Missing binaries skip the tests with
a hint to run `make controlplane`, except under `CI`, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cluster import (
    LocalCluster,
    TestbedError,
    api_ready,
    default_service_account_exists,
    kubectl,
)
from testbed.wait import until

Manifest = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]


class KubeCluster:
    """Handle on the cluster under test: kubectl with the right kubeconfig plus small helpers."""

    def __init__(self, kubeconfig: str, *, local: bool) -> None:
        self.kubeconfig = kubeconfig
        self.local = local

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with full result (returncode, stdout, stderr): for asserting on rejections."""
        return kubectl(self.kubeconfig, *args, input=input, check=check, timeout=timeout)

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        """kubectl that must succeed; returns stdout."""
        return self.run(*args, input=input, check=True, timeout=timeout).stdout

    def apply(
        self,
        manifest: Manifest,
        *,
        namespace: str | None = None,
        check: bool = True,
        server_side: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl apply a YAML string, one object dict or a list of them.

        With check=False a rejection is returned (returncode != 0, the API's message in
        stderr) instead of raised; admission warnings are in stderr either way.
        """
        if isinstance(manifest, str):
            doc = manifest
        elif isinstance(manifest, Mapping):
            doc = yaml.safe_dump(dict(manifest))
        else:
            doc = yaml.safe_dump_all([dict(m) for m in manifest])
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        if namespace:
            args += ["-n", namespace]
        return self.run(*args, input=doc, check=check)

    def delete(
        self, kind: str, name: str, *, namespace: str | None = None, wait: bool = True
    ) -> None:
        """Delete one object (background propagation, like `kubectl delete`)."""
        args = ["delete", kind, name, "--ignore-not-found", f"--wait={str(wait).lower()}"]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(*args)

    def get(
        self,
        kind: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> dict[str, Any]:
        """The object (or, without name, the List) as parsed JSON."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        result: dict[str, Any] = json.loads(self.kubectl(*args))
        return result

    def exists(self, kind: str, name: str, *, namespace: str | None = None) -> bool:
        """True while the object can be read (a deleted-but-finalising object still exists)."""
        args = ["get", kind, name, "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        return self.run(*args).returncode == 0

    def wait_for(self, probe: Callable[[], Any], *, what: str, timeout: float = 300) -> Any:
        """testbed.wait.until for this cluster's probes: a NotFound is "not yet"."""
        return until(probe, what, wait_s=timeout)

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (an operator under test) pointing at this cluster."""
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def api_client(self) -> Any:
        """kubernetes.client.ApiClient for this cluster (no global configuration touched)."""
        from kubernetes import config  # imported lazily: only tests using it pay the cost

        # Through Any: the client library is untyped, and mypy sees it as missing or untyped
        # depending on the environment, so no single `type: ignore` fits both.
        new_client: Any = config.new_client_from_config
        return new_client(config_file=self.kubeconfig)


def _fail_or_skip(reason: str) -> None:
    """Missing prerequisites fail in CI (a green run must mean the e2e tests ran) and skip else."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """One cluster for the whole session: external (TWP_E2E_KUBECONFIG) or the local bed."""
    if shutil.which("kubectl") is None:
        _fail_or_skip("kubectl is not on PATH; the e2e tests drive the cluster with it")
    external = os.environ.get("TWP_E2E_KUBECONFIG")
    if external:
        path = Path(external).expanduser()
        if not api_ready(path):
            pytest.fail(
                f"TWP_E2E_KUBECONFIG={external}: API server not reachable or not ready",
                pytrace=False,
            )
        yield KubeCluster(str(path), local=False)
        return

    cluster = LocalCluster()
    missing = cluster.missing_binaries()
    if missing:
        _fail_or_skip(
            f"control-plane binaries missing in {cluster.bin_dir} ({', '.join(missing)}): "
            "run `make controlplane` once (or set TWP_E2E_KUBECONFIG to use another cluster)"
        )
    try:
        kubeconfig = cluster.acquire()
    except TestbedError as exc:
        pytest.fail(f"local test cluster failed to start:\n{exc}", pytrace=False)
    try:
        yield KubeCluster(str(kubeconfig), local=True)
    finally:
        cluster.release()


def _namespace_name(node_name: str) -> str:
    """DNS-1123 label derived from the test name, unique per call."""
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, ready for pods (default ServiceAccount created)."""
    name = _namespace_name(request.node.name)
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.wait_for(
        lambda: default_service_account_exists(kube_cluster.kubeconfig, name),
        what=f"serviceaccount default in namespace {name}",
    )
    try:
        yield name
    finally:
        # No wait: finalisation (pods terminating on fake nodes) is not the test's business.
        kube_cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "kube_cluster" in fixtures or "namespace" in fixtures:
            item.add_marker(pytest.mark.e2e)
