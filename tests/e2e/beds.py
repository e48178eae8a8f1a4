"""KEDA and metrics-server on the local bed for e2e tests, with the same preconditions
everywhere: the local control plane, root (both create a network namespace) and the binaries
`make tools` builds. A missing binary or root skips locally and fails under CI=true."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import keda as kedabed
from testbed import metrics_server as msbed
from testbed.pytest_cluster import KubeCluster, _fail_or_skip


@contextlib.contextmanager
def keda_on_bed(kube_cluster: KubeCluster, workdir: Path, **kwargs: Any) -> Iterator[Any]:
    """KEDA running and aggregated (testbed/keda.py `running_keda`, `kwargs` passed on)."""
    if not kube_cluster.local:
        pytest.skip("KEDA on the bed needs the local control plane (network namespace)")
    if os.geteuid() != 0:
        _fail_or_skip("KEDA on the bed needs root: testbed/keda.py creates a network namespace")
    missing = kedabed.missing_binaries()
    if missing:
        _fail_or_skip(
            f"KEDA binaries missing in {kedabed.bin_dir()} ({', '.join(missing)}): "
            "run `make tools` (hack/build-keda.sh, ~10 min cold)"
        )
    try:
        with kedabed.running_keda(kube_cluster.kubeconfig, workdir, **kwargs) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(f"KEDA did not start on the bed:\n{exc}", pytrace=False)


@contextlib.contextmanager
def metrics_server_on_bed(
    kube_cluster: KubeCluster, workdir: Path
) -> Iterator[msbed.MetricsServer]:
    """metrics-server scraping kwok, aggregated as metrics.k8s.io (testbed/metrics_server.py)."""
    if not kube_cluster.local:
        pytest.skip("metrics-server on the bed needs the local control plane (kwok, netns)")
    if os.geteuid() != 0:
        _fail_or_skip("metrics-server on the bed needs root: it creates a network namespace")
    if msbed.missing():
        _fail_or_skip(
            f"metrics-server missing in {msbed.bin_dir()}: run `make tools` "
            "(hack/build-metrics-server.sh, about 2 min cold)"
        )
    try:
        with msbed.running_metrics_server(kube_cluster.kubeconfig, workdir) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(f"metrics-server did not start on the bed:\n{exc}", pytrace=False)
