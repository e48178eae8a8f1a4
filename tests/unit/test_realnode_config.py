"""The real node's generated configuration says what docs/testbed.md promises (no root needed)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from testbed import cluster
from testbed.cluster import KWOK_NODE_ANNOTATION, POOL_LABEL, LocalCluster
from testbed.realnode import (
    BRIDGE,
    GATEWAY,
    SUBNET,
    TAINT_KEY,
    RealNode,
    containerd_name,
    placement,
)


def node(tmp_path: Path) -> RealNode:
    return RealNode(cache=tmp_path)


def test_containerd_is_a_private_instance_with_the_cri_settings_this_machine_needs(
    tmp_path: Path,
) -> None:
    n = node(tmp_path)
    cfg = tomllib.loads(n.containerd_config())
    run = str(n.run_dir)
    # everything in the scratch folder: never the host's or Docker's containerd
    assert cfg["root"].startswith(run)
    assert cfg["state"].startswith(run)
    assert cfg["grpc"]["address"] == str(n.socket)
    assert cfg["ttrpc"]["address"].startswith(run)
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["disable_apparmor"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "docker.io/workerpools/pause:1"
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cri["cni"]["conf_dir"].startswith(run)
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False  # cgroupfs, like the kubelet


def test_pods_get_bridge_addresses_and_no_route_anywhere_else(tmp_path: Path) -> None:
    n = node(tmp_path)
    conf = n.cni_config()
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap", "loopback"]
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == BRIDGE
    assert bridge["isGateway"] is False  # no default route in pods
    assert bridge["ipMasq"] is False  # and no NAT to other networks
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": SUBNET, "gateway": GATEWAY}]]
    assert bridge["ipam"]["dataDir"].startswith(str(n.run_dir))
    json.dumps(conf)  # written as JSON


def test_kubelet_is_local_only_and_fits_this_machine(tmp_path: Path) -> None:
    cfg = node(tmp_path).kubelet_config(port=10999, healthz_port=10998)
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["failCgroupV1"] is False
    assert cfg["failSwapOn"] is False
    assert cfg["address"] == "127.0.0.1"
    assert cfg["healthzBindAddress"] == "127.0.0.1"
    assert (cfg["port"], cfg["readOnlyPort"]) == (10999, 0)
    assert cfg["authentication"]["anonymous"]["enabled"] is True
    assert cfg["authorization"]["mode"] == "AlwaysAllow"
    assert cfg["enforceNodeAllocatable"] == []
    assert cfg["localStorageCapacityIsolation"] is False
    assert cfg["registerWithTaints"] == [
        {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    assert cfg["containerRuntimeEndpoint"].startswith("unix://")


def test_placement_selects_and_tolerates_only_the_real_node() -> None:
    p = placement()
    assert p["nodeSelector"] == {POOL_LABEL: "real"}
    assert p["tolerations"] == [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


def test_containerd_names_of_imported_docker_images() -> None:
    assert containerd_name("workerpools/worker-runtime:0.1.0") == (
        "docker.io/workerpools/worker-runtime:0.1.0"
    )
    assert containerd_name("busybox:1") == "docker.io/library/busybox:1"
    assert containerd_name("localhost:5000/x:1") == "localhost:5000/x:1"


def test_kwok_manages_only_its_own_annotated_nodes() -> None:
    patches = {p["name"]: p for p in LocalCluster().kwokctl_config()["componentsPatches"]}
    args = {a["key"]: a for a in patches["kwok-controller"]["extraArgs"]}
    # override: kwokctl itself passes --manage-all-nodes=true, which conflicts with a selector
    assert args["manage-all-nodes"] == {
        "key": "manage-all-nodes",
        "value": "false",
        "override": True,
    }
    assert args["manage-nodes-with-annotation-selector"]["value"] == f"{KWOK_NODE_ANNOTATION}=fake"


def test_an_accidental_pull_goes_to_a_closed_loopback_port(tmp_path: Path) -> None:
    """Images are imported; a pod naming a missing image must fail here, not leave the machine."""
    n = node(tmp_path)
    cri = tomllib.loads(n.containerd_config())["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"].startswith(str(n.run_dir))
    hosts = n.registry_hosts()
    assert {"docker.io", "registry.k8s.io", "quay.io", "ghcr.io"} <= set(hosts)
    for text in hosts.values():
        assert tomllib.loads(text)["server"] == "http://127.0.0.1:1"


def test_a_node_joined_to_another_bed_in_use_is_refused_not_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarting it for a second bed would kill the first bed's pods under its tests."""
    n = node(tmp_path)
    (n.home / "users").mkdir(parents=True)
    (n.home / "users" / str(os.getppid())).touch()  # another live session holds it
    monkeypatch.setattr(RealNode, "_pid", lambda self, name, binary: 4242)
    monkeypatch.setattr(RealNode, "serves", lambda self: "/beds/first/kubeconfig")
    monkeypatch.setattr(RealNode, "node_ready", lambda self, kubeconfig: False)
    started: list[str] = []
    monkeypatch.setattr(RealNode, "start", lambda self, kubeconfig: started.append(kubeconfig))
    with pytest.raises(cluster.TestbedError, match=r"another bed \(/beds/first/kubeconfig\)"):
        n.acquire("/beds/second/kubeconfig")
    assert started == []
    # Nobody else on it: this bed may take it over.
    (n.home / "users" / str(os.getppid())).unlink()
    monkeypatch.setattr(RealNode, "healthy", lambda self, kubeconfig: False)
    monkeypatch.setattr(RealNode, "settle_s", 0.0)  # not the minute a slow node is given
    n.acquire("/beds/second/kubeconfig")
    assert started == ["/beds/second/kubeconfig"]


def test_a_bed_going_down_leaves_a_node_joined_to_another_bed_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Private beds share the machine's node: the last session of one must not stop another's."""
    bed = LocalCluster("mine", cache=tmp_path)
    stopped: list[object] = []
    monkeypatch.setattr(RealNode, "stop", lambda self, kubeconfig=None: stopped.append(kubeconfig))
    monkeypatch.setattr(LocalCluster, "exists", lambda self: False)
    monkeypatch.setattr(LocalCluster, "processes", lambda self: [])
    monkeypatch.setattr(RealNode, "serves", lambda self: "/beds/other/kubeconfig.yaml")
    bed.down()
    assert stopped == []
    monkeypatch.setattr(RealNode, "serves", lambda self: str(bed.kubeconfig))
    bed.down()
    assert stopped == [bed.kubeconfig]
