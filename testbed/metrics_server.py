"""metrics-server as a local process on the bed, aggregated as `metrics.k8s.io`, fed by kwok.

Built from its Go module by hack/build-metrics-server.sh (cached; `make tools` builds it). It
serves the resource metrics API that the bed's real kube-controller-manager (HPA controller)
reads for CPU and memory utilization targets, and `kubectl top`.

Where the numbers come from. kwok pods run nothing, so kwok simulates them: the bed starts kwok
with its Metric, ClusterResourceUsage and ResourceUsage CRDs enabled (testbed/cluster.py), and
while metrics-server runs, `running_metrics_server` applies kwok's own Metric object
(testbed/kwok-metrics-resource.yaml), which makes the kwok controller serve kubelet-style
`/metrics/resource` for each fake node (the path is the node annotation
`metrics.k8s.io/resource-metrics-path`). A test states the usage of its pods with
`simulated_usage` (a ClusterResourceUsage selecting only its namespace); pods nobody simulates
report zero. metrics-server scrapes kwok as if it were the kubelets: each kwok node reports the
address `Hostname: localhost` and kwok's port, so every scrape goes to loopback; only nodes
labelled `type=kwok` are scraped (the real node `real-0` is not), and the start refuses a kwok
node whose address is not loopback.

How the kube-apiserver reaches metrics-server: exactly as for KEDA's adapter (testbed/keda.py):
the aggregator dials the Service's ClusterIP, so a network namespace of this process's own holds
that address at the end of a veth pair, and a forwarder inside it passes each connection to
metrics-server on host loopback. Traffic goes only to loopback and to that address.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.cluster import REPO_ROOT, cache_root, kubectl, read_versions, wait_until
from testbed.keda import (
    Process,
    make_certs,
    one_per_bed,
    register_apiservice,
    run_build_script,
    service_in_netns,
)
from testbed.temporal import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-metrics-server.sh"
KWOK_METRIC = REPO_ROOT / "testbed" / "kwok-metrics-resource.yaml"
KWOK_METRIC_NAME = "metrics-resource"
NAMESPACE = "kube-system"
SERVICE = "metrics-server"
APISERVICE = "v1beta1.metrics.k8s.io"
NODE_SELECTOR = "type=kwok"
# The host end of the veth; KEDA's uses .1, so both can run on one bed at the same time.
HOST_IP = "169.254.213.2"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def bin_dir() -> Path:
    return cache_root() / "metrics-server" / read_versions()["METRICS_SERVER_VERSION"] / "bin"


def binary() -> Path:
    return bin_dir() / "metrics-server"


def missing() -> bool:
    """True when hack/build-metrics-server.sh has not built the binary yet."""
    return not os.access(binary(), os.X_OK)


def build(timeout: float = 3600) -> Path:
    """Run hack/build-metrics-server.sh (a no-op when cached); return the bin folder."""
    return run_build_script(BUILD_SCRIPT, timeout)


@dataclass
class MetricsServer:
    """The running metrics-server: its process, the forwarder, where their logs are."""

    kubeconfig: str
    workdir: Path
    server: Process
    forwarder: Process
    cluster_ip: str
    netns: str
    port: int

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log_path}):\n{p.tail()}" for p in (self.server, self.forwarder)
        )

    def pod_metrics(self, namespace: str) -> Any:
        """GET PodMetrics through the aggregator, as the HPA controller does."""
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        return json.loads(kubectl(self.kubeconfig, "get", "--raw", path, timeout=30).stdout)


def kwok_nodes_on_loopback(kubeconfig: str) -> list[str]:
    """Names of the scraped nodes; raise if one would be scraped at a non-loopback address."""
    out = kubectl(kubeconfig, "get", "nodes", "-l", NODE_SELECTOR, "-o", "json").stdout
    names: list[str] = []
    for node in json.loads(out)["items"]:
        name = node["metadata"]["name"]
        hostnames = [
            a["address"]
            for a in node.get("status", {}).get("addresses", [])
            if a.get("type") == "Hostname"
        ]
        if not hostnames or hostnames[0] not in LOOPBACK_NAMES:
            raise RuntimeError(
                f"node {name} reports Hostname {hostnames}: metrics-server would scrape it "
                "off loopback; the bed's kwok reports `localhost` for its nodes"
            )
        names.append(name)
    return names


def usage_name(namespace: str) -> str:
    return f"twp-usage-{namespace}"


@contextlib.contextmanager
def simulated_usage(
    kubeconfig: str, namespace: str, *, cpu: str, memory: str
) -> Iterator[dict[str, Any]]:
    """Every container of every pod in `namespace` uses `cpu` and `memory` (kwok's
    ClusterResourceUsage, cluster-scoped, so removed on exit, not with the namespace).
    Apply it again with `set_usage` to change the load."""
    doc = set_usage(kubeconfig, namespace, cpu=cpu, memory=memory)
    try:
        yield doc
    finally:
        kubectl(
            kubeconfig, "delete", "clusterresourceusage", usage_name(namespace),
            "--ignore-not-found", "--wait=false", check=False,
        )  # fmt: skip


def set_usage(
    kubeconfig: str,
    namespace: str,
    *,
    cpu: str,
    memory: str,
    cpu_by_label: tuple[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Create or replace the namespace's simulated usage (see `simulated_usage`).

    `cpu_by_label=(label, {value: cpu})`: a pod whose `label` has one of the values uses that
    CPU instead of `cpu` (a kwok CEL expression, evaluated per pod at each scrape, so pods that
    a scale-up adds take it too): one build busy, another idle, in one namespace."""
    cpu_usage: dict[str, str] = {"value": cpu}
    if cpu_by_label is not None:
        label, by_value = cpu_by_label
        labels = "pod.metadata.labels"
        expression = f"Quantity({json.dumps(cpu)})"
        for value, busy in by_value.items():
            expression = (
                f"({json.dumps(label)} in {labels} && {labels}[{json.dumps(label)}] == "
                f"{json.dumps(value)}) ? Quantity({json.dumps(busy)}) : ({expression})"
            )
        cpu_usage = {"expression": expression}
    doc = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": usage_name(namespace)},
        "spec": {
            "selector": {"matchNamespaces": [namespace]},
            "usages": [{"usage": {"cpu": cpu_usage, "memory": {"value": memory}}}],
        },
    }
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(doc))
    return doc


@contextlib.contextmanager
def running_metrics_server(
    kubeconfig: str, workdir: Path, *, timeout: float = 180
) -> Iterator[MetricsServer]:
    """metrics-server scraping kwok, aggregated as metrics.k8s.io; everything removed on exit.

    One per bed at a time (the APIService and kwok's Metric are global): a file lock in the
    cache folder makes a second session wait."""
    if os.geteuid() != 0:
        raise RuntimeError("metrics-server on the bed needs root: it creates a network namespace")
    if missing():
        raise RuntimeError(
            f"metrics-server missing in {bin_dir()}: run `make tools` "
            "(hack/build-metrics-server.sh, about 2 min cold)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        one_per_bed("metrics-server", "metrics-server"),
        _running(kubeconfig, workdir, timeout=timeout) as running,
    ):
        yield running


@contextlib.contextmanager
def _running(kubeconfig: str, workdir: Path, *, timeout: float) -> Iterator[MetricsServer]:
    kwok_nodes_on_loopback(kubeconfig)
    tag = f"{os.getpid() % 100000}"
    netns = f"twp-ms-{tag}"
    stack = contextlib.ExitStack()
    try:
        # kwok serves /metrics/nodes/<node>/metrics/resource while this object exists.
        kubectl(kubeconfig, "apply", "-f", str(KWOK_METRIC))
        stack.callback(
            kubectl, kubeconfig, "delete", "metric.kwok.x-k8s.io", KWOK_METRIC_NAME,
            "--ignore-not-found", "--wait=false", check=False,
        )  # fmt: skip
        cluster_ip = service_in_netns(
            stack, kubeconfig, NAMESPACE, SERVICE, 4443, netns=netns, tag=f"m{tag}",
            host_ip=HOST_IP, labels={"app.kubernetes.io/managed-by": "workerpools-testbed"},
        )  # fmt: skip

        certs = make_certs(
            workdir / "certs",
            ["IP:127.0.0.1", f"IP:{cluster_ip}", "DNS:localhost",
             f"DNS:{SERVICE}.{NAMESPACE}.svc", f"DNS:{SERVICE}.{NAMESPACE}.svc.cluster.local"],
        )  # fmt: skip
        port = free_port()
        server = Process(
            "metrics-server",
            [str(binary()), "--bind-address=127.0.0.1", f"--secure-port={port}",
             f"--tls-cert-file={certs / 'tls.crt'}", f"--tls-private-key-file={certs / 'tls.key'}",
             f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
             f"--authorization-kubeconfig={kubeconfig}",
             # kwok plays the kubelets: every kwok node reports Hostname `localhost` and kwok's
             # port, and kwok's serving certificate is not for `localhost`.
             f"--node-selector={NODE_SELECTOR}", "--kubelet-preferred-address-types=Hostname",
             "--kubelet-use-node-status-port", "--kubelet-insecure-tls",
             # The shortest it takes: the HPA sees a change within one resolution.
             "--metric-resolution=10s", "--kubelet-request-timeout=5s"],
            {**os.environ, "KUBECONFIG": kubeconfig}, workdir / "metrics-server.log",
        )  # fmt: skip
        forwarder = Process(
            "forwarder",
            [sys.executable, "-m", "testbed.keda", "forward", "--netns", netns,
             "--listen", f"{cluster_ip}:443", "--to", f"127.0.0.1:{port}"],
            {**os.environ, "PYTHONPATH": str(REPO_ROOT)}, workdir / "forwarder.log",
        )  # fmt: skip
        for p in (server, forwarder):
            p.start()
            stack.callback(p.stop)
        running = MetricsServer(kubeconfig, workdir, server, forwarder, cluster_ip, netns, port)
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))

        def ready() -> bool:
            for p in (server, forwarder):
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited")
            # /livez, not /readyz: metrics-server is ready only once it holds a non-zero
            # sample, and no pod on the bed uses anything before a test simulates usage.
            with contextlib.suppress(OSError):
                url = f"https://127.0.0.1:{port}/livez"
                with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                    return bool(r.status == 200)
            return False

        try:
            wait_until(ready, timeout=timeout, interval=1, what="metrics-server /livez")
        except Exception as exc:
            raise RuntimeError(f"{exc}\n{running.logs()}") from exc
        register_apiservice(
            stack, kubeconfig, name=APISERVICE, group="metrics.k8s.io", namespace=NAMESPACE,
            service=SERVICE, ca=certs / "ca.crt", alive=forwarder.alive, timeout=timeout,
            logs=running.logs,
        )  # fmt: skip
        yield running
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.metrics_server")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or reuse) metrics-server; print its folder")
    parser.parse_args(argv)
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
