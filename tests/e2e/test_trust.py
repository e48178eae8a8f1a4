"""Trust under change: ownership of names, replicas handed over between engines, status reasons.

The operator's engine runs in the test's event loop, scoped to the test's namespace, against
the real API server (kwok nodes). The Builtin engine points at an address where nothing
listens, so it holds replicas (clamped into [min, max]) instead of scaling on a backlog.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.operator import running_operator
from testbed.pytest_cluster import KubeCluster
from testbed.wait import eventually
from tests import builders
from tests.builders import NOWHERE, condition, never_below, patch_spec, replicas_owners
from tests.builders import deployment_replicas as replicas
from workerpool_operator.names import MANAGERS

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def crd(pool_crd: object) -> None:
    """Every test here creates pools."""


def operator(cluster: KubeCluster, namespace: str) -> Any:
    return running_operator(cluster.kubeconfig, namespace)


def pool(name: str, **spec: Any) -> dict[str, Any]:
    """A pool whose Temporal is unreachable: the Builtin scaler holds its replicas."""
    return builders.pool(name, connection=NOWHERE, **spec)


async def test_switching_engines_never_drops_replicas_and_hands_the_field_over(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    name = "orders"
    kube_cluster.apply(pool(name, replicas=10), namespace=namespace)
    async with operator(kube_cluster, namespace):
        await eventually(lambda: replicas(kube_cluster, namespace, name) == 10, "10 replicas")
        assert replicas_owners(kube_cluster, namespace, name) == {("workerpool-operator", "Apply")}

        # fixed -> Builtin (min 2, max 20), Temporal unreachable: 10 are held, not 1
        patch_spec(
            kube_cluster,
            namespace,
            name,
            {
                "replicas": None,
                "autoscaling": {"engine": "Builtin", "minReplicas": 2, "maxReplicas": 20},
            },
        )
        await never_below(kube_cluster, namespace, name, 10, 6)
        owners = replicas_owners(kube_cluster, namespace, name)
        assert (MANAGERS.scaler, "Apply") in owners
        assert ("workerpool-operator", "Apply") not in owners
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name, "AutoscalingReady").get("reason")
                == "TemporalUnavailable"
            ),
            "the scaler to report Temporal unavailable",
        )

        # Builtin -> HPA: nothing drops while the HPA has no metrics to act on
        patch_spec(
            kube_cluster,
            namespace,
            name,
            {
                "resources": {"requests": {"cpu": "100m"}},
                "autoscaling": {
                    "engine": "HPA",
                    "minReplicas": 3,
                    "maxReplicas": 20,
                    "cpuUtilization": 70,
                },
            },
        )
        await eventually(lambda: kube_cluster.exists("hpa", name, namespace=namespace), "HPA")
        await never_below(kube_cluster, namespace, name, 10, 4)

        # HPA -> fixed 4: the spec decides, the HPA goes
        patch_spec(kube_cluster, namespace, name, {"autoscaling": None, "replicas": 4})
        await eventually(lambda: replicas(kube_cluster, namespace, name) == 4, "fixed 4")
        await eventually(lambda: not kube_cluster.exists("hpa", name, namespace=namespace),
                         "HPA pruned")  # fmt: skip
        assert ("workerpool-operator", "Apply") in replicas_owners(kube_cluster, namespace, name)

        # fixed -> KEDA: the field goes to the handover manager at 4, for KEDA's HPA to take
        patch_spec(
            kube_cluster,
            namespace,
            name,
            {
                "replicas": None,
                "autoscaling": {"engine": "KEDA", "minReplicas": 1, "maxReplicas": 20},
            },
        )
        await eventually(lambda: kube_cluster.exists("scaledobject", name, namespace=namespace),
                         "ScaledObject")  # fmt: skip
        await never_below(kube_cluster, namespace, name, 4, 4)
        owners = replicas_owners(kube_cluster, namespace, name)
        assert (MANAGERS.handover, "Apply") in owners
        assert ("workerpool-operator", "Apply") not in owners

        # KEDA -> Builtin with min above the current replicas: the scaler raises to min
        patch_spec(
            kube_cluster,
            namespace,
            name,
            {"autoscaling": {"engine": "Builtin", "minReplicas": 6, "maxReplicas": 20}},
        )
        await eventually(lambda: replicas(kube_cluster, namespace, name) == 6,
                         "held replicas clamped up to minReplicas")  # fmt: skip


async def test_foreign_objects_with_the_pools_name_are_never_taken_over(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    name = "orders"
    user_hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 5,
        },
    }
    user_pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    kube_cluster.apply([user_hpa, user_pdb], namespace=namespace)
    before = {k: kube_cluster.get(k, name, namespace=namespace)["spec"] for k in ("hpa", "pdb")}
    hpa_spec = {"engine": "HPA", "minReplicas": 1, "maxReplicas": 3, "cpuUtilization": 70}
    kube_cluster.apply(
        pool(name, resources={"requests": {"cpu": "100m"}}, autoscaling=hpa_spec),
        namespace=namespace,
    )
    async with operator(kube_cluster, namespace):
        await eventually(
            lambda: condition(kube_cluster, namespace, name).get("reason") == "NameConflict",
            "NameConflict",
        )
        ready = condition(kube_cluster, namespace, name)
        assert ready["status"] == "False"
        assert "HorizontalPodAutoscaler" in ready["message"]
        assert "PodDisruptionBudget" in ready["message"]
        assert condition(kube_cluster, namespace, name, "Degraded")["status"] == "True"
        # everything else of the pool is reconciled
        assert kube_cluster.exists("deployment", name, namespace=namespace)
        assert kube_cluster.exists("service", name, namespace=namespace)
        for k in ("hpa", "pdb"):
            live = kube_cluster.get(k, name, namespace=namespace)
            assert live["spec"] == before[k], k
            assert not live["metadata"].get("ownerReferences"), k
        events = kube_cluster.get("events", namespace=namespace)["items"]
        assert any(
            e["reason"] == "NameConflict" and e["involvedObject"]["name"] == name for e in events
        )

        # handing the PDB over takes an explicit annotation
        kube_cluster.kubectl("annotate", "pdb", name, "-n", namespace, "workerpools.io/adopt=true")
        await eventually(
            lambda: bool(
                kube_cluster.get("pdb", name, namespace=namespace)["metadata"].get(
                    "ownerReferences"
                )
            ),
            "the annotated PDB adopted",
        )

    # deleting the pool garbage-collects what it owns, never the user's HPA
    kube_cluster.delete("twp", name, namespace=namespace)
    await eventually(
        lambda: not kube_cluster.exists("deployment", name, namespace=namespace), "GC of children"
    )
    assert kube_cluster.exists("hpa", name, namespace=namespace)


async def test_rollout_reasons_in_and_out(kube_cluster: KubeCluster, namespace: str) -> None:
    """ReplicasNotReady / RolloutInProgress, RolloutStalled, then back to Available."""
    name = "stuck"
    kube_cluster.apply(
        pool(name, replicas=1, template={"nodeSelector": {"no-such-node": "true"}}),
        namespace=namespace,
    )
    async with operator(kube_cluster, namespace):
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name).get("reason") == "ReplicasNotReady"
                and condition(kube_cluster, namespace, name, "Progressing").get("reason")
                == "RolloutInProgress"
            ),
            "ReplicasNotReady while the pod cannot be scheduled",
        )
        # the Deployment controller gives up after progressDeadlineSeconds (not a pool field)
        kube_cluster.kubectl("patch", "deployment", name, "-n", namespace, "--type=merge",
                             "-p", '{"spec": {"progressDeadlineSeconds": 1}}')  # fmt: skip
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name, "Progressing").get("reason")
                == "RolloutStalled"
            ),
            "RolloutStalled",
        )
        assert condition(kube_cluster, namespace, name, "Degraded")["status"] == "True"
        patch_spec(kube_cluster, namespace, name, {"template": {"nodeSelector": None}})
        await eventually(
            lambda: (
                condition(kube_cluster, namespace, name).get("reason") == "Available"
                and condition(kube_cluster, namespace, name, "Progressing").get("reason")
                == "RolloutComplete"
            ),
            "Available after the fix",
        )
        assert condition(kube_cluster, namespace, name, "Degraded")["status"] == "False"


async def test_apply_failed_names_the_object_and_recovers(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """A ResourceQuota refuses the pool's PDB: ApplyFailed, then Available once it is lifted."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pdbs"},
        "spec": {"hard": {"count/poddisruptionbudgets.policy": "0"}},
    }
    kube_cluster.apply(quota, namespace=namespace)
    probe = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "probe"}, "spec": {"maxUnavailable": 1}}  # fmt: skip
    await eventually(
        lambda: kube_cluster.apply(probe, namespace=namespace, check=False).returncode != 0,
        "the quota to be enforced",
    )
    kube_cluster.apply(pool("refused", replicas=1), namespace=namespace)
    async with operator(kube_cluster, namespace):
        await eventually(
            lambda: condition(kube_cluster, namespace, "refused").get("reason") == "ApplyFailed",
            "ApplyFailed",
        )
        message = condition(kube_cluster, namespace, "refused")["message"]
        assert "PodDisruptionBudget" in message
        assert "exceeded quota" in message
        assert "{" not in message  # a sentence, not the API error's raw JSON
        assert condition(kube_cluster, namespace, "refused", "Degraded")["status"] == "True"
        # everything else of the pool was written
        assert kube_cluster.exists("deployment", "refused", namespace=namespace)
        kube_cluster.delete("resourcequota", "no-pdbs", namespace=namespace)
        await eventually(
            lambda: condition(kube_cluster, namespace, "refused").get("reason") == "Available",
            "recovery once the quota is lifted (retried with backoff)",
            wait_s=180,
        )
        assert kube_cluster.exists("pdb", "refused", namespace=namespace)


