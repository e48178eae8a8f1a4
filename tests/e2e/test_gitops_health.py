"""GitOps health of real pools: Argo CD's health check (examples/gitops/argocd/health.lua, run
with lupa) and Flux's kstatus (hack/kstatus, built on sigs.k8s.io/cli-utils) read pools the
operator brought into each state on the bed: Healthy, Progressing (rolling, pods cannot be
scheduled), Degraded (rollout stalled) and scaled to 0 replicas.

With TWP_RECORD_GITOPS_FIXTURES=1 the objects are written to tests/unit/fixtures/pools/, which
tests/unit/test_gitops.py checks without a cluster.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.tools import require_tool
from testbed.wait import until
from tests import builders
from tests.e2e.operator_process import OperatorProcess
from tests.gitops_health import FIXTURES, argocd_health, kstatus, slim

ROOT = Path(__file__).resolve().parents[2]
UNSCHEDULABLE = {"workerpools.io/no-such-node": "true"}

# state -> (pool spec overrides, Argo CD status, kstatus status)
EXPECTED: dict[str, tuple[dict[str, Any], str, str]] = {
    "healthy": ({"replicas": 2}, "Healthy", "Current"),
    "zero": ({"replicas": 0}, "Healthy", "Current"),
    "rolling": ({"replicas": 2, "template": {"nodeSelector": UNSCHEDULABLE}}, "Progressing",
                "InProgress"),
    # Stalled mirrors Degraded: kstatus reads it as Failed
    "degraded": ({"replicas": 1, "template": {"nodeSelector": UNSCHEDULABLE}}, "Degraded",
                 "Failed"),
}  # fmt: skip


def pool(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return builders.pool(name, connection={"address": "temporal:7233"}, **overrides)


def conditions(kube: Any, ns: str, name: str) -> dict[str, dict[str, Any]]:
    status = kube.get("twp", name, namespace=ns).get("status") or {}
    return {c["type"]: c for c in status.get("conditions") or []}


def current(kube: Any, ns: str, name: str) -> bool:
    obj = kube.get("twp", name, namespace=ns)
    return bool(
        (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    )


@pytest.fixture
def operator(kube_cluster: Any, namespace: str, tmp_path: Path) -> Any:
    op = OperatorProcess(kube_cluster.kubeconfig, ["-n", namespace], tmp_path / "operator.log")
    yield op
    op.stop()


@pytest.mark.usefixtures("pool_crd")
def test_argocd_and_kstatus_read_real_pools(
    kube_cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    kstatus_bin = require_tool("kstatus")
    kube, ns = kube_cluster, namespace
    for state, (spec, _, _) in EXPECTED.items():
        kube.apply(pool(state, spec), namespace=ns)

    def state_reached(state: str) -> bool:
        if not current(kube, ns, state):
            return False
        c = conditions(kube, ns, state)
        status = {t: v.get("status") for t, v in c.items()}
        return {
            "healthy": status.get("Ready") == "True",
            "zero": status.get("Ready") == "True",
            # Pods created but never ready: the operator reports Ready=False (ReplicasNotReady).
            "rolling": status.get("Ready") == "False" and status.get("Degraded") == "False",
            "degraded": status.get("Degraded") == "True",
        }[state]

    # A stalled rollout: the Deployment's own progress deadline passes while its pods cannot be
    # scheduled (the operator does not own progressDeadlineSeconds, so the patch stays).
    until(lambda: kube.exists("deployment", "degraded", namespace=ns), "degraded's Deployment")
    kube.kubectl("patch", "deployment", "degraded", "-n", ns, "--type=merge",
                 "-p", '{"spec": {"progressDeadlineSeconds": 1}}')  # fmt: skip
    for state in EXPECTED:
        until(functools.partial(state_reached, state), f"pool {state!r} in its state")

    # kubectl get workerpools -o wide: engine, runtime image and Temporal address too.
    wide = kube.kubectl("get", "workerpools", "healthy", "-o", "wide", "-n", ns).splitlines()
    header, row = wide[0].split(), wide[1].split()
    for column in ("ENGINE", "RUNTIME", "CONNECTION"):
        assert column in header, header
    assert "temporal:7233" in row
    # status.runtimeImage: the tag in tests/unit/fixtures/pools
    assert "workerpools/worker-runtime:0.3.0" in row

    objects = {state: slim(kube.get("twp", state, namespace=ns)) for state in EXPECTED}
    statuses = kstatus(kstatus_bin, list(objects.values()))
    for state, obj in objects.items():
        _, argo, flux = EXPECTED[state]
        health = argocd_health(obj)
        assert health["status"] == argo, (state, health, obj["status"])
        assert statuses[state]["status"] == flux, (state, statuses[state])

    if os.environ.get("TWP_RECORD_GITOPS_FIXTURES"):
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for state, obj in objects.items():
            (FIXTURES / f"{state}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
