"""The real operator process against the real control plane, one per test, scoped to the
test's own namespace, with its settings passed to it (never through this process's
environment): no other test's operator reconciles these objects, and this one none of theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.cluster import wait_established
from testbed.operator import OperatorProcess, foreign_writers
from testbed.wait import until

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
# Short resync so idle-write and drift tests see several cycles.
RESYNC_S = 3


@pytest.fixture(scope="session")
def crd_installed(kube_cluster) -> str:  # type: ignore[no-untyped-def]
    """The generated CRD, applied and Established."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kube_cluster.kubeconfig, "temporalworkerpools.workerpools.io")
    return str(CRD)


@pytest.fixture
def operator(  # type: ignore[no-untyped-def]
    kube_cluster, crd_installed, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`python -m workerpool_operator -n <the test's namespace>`, alive to the end of the test,
    and the only operator that wrote to the test's objects."""
    op = OperatorProcess(
        kube_cluster.kubeconfig,
        namespace,
        *("-n", namespace, "--resync-seconds", str(RESYNC_S)),
        log_dir=tmp_path,
    )
    try:
        until(op.live, "the operator to serve /healthz", wait_s=120)
        yield op
        assert op.alive(), op.log_path.read_text()[-3000:]
        assert op.tracebacks() == 0, op.log_path.read_text()[-3000:]
        foreign = foreign_writers(kube_cluster, namespace, op.field_manager_suffix)
        assert not foreign, f"another operator wrote to this test's objects: {foreign}"
    finally:
        op.stop()
