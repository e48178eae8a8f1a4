"""The optional ValidatingAdmissionPolicy (manifests/admission/) on the bed's kube-apiserver.

It applies only in namespaces labelled workerpools.io/pool-policy=restricted, so the shared
bed's other namespaces are untouched; the test labels its own namespace only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testbed.pytest_cluster import KubeCluster
from tests import builders

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "manifests" / "admission"


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Pools."""


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return builders.pool(name, connection={"address": "t:7233"}, workflows=("a:W",), **spec)


HOSTPATH = {
    "volumes": [{"name": "node", "hostPath": {"path": "/"}}],
    "volumeMounts": [{"name": "node", "mountPath": "/host"}],
}


def test_pool_template_policy_denies_what_tenants_may_not_run(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    k, ns = kube_cluster, namespace
    resources = k.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name")
    assert "validatingadmissionpolicies.admissionregistration.k8s.io" in resources
    k.kubectl("apply", "-k", str(POLICY))
    try:
        # before the label, the namespace is not restricted
        assert k.apply(pool("free", template=HOSTPATH), namespace=ns, check=False).returncode == 0
        k.kubectl("label", "namespace", ns, "workerpools.io/pool-policy=restricted")
        cases: dict[str, tuple[dict[str, Any], str]] = {
            "hostpath": ({"template": HOSTPATH}, "hostPath volumes are not allowed"),
            "other-sa": (
                {"template": {"serviceAccountName": "cluster-admin-sa"}},
                "run as their own",
            ),
            "system-priority": (
                {"template": {"priorityClassName": "system-node-critical"}},
                "system-* priority classes",
            ),
            "runtime": ({"gpu": {"count": 1, "runtimeClassName": "kata"}}, "nvidia runtime"),
        }
        deadline = time.monotonic() + 30  # a new policy takes effect within a few seconds
        for name, (spec, message) in cases.items():
            while True:
                result = k.apply(pool(name, **spec), namespace=ns, check=False)
                if result.returncode != 0 or time.monotonic() > deadline:
                    break
                k.kubectl("delete", "twp", name, "-n", ns, "--ignore-not-found")
                time.sleep(1)
            assert result.returncode != 0, (
                f"{name} admitted: is the ValidatingAdmissionPolicy plugin enabled on the "
                "bed's kube-apiserver?"
            )
            assert "workerpools-pool-template" in result.stderr, result.stderr
            assert message in result.stderr, result.stderr
        # what tenants may do still passes: the pool's own name as ServiceAccount, a PVC
        ok = pool(
            "ok",
            template={
                "serviceAccountName": "ok",
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            },
        )
        assert k.apply(ok, namespace=ns, check=False).returncode == 0
    finally:
        k.kubectl("label", "namespace", ns, "workerpools.io/pool-policy-", "--overwrite")
        k.kubectl("delete", "-k", str(POLICY), "--ignore-not-found")
