"""Operator benchmark: apply -> all-children latency over N pools, and writes per idle resync.

Runs the real operator (`python -m workerpool_operator`, a subprocess) against the local
control plane. Latency is measured from just before the pool's create call to the moment a
watch on the namespace has seen all of the pool's children (Deployment, Service, PDB,
ServiceMonitor). Writes are read from the operator's own /metrics counter
`workerpool_operator_writes_total` and cross-checked with resourceVersions.

    python -m bench.bench_operator [--pools 100] [--resync 5] [--idle-periods 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from testbed.cluster import LocalCluster, install_crds, kubectl
from testbed.temporal import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
CRD = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
NAME_JSONPATH = "jsonpath={.object.metadata.name}{'\\n'}"
CHILD_KINDS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def writes_total(metrics_port: int) -> float:
    """Sum of workerpool_operator_writes_total over all labels (the operator watches one ns)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    pattern = r"^workerpool_operator_writes_total\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(m) for m in re.findall(pattern, text, re.MULTILINE))


class ChildWatcher:
    """Records when each (kind, name) child is first seen, via `kubectl get -w` streams."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.procs: list[subprocess.Popen[str]] = []
        for (_, kind), plural in CHILD_KINDS.items():
            proc = subprocess.Popen(
                ["kubectl", "--kubeconfig", kubeconfig, "get", plural, "-n", namespace,
                 "--watch", "--output-watch-events", "-o", NAME_JSONPATH],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(kind, proc), daemon=True).start()

    def _read(self, kind: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            name = line.strip()
            if name:
                with self.lock:
                    self.seen.setdefault((kind, name), time.perf_counter())

    def complete(self, name: str) -> float | None:
        with self.lock:
            times = [self.seen.get((kind, name)) for (_, kind) in CHILD_KINDS]
        return None if None in times else max(t for t in times if t is not None)

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(timeout=10)


def pool_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name},
        "spec": {
            "connection": {"address": "temporal.temporal.svc:7233"},
            "taskQueue": name,
            "workflows": ["app.workflows:Flow"],
            "replicas": 1,
        },
    }


def run(pools: int, resync: float, idle_periods: int) -> dict[str, Any]:
    cluster = LocalCluster()
    kubeconfig = str(cluster.acquire())
    namespace = f"bench-{os.getpid()}"
    env = {**os.environ, "KUBECONFIG": kubeconfig, "WORKERPOOL_RESYNC_SECONDS": str(resync)}
    metrics_port, liveness_port = free_port(), free_port()
    operator: subprocess.Popen[bytes] | None = None
    watcher: ChildWatcher | None = None
    try:
        install_crds(kubeconfig)
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kubectl(kubeconfig, "wait", "--for=condition=Established",
                "crd/temporalworkerpools.workerpools.io", "--timeout=60s")  # fmt: skip
        kubectl(kubeconfig, "create", "namespace", namespace)
        log = (RESULTS / "operator-bench.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator", "-n", namespace,
             "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=2)
                break
            except OSError as err:
                if time.monotonic() > deadline or operator.poll() is not None:
                    raise RuntimeError("operator not live; see operator-bench.log") from err
                time.sleep(0.5)
        watcher = ChildWatcher(kubeconfig, namespace)
        time.sleep(2)  # watches established

        from kubernetes import config
        from kubernetes.dynamic import DynamicClient

        dyn = DynamicClient(config.new_client_from_config(config_file=kubeconfig))
        res = dyn.resources.get(api_version="workerpools.io/v1alpha1", kind="TemporalWorkerPool")
        started: dict[str, float] = {}
        for i in range(pools):
            name = f"pool-{i:03d}"
            started[name] = time.perf_counter()
            dyn.create(res, body=pool_manifest(name), namespace=namespace)

        deadline = time.monotonic() + 600
        latencies: dict[str, float] = {}
        while len(latencies) < pools and time.monotonic() < deadline:
            for name, t0 in started.items():
                if name not in latencies and (done := watcher.complete(name)) is not None:
                    latencies[name] = done - t0
            time.sleep(0.05)
        if len(latencies) < pools:
            raise RuntimeError(f"only {len(latencies)}/{pools} pools got all children")

        # Let rollouts and status settle, then count writes across idle resync periods.
        def versions() -> dict[str, str]:
            out: dict[str, str] = {}
            for plural in ["temporalworkerpools", *CHILD_KINDS.values()]:
                items = json.loads(
                    kubectl(kubeconfig, "get", plural, "-n", namespace, "-o", "json").stdout
                )["items"]
                for it in items:
                    out[f"{plural}/{it['metadata']['name']}"] = it["metadata"]["resourceVersion"]
            return out

        settle_deadline = time.monotonic() + 300
        last = writes_total(metrics_port)
        while time.monotonic() < settle_deadline:
            time.sleep(resync * 1.5)
            now = writes_total(metrics_port)
            if now == last:
                break
            last = now
        before_versions = versions()
        before = writes_total(metrics_port)
        time.sleep(resync * idle_periods + 1)
        idle_writes = writes_total(metrics_port) - before
        changed = sum(1 for k, v in versions().items() if before_versions.get(k) != v)

        values = list(latencies.values())
        return {
            "pools": pools,
            "apply_to_children_median_s": statistics.median(values),
            "apply_to_children_p95_s": percentile(values, 0.95),
            "apply_to_children_max_s": max(values),
            "resync_seconds": resync,
            "idle_resync_periods": idle_periods,
            "writes_per_idle_resync": idle_writes / idle_periods,
            "objects_changed_while_idle": changed,
        }
    finally:
        if watcher is not None:
            watcher.close()
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        cluster.release()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pools", type=int, default=100)
    p.add_argument("--resync", type=float, default=5.0)
    p.add_argument("--idle-periods", type=int, default=3)
    args = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    result = run(args.pools, args.resync, args.idle_periods)
    (RESULTS / "operator.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("pools created at once", f"{result['pools']}"),
        ("apply -> all children, median", f"{result['apply_to_children_median_s']:.2f} s"),
        ("apply -> all children, p95", f"{result['apply_to_children_p95_s']:.2f} s"),
        ("apply -> all children, max", f"{result['apply_to_children_max_s']:.2f} s"),
        ("writes per idle resync (goal 0)", f"{result['writes_per_idle_resync']:.1f}"),
        ("objects changed while idle", f"{result['objects_changed_while_idle']}"),
    ]
    width = max(len(r[0]) for r in rows)
    print("\noperator benchmark")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"  -> {RESULTS / 'operator.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
