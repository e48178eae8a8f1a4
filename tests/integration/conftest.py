"""Run the real operator (kopf, in-process via KopfRunner) against the real control plane."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.cluster import wait_established

# Short resync so idle-write and drift tests see several cycles; read when handlers import.
os.environ.setdefault("WORKERPOOL_RESYNC_SECONDS", "3")

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"


@pytest.fixture(scope="session")
def crd_installed(kube_cluster) -> str:  # type: ignore[no-untyped-def]
    """The generated CRD, applied and Established."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kube_cluster.kubeconfig, "temporalworkerpools.workerpools.io")
    return str(CRD)


@pytest.fixture(scope="session")
def operator(kube_cluster, crd_installed) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """One operator for the session, watching all namespaces with the test kubeconfig."""
    from kopf.testing import KopfRunner

    os.environ["KUBECONFIG"] = kube_cluster.kubeconfig
    args = ["run", "--all-namespaces", "--standalone", "-m", "workerpool_operator.app"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception
