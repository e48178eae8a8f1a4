"""`make run`: the whole product on this machine, with nothing but the project's own parts.

Starts (or reuses) the local kwok control plane and a Temporal dev server, installs the CRD,
runs the operator, applies the sample pools pointed at the dev server, and starts workflows on
their queues so the Builtin autoscaler has a backlog to act on. `kubectl get workerpools` is
printed as it changes. Ctrl-C (or, with --once, the pools reaching their expected size) stops
everything this command started.

When it can, the CPU pool (`orders`) runs on the bed's real kubelet node (testbed/realnode.py)
with the runtime image built by hack/build-images.sh, so its pods really consume their backlog
(the RouterWorkflows' first steps; their GPU and API steps then queue for the other pools),
reaching the dev server through testbed/forward.py on the node's bridge. When the node cannot
start (no root, no containerd, no Docker), every pool stays on kwok, simulated, and it says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testbed.cluster import (
    LocalCluster,
    TestbedError,
    cache_root,
    install_crds,
    kubectl,
    wait_established,
)
from testbed.forward import Forwarder, forwarding
from testbed.proc import stop as stop_process
from testbed.realnode import GATEWAY, RealNode, build_runtime_image, placement
from testbed.temporal import TemporalDevServer
from workerpool_operator.api import v1alpha1 as api

ROOT = Path(__file__).resolve().parents[1]
# The CRDs of crds/ (kustomization): the pool and the two connection kinds.
CRD_NAMES = tuple(
    f"{plural}.workerpools.io"
    for plural in ("temporalworkerpools", "temporalconnections", "clustertemporalconnections")
)
NAMESPACE = "workerpools-demo"
SAMPLES = ROOT / "manifests" / "samples"
# queue -> (workflows started, desired replicas the sample's autoscaling should reach)
BACKLOG = {"orders": (60, 3), "llm-gpu": (5, 3)}
REAL_POOL = "orders"  # the CPU sample: runs on the real node when there is one
IMAGE_TAG = api.DEFAULT_IMAGE_TAG  # the pools' default image tag: this release
# Full resource name: a test's leftover CRD of another group may share the short names.
TWP = "temporalworkerpools.workerpools.io"


def log(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def samples(address: str, real_address: str | None = None) -> list[dict[str, Any]]:
    """The sample pools, pointed at the local dev server (pods are simulated by kwok).

    With `real_address` (the forwarder on the real node's bridge), the CPU pool runs on the
    real node instead, with the locally built runtime image.
    """
    docs = []
    for path in sorted(SAMPLES.glob("*-pool.yaml")):
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["connection"]["address"] = address
        if real_address and doc["metadata"]["name"] == REAL_POOL:
            doc["spec"]["connection"]["address"] = real_address
            doc["spec"]["image"] = {"tag": IMAGE_TAG, "pullPolicy": "Never"}
            template = doc["spec"].setdefault("template", {})
            template.update(placement())
        # kwok pods run no containers, and the demo has no model store: a PVC the sample names
        # would keep its pods unschedulable, so the demo swaps it for an emptyDir.
        for volume in (doc["spec"].get("template") or {}).get("volumes") or []:
            if volume.pop("persistentVolumeClaim", None) is not None:
                volume["emptyDir"] = {}
        docs.append(doc)
    return docs


async def start_backlog(address: str) -> None:
    """Queue work no one polls yet, so the autoscaler sees a real Temporal backlog.

    The CPU pool hosts RouterWorkflow, so its workers (real pods on the real node) can run
    what is queued for them. The GPU pool hosts only activities, so its backlog must be
    activity tasks (the scaler counts only the task types a pool's workers take): this process
    plays the jobs service, running `LLMJobWorkflow` (examples/gpu_llm_job) on its own queue
    just long enough for each job to schedule its GPU activity, which nobody runs (the GPU
    pool's pods are kwok's).
    """
    from temporalio.client import Client
    from temporalio.worker import Worker

    from examples.gpu_llm_job.workflows import LLMJobInput, LLMJobWorkflow

    client = await Client.connect(address)
    jobs_queue = "demo-llm-jobs"
    async with Worker(client, task_queue=jobs_queue, workflows=[LLMJobWorkflow]):
        scheduled = []
        for queue, (count, _) in BACKLOG.items():
            for i in range(count):
                wid = f"demo-{queue}-{i}-{int(time.time())}"
                if queue == REAL_POOL:
                    text = f"order {i}: two widgets, one gadget"
                    await client.start_workflow(
                        "RouterWorkflow", {"text": text}, id=wid, task_queue=queue
                    )
                else:
                    job = LLMJobInput(prompt=f"job {i}", gpu_queue=queue)
                    handle = await client.start_workflow(
                        LLMJobWorkflow.run, job, id=wid, task_queue=jobs_queue
                    )
                    scheduled.append(handle)
        deadline = time.monotonic() + 60
        for handle in scheduled:  # each job's GPU activity is on the GPU queue
            while time.monotonic() < deadline:
                description = await handle.describe()
                if description.raw_description.pending_activities:
                    break
                await asyncio.sleep(0.2)
    log(f"started {sum(c for c, _ in BACKLOG.values())} workflows on {', '.join(BACKLOG)}")


def desired(kubeconfig: str) -> dict[str, int]:
    out = kubectl(
        kubeconfig, "get", TWP, "-n", NAMESPACE, "-o",
        "jsonpath={range .items[*]}{.spec.taskQueue}={.status.desiredReplicas}{'\\n'}{end}",
    ).stdout  # fmt: skip
    result = {}
    for line in out.splitlines():
        queue, _, value = line.partition("=")
        if value:
            result[queue] = int(value)
    return result


def start_real_node(kubeconfig: str) -> RealNode | None:
    """The real node with the runtime image in it, or None (and why) to stay on kwok."""
    node = RealNode()
    missing = node.missing()
    if missing:
        log("no real node here (missing: " + "; ".join(missing) + "): falling back to kwok, "
            "pods are simulated and nothing consumes the backlog")  # fmt: skip
        return None
    try:
        log("starting the real kubelet node real-0 and building the runtime image")
        node.acquire(kubeconfig)
        with node.lock():
            node.import_image(build_runtime_image(IMAGE_TAG))
    except TestbedError as exc:
        log(f"the real node did not start: {exc}\nfalling back to kwok (pods are simulated)")
        node.release(kubeconfig)
        return None
    log(f"real node real-0 is Ready: the {REAL_POOL} pool's pods run there for real")
    return node


def consumed(kubeconfig: str) -> float:
    """Activities the real pool's pods completed, from /metrics at the Service's endpoints."""
    out = kubectl(
        kubeconfig, "get", "endpointslices", "-n", NAMESPACE,
        "-l", f"kubernetes.io/service-name={REAL_POOL}", "-o", "json",
    ).stdout  # fmt: skip
    total = 0.0
    for es in json.loads(out)["items"]:
        port = next((p["port"] for p in es.get("ports") or [] if p.get("name") == "metrics"), None)
        for ep in es.get("endpoints") or []:
            if port is None or not (ep.get("conditions") or {}).get("ready"):
                continue
            for addr in ep["addresses"]:  # pod addresses on the real node's bridge
                try:
                    with urllib.request.urlopen(f"http://{addr}:{port}/metrics", timeout=3) as r:
                        text = r.read().decode()
                except OSError:
                    continue
                total += sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("twp_activities_succeeded_total")
                )
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--once", action="store_true", help="exit once the pools have scaled")
    p.add_argument("--timeout", type=float, default=300, help="--once: give up after seconds")
    p.add_argument(
        "--no-real-node", action="store_true", help="keep every pool on kwok (simulated pods)"
    )
    args = p.parse_args(argv)

    workdir = cache_root() / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster()
    temporal = TemporalDevServer(workdir / "temporal")
    operator: subprocess.Popen[bytes] | None = None
    node: RealNode | None = None
    kubeconfig = str(cluster.kubeconfig)
    stack = contextlib.ExitStack()
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
        wait_established(kubeconfig, *CRD_NAMES)
        log("starting the Temporal dev server")
        (workdir / "temporal" / "temporal.db").unlink(missing_ok=True)
        temporal.start()
        log(f"Temporal at {temporal.address} (namespace default)")
        if args.no_real_node:
            log("--no-real-node: every pool on kwok, pods are simulated")
        node = None if args.no_real_node else start_real_node(kubeconfig)
        fwd: Forwarder | None = None
        if node is not None:
            fwd = stack.enter_context(
                forwarding(GATEWAY, temporal.address, workdir / "forward.log")
            )
            log(f"pods on real-0 reach Temporal at {fwd.address} (testbed/forward.py)")

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
            input=yaml.safe_dump_all(samples(temporal.address, fwd.address if fwd else None)),
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
            table = kubectl(kubeconfig, "get", TWP, "-n", NAMESPACE, "-o", "wide").stdout
            if table != last:
                print(table, flush=True)
                last = table
            if args.once:
                got = desired(kubeconfig)
                if node is not None:
                    # the real pool consumes its backlog instead of only scaling on it
                    done = consumed(kubeconfig)
                    want = {q: n for q, (_, n) in BACKLOG.items() if q != REAL_POOL}
                    if done >= BACKLOG[REAL_POOL][0] and all(
                        got.get(q, 0) >= n for q, n in want.items()
                    ):
                        log(f"{REAL_POOL} pods on real-0 ran {done:.0f} activities; scaled: {got}")
                        return 0
                elif all(got.get(q, 0) >= want for q, (_, want) in BACKLOG.items()):
                    log(f"pools scaled on backlog: {got}")
                    return 0
                if time.monotonic() > deadline:
                    log(f"pools did not get there within {args.timeout:.0f}s: {got}")
                    return 1
            time.sleep(2)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        log("stopping")
        if operator is not None:
            stop_process(operator, sig=signal.SIGINT)
        stack.close()
        temporal.stop()
        if cluster.kubeconfig.exists():
            kubectl(str(cluster.kubeconfig), "delete", "namespace", NAMESPACE, "--wait=false",
                    check=False)  # fmt: skip
        if node is not None:
            node.release(kubeconfig)
        cluster.release()


if __name__ == "__main__":
    raise SystemExit(main())
