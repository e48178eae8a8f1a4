"""Pytest plugin: the bed's real kubelet node and the runtime image imported into it.

Fixtures:
    real_node (session): a started `testbed.realnode.RealNode` joined to the local bed
        (`kube_cluster`), shared by parallel sessions through leases and stopped by the last
        session that needs it, if a test session started it. Put a pod on it with
        `testbed.realnode.placement()`; pods get addresses in `realnode.SUBNET`, and reach the
        host only at `realnode.GATEWAY`.
    runtime_image (session): the runtime image (`workerpools/worker-runtime:<version>-test`),
        built with hack/build-images.sh and imported into the node's containerd; pods use it
        with `imagePullPolicy: Never`.

Without what the node needs (root, containerd, runc, CNI plugins, the kubelet, Docker) the
tests are skipped with the reason; under `CI` they fail instead, so a green CI run always
means they ran. A node that has all it needs and still does not start fails the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testbed.cluster import TestbedError
from testbed.pytest_cluster import KubeCluster
from testbed.realnode import RUNTIME_REPO, RealNode, build_runtime_image
from worker_runtime import __version__

RUNTIME_TAG = f"{__version__}-test"  # the tag tests/runtime/test_image.py builds too: shared layers
RUNTIME_IMAGE = f"{RUNTIME_REPO}:{RUNTIME_TAG}"


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_node(kube_cluster: KubeCluster) -> Iterator[RealNode]:
    """The kubelet node real-0 on the local bed, Ready."""
    if not kube_cluster.local:
        pytest.skip("the real kubelet node joins the local bed only (TWP_E2E_KUBECONFIG is set)")
    node = RealNode()
    missing = node.missing()
    if missing:
        _fail_or_skip("the real node cannot run here; missing: " + "; ".join(missing))
    try:
        node.acquire(kube_cluster.kubeconfig)
    except TestbedError as exc:
        pytest.fail(f"the real node did not start:\n{exc}", pytrace=False)
    try:
        yield node
    finally:
        if node.release(kube_cluster.kubeconfig):
            # this session stopped it: nothing of it may be left behind
            left = node.leftovers()
            assert not left, f"the real node left behind: {left}"


@pytest.fixture(scope="session")
def runtime_image(real_node: RealNode) -> str:
    """The runtime image, present in the node's containerd; returns its reference."""
    try:
        with real_node.lock():
            build_runtime_image(RUNTIME_TAG)
            real_node.import_image(RUNTIME_IMAGE)
    except TestbedError as exc:
        pytest.fail(str(exc), pytrace=False)
    return RUNTIME_IMAGE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "real_node" in fixtures or "runtime_image" in fixtures:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.docker)  # images come from the Docker engine
