"""Module-scoped autoscaler fixtures shared by the e2e files (tests/e2e/beds.py): one KEDA or
one metrics-server per module, removed afterwards. A module may override `keda` (test_keda.py
gives KEDA a CA for its TLS front)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testbed import metrics_server as msbed
from testbed.pytest_cluster import KubeCluster
from tests.e2e.beds import keda_on_bed, metrics_server_on_bed


@pytest.fixture(scope="module")
def keda(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """KEDA running and aggregated for this module."""
    with keda_on_bed(kube_cluster, tmp_path_factory.mktemp("keda")) as running:
        yield running


@pytest.fixture(scope="module")
def metrics_server(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[msbed.MetricsServer]:
    """metrics-server scraping kwok, aggregated as metrics.k8s.io, for this module."""
    with metrics_server_on_bed(kube_cluster, tmp_path_factory.mktemp("metrics-server")) as ms:
        yield ms
