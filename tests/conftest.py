"""Session-wide fixtures: the real Temporal dev server and the real local control plane.

Each lives in its own plugin module so the two can evolve independently; `pool_crd` installs
the generated TemporalWorkerPool CRD once per session for every test that creates pools.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testbed.cluster import wait_established

if TYPE_CHECKING:  # imported by pytest_plugins below, after assertion rewriting is set up
    from testbed.pytest_cluster import KubeCluster

pytest_plugins = ["testbed.pytest_temporal", "testbed.pytest_cluster", "testbed.pytest_realnode"]

POOL_CRD = Path(__file__).resolve().parents[1] / "crds" / "workerpools.io_temporalworkerpools.yaml"


@pytest.fixture(scope="session")
def pool_crd(kube_cluster: KubeCluster) -> Path:
    """The generated CRDs (the pool's and the two connection kinds), applied and Established."""
    for path in sorted(POOL_CRD.parent.glob("workerpools.io_*.yaml")):
        kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    wait_established(
        kube_cluster.kubeconfig,
        *(f"{crd}.workerpools.io"
          for crd in ("temporalworkerpools", "temporalconnections", "clustertemporalconnections")),
    )  # fmt: skip
    return POOL_CRD
