"""Smoke tests proving the e2e cluster is a real Kubernetes control plane, not a mock.

Each test exercises a component the operator's e2e tests rely on: PodSecurity admission, the
deployment/replicaset controllers with kwok-simulated kubelets, the scheduler (GPU resources and
taints), the garbage collector, and the upstream CRD schemas.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.cluster import GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TAINT, POOL_LABEL
from testbed.pytest_cluster import KubeCluster
from tests.builders import condition_of

pytestmark = pytest.mark.e2e

# kwok never pulls it; on kind (hack/kind-up.sh) a pod may land on the real node and run it.
IMAGE = "busybox:1.36"

RESTRICTED_POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def pod_spec(*, restricted: bool = True, **extra: Any) -> dict[str, Any]:
    """Minimal pod spec; restricted=True satisfies the `restricted` Pod Security Standard."""
    container: dict[str, Any] = {"name": "app", "image": IMAGE, "command": ["sleep", "3600"]}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1, **extra}
    if restricted:
        container["securityContext"] = RESTRICTED_CONTAINER_SECURITY
        spec["securityContext"] = RESTRICTED_POD_SECURITY
    return spec


def deployment(name: str, *, replicas: int = 2, restricted: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(restricted=restricted),
            },
        },
    }


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def is_ready(obj: dict[str, Any]) -> bool:
    return condition_of(obj, "Ready").get("status") == "True"


def node_names(kube: KubeCluster, selector: str) -> set[str]:
    return {n["metadata"]["name"] for n in kube.get("nodes", selector=selector)["items"]}


def test_pod_security_admission_enforces_restricted(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube = kube_cluster
    kube.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )

    # A bare pod is judged by enforce: the API server rejects it with the profile's reasons.
    rejected = kube.apply(
        pod("root-pod", **pod_spec(restricted=False)), namespace=namespace, check=False
    )
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr
    assert "allowPrivilegeEscalation != false" in rejected.stderr
    assert not kube.exists("pod", "root-pod", namespace=namespace)

    # A workload is admitted with a warning; its pods are then rejected when the
    # ReplicaSet controller creates them, which it reports as ReplicaFailure.
    bad = kube.apply(deployment("bad", restricted=False), namespace=namespace)
    assert 'would violate PodSecurity "restricted:latest"' in bad.stderr

    def replica_failure() -> str:
        sets = kube.get("replicasets", namespace=namespace, selector="app=bad")["items"]
        cond = condition_of(sets[0], "ReplicaFailure") if sets else {}
        return str(cond.get("message", ""))

    kube.wait_for(lambda: bool(replica_failure()), what="ReplicaFailure on the bad ReplicaSet")
    assert 'violates PodSecurity "restricted:latest"' in replica_failure()
    assert kube.get("pods", namespace=namespace, selector="app=bad")["items"] == []

    # A compliant workload runs: scheduled onto CPU nodes, Running and Ready via kwok.
    good = kube.apply(deployment("good", replicas=2), namespace=namespace)
    assert "would violate" not in good.stderr

    def good_ready() -> bool:
        dep = kube.get("deployment", "good", namespace=namespace)
        return int(dep.get("status", {}).get("readyReplicas", 0)) == 2

    kube.wait_for(good_ready, what="deployment good to have 2 ready replicas")
    pods = kube.get("pods", namespace=namespace, selector="app=good")["items"]
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" and is_ready(p) for p in pods)
    gpu_nodes = node_names(kube, f"{GPU_PRESENT_LABEL}=true")
    assert all(p["spec"]["nodeName"] not in gpu_nodes for p in pods)


def test_gpu_pods_need_the_toleration(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_cluster
    gpu_nodes = node_names(kube, f"{GPU_PRESENT_LABEL}=true")
    if not gpu_nodes:
        pytest.skip(f"no nodes labelled {GPU_PRESENT_LABEL}=true in this cluster")
    gpu_limits = {"resources": {"limits": {GPU_RESOURCE: "1"}}}
    toleration = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}

    tolerated = pod_spec(tolerations=[toleration])
    tolerated["containers"][0].update(gpu_limits)
    untolerated = pod_spec()
    untolerated["containers"][0].update(gpu_limits)
    kube.apply(
        [pod("gpu-ok", **tolerated), pod("gpu-no-toleration", **untolerated)], namespace=namespace
    )

    def running_ready() -> bool:
        p = kube.get("pod", "gpu-ok", namespace=namespace)
        return p["status"].get("phase") == "Running" and is_ready(p)

    kube.wait_for(running_ready, what="pod gpu-ok Running and Ready")
    assert kube.get("pod", "gpu-ok", namespace=namespace)["spec"]["nodeName"] in gpu_nodes

    # The scheduler records why it cannot place the pod: GPU nodes are tainted and CPU nodes
    # have no nvidia.com/gpu. Pending with this condition is the end state, not a timing.
    def unschedulable() -> dict[str, Any] | None:
        pod = kube.get("pod", "gpu-no-toleration", namespace=namespace)
        cond = condition_of(pod, "PodScheduled")
        return cond if cond.get("reason") == "Unschedulable" else None

    kube.wait_for(lambda: unschedulable() is not None, what="gpu-no-toleration Unschedulable")
    cond = unschedulable()
    assert cond is not None
    assert cond["status"] == "False"
    assert "untolerated taint" in cond["message"]
    assert f"Insufficient {GPU_RESOURCE}" in cond["message"]
    stuck = kube.get("pod", "gpu-no-toleration", namespace=namespace)
    assert stuck["status"]["phase"] == "Pending"
    assert "nodeName" not in stuck["spec"]


def test_garbage_collector_removes_dependents(kube_cluster: KubeCluster, namespace: str) -> None:
    kube = kube_cluster
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
        namespace=namespace,
    )
    owner_uid = kube.get("configmap", "owner", namespace=namespace)["metadata"]["uid"]
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dependent", "ownerReferences": [owner_ref]},
        },
        namespace=namespace,
    )
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}},
        namespace=namespace,
    )
    kube.delete("configmap", "owner", namespace=namespace)
    kube.wait_for(
        lambda: not kube.exists("configmap", "dependent", namespace=namespace),
        what="garbage collector to delete configmap dependent",
    )
    assert kube.exists("configmap", "bystander", namespace=namespace)

    # Cascading through controllers: Deployment -> ReplicaSet -> Pods.
    kube.apply(deployment("cascade", replicas=1), namespace=namespace)
    kube.wait_for(
        lambda: len(kube.get("pods", namespace=namespace, selector="app=cascade")["items"]) == 1,
        what="deployment cascade to create its pod",
    )
    kube.delete("deployment", "cascade", namespace=namespace, wait=False)

    def all_gone() -> bool:
        sets = kube.get("replicasets", namespace=namespace, selector="app=cascade")["items"]
        pods = kube.get("pods", namespace=namespace, selector="app=cascade")["items"]
        return not sets and not pods

    kube.wait_for(all_gone, what="ReplicaSet and pods of deleted deployment to be collected")


@pytest.mark.parametrize(
    "crd",
    [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "scaledobjects.keda.sh",
        "triggerauthentications.keda.sh",
    ],
)
def test_third_party_crd_established(kube_cluster: KubeCluster, crd: str) -> None:
    assert condition_of(kube_cluster.get("crd", crd), "Established").get("status") == "True"


def test_third_party_crd_schemas_validate(kube_cluster: KubeCluster, namespace: str) -> None:
    """The upstream schemas are enforced: objects the operator renders must really fit them."""
    kube = kube_cluster
    service_monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "workers"},
        "spec": {
            "selector": {"matchLabels": {"app": "workers"}},
            "endpoints": [{"port": "metrics", "interval": "15s"}],
        },
    }
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "workers"},
        "spec": {
            "scaleTargetRef": {"name": "workers"},
            "minReplicaCount": 1,
            "maxReplicaCount": 5,
            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}],
        },
    }
    kube.apply([service_monitor, scaled_object], namespace=namespace)
    assert kube.exists("servicemonitor", "workers", namespace=namespace)
    assert kube.exists("scaledobject", "workers", namespace=namespace)

    invalid = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "no-target"},
        "spec": {"triggers": []},
    }
    rejected = kube.apply(invalid, namespace=namespace, check=False)
    assert rejected.returncode != 0
    assert "spec.scaleTargetRef: Required value" in rejected.stderr


def test_local_bed_nodes(kube_cluster: KubeCluster) -> None:
    """The kwok nodes look like what a GPU device plugin and kubelet would register."""
    if not kube_cluster.local:
        pytest.skip("node layout is specific to the local kwok test bed")
    # The kwok nodes; real-0 (pool label "real") is there while a session runs real pods.
    nodes = {
        n["metadata"]["name"]: n
        for n in kube_cluster.get("nodes")["items"]
        if n["metadata"]["labels"].get(POOL_LABEL) != "real"
    }
    pools = {name: n["metadata"]["labels"].get(POOL_LABEL) for name, n in nodes.items()}
    assert sorted(pools.values()) == ["cpu", "cpu", "gpu", "gpu"]
    for node in nodes.values():
        assert is_ready(node)
        gpu = node["metadata"]["labels"][POOL_LABEL] == "gpu"
        assert (node["status"]["allocatable"].get(GPU_RESOURCE) == "8") is gpu
        taints = node["spec"].get("taints", [])
        assert (
            ({k: taints[0][k] for k in ("key", "value", "effect")} == GPU_TAINT)
            if gpu
            else not taints
        )


def test_hpa_controller_enforces_min_replicas(kube_cluster: KubeCluster, namespace: str) -> None:
    """The HPA controller runs: it raises a Deployment to minReplicas (no metrics needed)."""
    kube = kube_cluster
    dep = deployment("scaled", replicas=1)
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "scaled"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
            "minReplicas": 2,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    kube.apply([dep, hpa], namespace=namespace)

    def ready_replicas() -> int:
        status = kube.get("deployment", "scaled", namespace=namespace).get("status", {})
        return int(status.get("readyReplicas", 0))

    kube.wait_for(lambda: ready_replicas() == 2, what="HPA to scale deployment scaled to 2")
    assert kube.get("deployment", "scaled", namespace=namespace)["spec"]["replicas"] == 2
    kube.wait_for(
        lambda: (
            kube.get("hpa", "scaled", namespace=namespace)["status"].get("desiredReplicas") == 2
        ),
        what="HPA status desiredReplicas=2",
    )