async def test_a_write_the_api_server_keeps_failing_with_500_is_reported_not_silent(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """A broken admission webhook (failurePolicy Fail, nothing listening) makes every write of
    the pool's Service a 500. Retried, and from the third failure reported: ApplyFailed naming
    the Service and the server's sentence, Degraded and Stalled True; Available once fixed."""
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"broken-{namespace}"},
        "webhooks": [
            {
                "name": "broken.workerpools.test",
                # loopback, where nothing listens: the call fails at once
                "clientConfig": {"url": "https://127.0.0.1:1/validate"},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"],
                           "operations": ["CREATE", "UPDATE"]}],
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace}
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }  # fmt: skip
    kube_cluster.apply(webhook)
    try:
        probe = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe"},
                 "spec": {"ports": [{"port": 80}]}}  # fmt: skip
        await eventually(
            lambda: (
                "failed calling webhook"
                in kube_cluster.apply(probe, namespace=namespace, check=False).stderr
            ),
            "the webhook to be called",
        )
        kube_cluster.apply(pool("broken", replicas=1), namespace=namespace)
        async with operator(kube_cluster, namespace):
            await eventually(
                lambda: condition(kube_cluster, namespace, "broken").get("reason") == "ApplyFailed",
                "ApplyFailed after repeated 500s",
                lambda: condition(kube_cluster, namespace, "broken"),
            )
            message = condition(kube_cluster, namespace, "broken")["message"]
            assert "Service" in message
            assert "failed calling webhook" in message
            assert "HTTP 500" in message
            assert "still retrying" in message
            for ctype in ("Degraded", "Stalled"):
                assert condition(kube_cluster, namespace, "broken", ctype)["status"] == "True"
            kube_cluster.delete("validatingwebhookconfiguration", f"broken-{namespace}")
            await eventually(
                lambda: condition(kube_cluster, namespace, "broken").get("reason") == "Available",
                "recovery once the webhook is gone (retried with backoff)",
                lambda: condition(kube_cluster, namespace, "broken"),
            )
            assert kube_cluster.exists("service", "broken", namespace=namespace)
    finally:
        kube_cluster.run("delete", "validatingwebhookconfiguration", f"broken-{namespace}",
                         "--ignore-not-found")  # fmt: skip
