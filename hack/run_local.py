"""`make run`: the whole product on this machine, with nothing but the project's own parts.

Starts (or reuses) the local kwok control plane and a Temporal dev server, installs the CRD,
runs the operator, applies the sample pools pointed at the dev server, and starts workflows on
their queues so the Builtin autoscaler has a backlog to act on. `kubectl get workerpools` is
printed as it changes. Ctrl-C (or, with --once, the pools reaching their expected size) stops
everything this command started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from testbed.cluster import LocalCluster, cache_root, install_crds, kubectl
from testbed.temporal import TemporalDevServer

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "workerpools-demo"
SAMPLES = ROOT / "manifests" / "samples"
# queue -> (workflows started, desired replicas the sample's autoscaling should reach)
BACKLOG = {"orders": (60, 3), "llm-gpu": (5, 3)}


def log(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def samples(address: str) -> list[dict[str, Any]]:
    """The sample pools, pointed at the local dev server (pods are simulated by kwok)."""
    docs = []
    for path in sorted(SAMPLES.glob("*-pool.yaml")):
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["connection"]["address"] = address
        # kwok pods run no containers, and the demo has no model store: a PVC the sample names
        # would keep its pods unschedulable, so the demo swaps it for an emptyDir.
        for volume in (doc["spec"].get("template") or {}).get("volumes") or []:
            if volume.pop("persistentVolumeClaim", None) is not None:
                volume["emptyDir"] = {}
        docs.append(doc)
    return docs


async def start_backlog(address: str) -> None:
    """Queue work no one polls yet, so the autoscaler sees a real Temporal backlog."""
    from temporalio.client import Client

    client = await Client.connect(address)
    for queue, (count, _) in BACKLOG.items():
        for i in range(count):
            await client.start_workflow(
                "DemoWorkflow", id=f"demo-{queue}-{i}-{int(time.time())}", task_queue=queue
            )
    log(f"started {sum(c for c, _ in BACKLOG.values())} workflows on {', '.join(BACKLOG)}")


def desired(kubeconfig: str) -> dict[str, int]:
    out = kubectl(
        kubeconfig, "get", "twp", "-n", NAMESPACE, "-o",
        "jsonpath={range .items[*]}{.spec.taskQueue}={.status.desiredReplicas}{'\\n'}{end}",
    ).stdout  # fmt: skip
    result = {}
    for line in out.splitlines():
        queue, _, value = line.partition("=")
        if value:
            result[queue] = int(value)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--once", action="store_true", help="exit once the pools have scaled")
    p.add_argument("--timeout", type=float, default=300, help="--once: give up after seconds")
    args = p.parse_args(argv)

    workdir = cache_root() / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster()
    temporal = TemporalDevServer(workdir / "temporal")
    operator: subprocess.Popen[bytes] | None = None
    stop = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log("starting the local control plane (kwok)")
        kubeconfig = str(cluster.acquire())
        log(f"kubeconfig: {kubeconfig}")
        install_crds(kubeconfig)
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                "crd/temporalworkerpools.workerpools.io")  # fmt: skip
        log("starting the Temporal dev server")
        (workdir / "temporal" / "temporal.db").unlink(missing_ok=True)
        temporal.start()
        log(f"Temporal at {temporal.address} (namespace default)")

        kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        oplog = (workdir / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator", "-n", NAMESPACE,
             "--metrics-port", "18080", "--liveness-port", "18081"],
            env=env, stdout=oplog, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        log(f"operator running (logs: {workdir / 'operator.log'}, metrics :18080/metrics)")
        kubectl(
            kubeconfig, "apply", "-n", NAMESPACE, "-f", "-",
            input=yaml.safe_dump_all(samples(temporal.address)),
        )  # fmt: skip
        log(f"applied {len(list(SAMPLES.glob('*-pool.yaml')))} sample pools in {NAMESPACE}")
        asyncio.run(start_backlog(temporal.address))
        log(f"export KUBECONFIG={kubeconfig}; kubectl get workerpools -n {NAMESPACE} -w")

        deadline = time.monotonic() + args.timeout
        last = ""
        while not stop:
            if operator.poll() is not None:
                log(f"operator exited with {operator.returncode}; see {workdir / 'operator.log'}")
                return 1
            table = kubectl(kubeconfig, "get", "workerpools", "-n", NAMESPACE, "-o", "wide").stdout
            if table != last:
                print(table, flush=True)
                last = table
            if args.once:
                got = desired(kubeconfig)
                if all(got.get(q, 0) >= want for q, (_, want) in BACKLOG.items()):
                    log(f"pools scaled on backlog: {got}")
                    return 0
                if time.monotonic() > deadline:
                    log(f"pools did not scale within {args.timeout:.0f}s: {got}")
                    return 1
            time.sleep(2)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        log("stopping")
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGINT)
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        temporal.stop()
        if cluster.kubeconfig.exists():
            kubectl(str(cluster.kubeconfig), "delete", "namespace", NAMESPACE, "--wait=false",
                    check=False)  # fmt: skip
        cluster.release()


if __name__ == "__main__":
    raise SystemExit(main())
