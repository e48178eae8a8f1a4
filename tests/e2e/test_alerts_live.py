"""The chart's alerts fire and resolve on a live Prometheus that scrapes the real operator and
real workers, each driven by a real cause.

How the rules reach Prometheus: the chart is installed with `helm install` (its ServiceMonitor
and PrometheusRule on, `prometheusRule.forOverrides` lowering the `for:` durations and
`prometheusRule.windowOverrides` the rate windows of all but one alert to a minute, so the
test takes about 5 minutes, not 20; every expression is otherwise the shipped one).
prometheus-operator, built from its Go module, reconciles a `Prometheus` object, that
PrometheusRule, the chart's ServiceMonitor and the ServiceMonitor of every pool into
Prometheus' config and rule files.
Prometheus, built from its Go module, runs that config on the host (testbed/monitoring.py says
why not in a pod, and what it changes for that: only file paths and the API credentials of its
Kubernetes discovery). It scrapes the workers on the real kubelet node through the pools'
ServiceMonitors and the operator through the chart's ServiceMonitor. The operator is the real
code as a process (as in tests/e2e/test_release.py it cannot run in a pod of the bed), so the
chart's Service gets an EndpointSlice naming the operator's address on the node's bridge.

The causes, all real: pods that never poll while workflows pile up, one activity slot held
by long activities, an activity failing on every retry, a workflow that replays differently,
names taken by objects the pools do not own, GPUs nobody has, Temporal unreachable (workflow
tasks wait through it), a second operator run without leader election, the operator stopped,
and workers that crash at start (kube-state-metrics, built from its Go module too, reports
their restarts). Each cause is then removed and the alert must leave /api/v1/alerts
(`bench-results/release.json`: `alerts_fired_live` / `alerts_total`).

While the causes are active, every PromQL query of the chart's Grafana dashboard (panels and
variables, with Grafana's variables filled in) must return data from the same Prometheus. The
LLM panels read a pool that runs the runtime's own OpenAIChat activity against a local server
speaking the OpenAI chat API: the one fake here, since the real API is paid and needs a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle

from testbed import monitoring
from testbed.forward import free_port_on
from testbed.monitoring import HostPrometheus, KubeStateMetrics, PrometheusOperator
from testbed.operator import OperatorProcess
from testbed.proc import stop as stop_process
from testbed.pytest_cluster import KubeCluster
from testbed.pytest_realnode import RUNTIME_TAG
from testbed.realnode import GATEWAY, RUNTIME_REPO, RealNode, placement
from testbed.results import record
from testbed.temporal import TemporalDevServer
from testbed.tools import require_tool
from testbed.wait import eventually
from tests.builders import condition

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "workerpool-operator"
RULES = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
APP_FILE = Path(__file__).with_name("alerts_app.py")
APP = "e2eapp.alerts_app"
# Its own release name: the chart's cluster-scoped RBAC is named after it, and other tests on
# a shared bed install the chart too. It contains the chart's name, so it is the fullname.
RELEASE = f"workerpool-operator-alerts-{uuid.uuid4().hex[:6]}"
SERVICE = f"{RELEASE}-metrics"  # the chart's metrics Service
PROMETHEUS = "live"
INTERVAL = "5s"  # scrape and rule evaluation
FOR = "15s"  # every alert's `for:`, through prometheusRule.forOverrides
# Every range selector's length, through prometheusRule.windowOverrides: 12 scrapes, so rate()
# and deriv() always have samples, and an alert resolves about a minute after its cause goes.
WINDOW = "1m"
# Alerts that keep their shipped window (name -> why).
SHIPPED_WINDOW = {
    # 3 restarts in the window: the kubelet's crash-loop back-off (10 s, 20 s, 40 s, ...) puts
    # them more than a minute apart. The alert resolves through its join on the pool instead.
    "TemporalWorkerPoolWorkerRestarts": "crash-loop back-off spreads 3 restarts over > 1 min",
}
HOLD_S = 40.0  # each of the two activities holding the one slot (> the alert's 30 s p95)
RESYNC_S = "15"  # the operator's --resync-seconds: when a pool sees a foreign object go
WAIT_S = 300.0  # bounds one wait (one-minute windows, pods starting); never asserted on

# Alerts counted in alerts_total but not driven (name -> why); docs/observability.md says why.
NOT_TRIGGERED: dict[str, str] = {}
KSM = "kube-state-metrics"


def shipped_alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def windowed(expr: str) -> bool:
    """The expression has a range selector ([5m]) that windowOverrides rewrites."""
    return re.search(r"\[([0-9]+(ms|s|m|h|d|w|y))+\]", expr) is not None


# --- plumbing ------------------------------------------------------------------------------


class Forwarder:
    """testbed/forward.py on the bridge, in front of the dev server, on a port that survives
    a stop and start: stopping it is how Temporal becomes unreachable for the operator and
    the workers alike."""

    def __init__(self, to: str, log: Path) -> None:
        self.to, self.log = to, log
        self.address = f"{GATEWAY}:{free_port_on(GATEWAY)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.forward", "--listen", self.address,
                 "--to", self.to],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + 60
        while self.log.read_text().count('"listening"') < self.starts:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"forwarder did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s=5)
            self.proc = None


def unanswered(exc: BaseException) -> bool:
    """Prometheus did not answer this time (a reload, a busy machine): not yet, not a failure."""
    return isinstance(exc, OSError)


def alerts_of(prom: HostPrometheus, name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.alerts()
        if a["labels"].get("alertname") == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


class Ledger:
    """Which alerts fired and which resolved afterwards, as seen in /api/v1/alerts."""

    def __init__(self, prom: HostPrometheus) -> None:
        self.prom = prom
        self.fired: dict[str, dict[str, str]] = {}
        self.resolved: set[str] = set()
        self.started = time.monotonic()
        self.timeline: list[str] = []  # printed at the end: where the minutes went

    def note(self, event: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.started:7.1f} s  {event}")

    def state(self) -> Any:
        return [(a["labels"].get("alertname"), a["state"], a["labels"]) for a in self.prom.alerts()]

    async def firing(self, name: str, **labels: str) -> None:
        def probe() -> dict[str, str] | None:
            for a in alerts_of(self.prom, name, **labels):
                if a["state"] == "firing":
                    return dict(a["labels"])
            return None

        self.fired[name] = await eventually(
            probe, f"{name} {labels} firing", self.state, wait_s=WAIT_S, interval=2,
            not_yet=unanswered,
        )  # fmt: skip
        self.note(f"{name} firing")

    async def gone(self, name: str) -> None:
        """The alert that fired has left /api/v1/alerts: resolved."""
        assert name in self.fired, f"{name} never fired"
        labels = {k: v for k, v in self.fired[name].items() if k != "alertstate"}
        await eventually(
            lambda: not alerts_of(self.prom, name, **labels),
            f"{name} {labels} resolved",
            self.state,
            wait_s=WAIT_S,
            interval=2,
            not_yet=unanswered,
        )
        self.resolved.add(name)
        self.note(f"{name} resolved")


def pool_doc(name: str, queue: str, address: str, *, real: bool, **spec: Any) -> dict[str, Any]:
    """A pool running alerts_app, its workers scraped every INTERVAL through its ServiceMonitor;
    on the real node when `real`, else on kwok's simulated nodes (pods that never poll)."""
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name},
        "spec": {
            "connection": {"address": address},
            "taskQueue": queue,
            "image": {"repository": RUNTIME_REPO, "tag": RUNTIME_TAG, "pullPolicy": "Never"},
            "workflows": [
                f"{APP}:{w}" for w in ("Hold", "Flaky", "Quick", "Nondeterministic", "Chat")
            ],
            "activities": [f"{APP}:{a}" for a in ("hold", "always_fails", "noop")],
            "metrics": {"serviceMonitor": {"enabled": True, "interval": INTERVAL}},
            "template": template(real),
            **spec,
        },
    }


def template(real: bool) -> dict[str, Any]:
    app = {
        "volumes": [{"name": "app", "configMap": {"name": "alerts-app"}}],
        "volumeMounts": [{"name": "app", "mountPath": "/app/e2eapp", "readOnly": True}],
    }
    return {**placement(), **app} if real else app


def operator_slice(name: str, port: int) -> dict[str, Any]:
    """An EndpointSlice of the chart's Service naming an operator process on the bridge."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": "tests.e2e.test_alerts_live",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
    }


def helm_install(kube: KubeCluster, op_ns: str, pool_ns: str, home: Path) -> None:
    helm = require_tool("helm")
    alerts = shipped_alerts()
    overrides = [
        a
        for name, rule in alerts.items()
        if "for" in rule
        for a in ("--set", f"prometheusRule.forOverrides.{name}={FOR}")
    ] + [
        a
        for name, rule in alerts.items()
        if windowed(rule["expr"]) and name not in SHIPPED_WINDOW
        for a in ("--set", f"prometheusRule.windowOverrides.{name}={WINDOW}")
    ]
    done = subprocess.run(
        [helm, "--kubeconfig", kube.kubeconfig, "--repository-cache", str(home / "cache"),
         "install", RELEASE, str(CHART), "-n", op_ns,
         "--set", "crds.install=false", "--set", f"watchNamespaces={{{pool_ns}}}",
         # the operator runs as a process (see the module docstring), not as the chart's pods
         "--set", "replicaCount=0",
         "--set", "metrics.serviceMonitor.enabled=true",
         "--set", f"metrics.serviceMonitor.interval={INTERVAL}",
         "--set", "metrics.serviceMonitor.scrapeTimeout=4s",
         "--set", "prometheusRule.enabled=true", *overrides],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def helm_uninstall(kube: KubeCluster, op_ns: str) -> None:
    """The chart's cluster-scoped objects outlive the namespace: uninstall."""
    subprocess.run(
        [require_tool("helm"), "--kubeconfig", kube.kubeconfig, "uninstall", RELEASE, "-n", op_ns],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip


@contextlib.contextmanager
def operator_process(
    kube: KubeCluster, name: str, op_ns: str, pool_ns: str, log_dir: Path, *args: str
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube.kubeconfig, name, "-n", pool_ns, *args, log_dir=log_dir,
                         env={"POD_NAMESPACE": op_ns})  # fmt: skip
    kube.apply(operator_slice(f"{RELEASE}-{name}", op.metrics_port), namespace=op_ns)
    try:
        yield op
    finally:
        op.stop()
        kube.run("delete", "endpointslice", f"{RELEASE}-{name}", "-n", op_ns, "--ignore-not-found")


def patch(kube: KubeCluster, ns: str, name: str, spec: dict[str, Any]) -> None:
    kube.kubectl("patch", "twp", name, "-n", ns, "--type", "merge", "-p",
                 json.dumps({"spec": spec}))  # fmt: skip


def foreign_service(name: str) -> dict[str, Any]:
    """A Service the pool does not own, holding the name the pool's Service needs."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }


class FakeOpenAI:
    """A server on the bridge speaking the OpenAI chat API (POST /v1/chat/completions with
    `usage`): the one fake of this test, since the real API is paid and needs a key. The
    runtime's OpenAIChat activity calls it and records the twp_llm_* metrics."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((GATEWAY, free_port_on(GATEWAY)), Handler)
        self.url = f"http://{GATEWAY}:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def llm_env(url: str) -> list[dict[str, str]]:
    return [
        {"name": "TWP_OPENAI_BASE_URL", "value": url},
        {"name": "TWP_OPENAI_MODEL", "value": "test-model"},
        {"name": "OPENAI_API_KEY", "value": "sk-test"},
    ]


def ksm_objects(port: int) -> list[dict[str, Any]]:
    """kube-state-metrics' Service (no selector), its EndpointSlice on the bridge and the
    ServiceMonitor that scrapes it (honorLabels: its `namespace` and `pod` are the pods')."""
    labels = {"app.kubernetes.io/name": KSM}
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": KSM, "labels": labels},
         "spec": {"ports": [{"name": "http-metrics", "port": port, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": KSM, "labels": {"kubernetes.io/service-name": KSM,
                      "endpointslice.kubernetes.io/managed-by": "tests.e2e.test_alerts_live"}},
         "addressType": "IPv4",
         "ports": [{"name": "http-metrics", "port": port, "protocol": "TCP"}],
         "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}]},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": {"name": KSM},
         "spec": {"selector": {"matchLabels": labels},
                  "endpoints": [{"port": "http-metrics", "interval": INTERVAL,
                                 "honorLabels": True}]}},
    ]  # fmt: skip


def dashboard_queries(ns: str) -> list[tuple[str, str]]:
    """(title, PromQL) of every panel target and query variable of the chart's dashboard, with
    Grafana's variables as a user would have them: this namespace, every pool, and the rate
    interval Grafana derives from a 5 s scrape (4 scrapes, at least 1m here)."""
    doc = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])

    out = [
        (str(p.get("title")), str(t["expr"]))
        for p in panels(doc["panels"])
        for t in p.get("targets") or []
        if t.get("expr")
    ]
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
        assert m, f"variable {var['name']}: {q} is not label_values(series, label)"
        out.append((f"variable {var['name']}", f"count by ({m[2]}) ({m[1]})"))
    subs = {"$__rate_interval": "1m", "$namespace": ns, "$pool": ".+"}
    for key, value in subs.items():
        out = [(title, expr.replace(key, value)) for title, expr in out]
    return out


def ready(kube: KubeCluster, ns: str, name: str) -> bool:
    return condition(kube, ns, name).get("status") == "True"


async def drive_alerts(
    kube: KubeCluster,
    ns: str,
    prom: HostPrometheus,
    ledger: Ledger,
    fwd: Forwarder,
    client: Client,
    handles: list[WorkflowHandle[Any, Any]],
    feeding: asyncio.Event,
    op: OperatorProcess,
    log_dir: Path,
    op_ns: str,
    llm_url: str,
) -> None:
    addr = fwd.address
    queue = {
        n: f"alerts-{n}-{uuid.uuid4().hex[:6]}"
        for n in ("backlog", "slots", "flaky", "gpu", "x", "llm", "crash")
    }

    async def start(workflow: str, *args: Any, pool: str) -> None:
        wid = f"{pool}-{uuid.uuid4().hex[:8]}"
        handles.append(
            await client.start_workflow(workflow, args=args, id=wid, task_queue=queue[pool])
        )

    builtin = {"engine": "Builtin", "minReplicas": 1, "maxReplicas": 1, "pollIntervalSeconds": 5}
    # --- causes ------------------------------------------------------------------------------
    # Workers that never poll: the pool's pods run on kwok's simulated nodes.
    kube.apply(pool_doc("backlog", queue["backlog"], addr, real=False, autoscaling=builtin),
               namespace=ns)  # fmt: skip
    # One activity slot; two HOLD_S activities take turns on it.
    kube.apply(pool_doc("slots", queue["slots"], addr, real=True, replicas=1,
                        worker={"maxConcurrentActivities": 1}), namespace=ns)  # fmt: skip
    # No workflow cache: every workflow task replays (the non-determinism needs a replay).
    kube.apply(pool_doc("flaky", queue["flaky"], addr, real=True, replicas=1,
                        worker={"maxCachedWorkflows": 0}), namespace=ns)  # fmt: skip
    # 9 GPUs per pod: more than any node of the bed has (8).
    kube.apply(pool_doc("gpu", queue["gpu"], addr, real=False, gpu={"count": 9},
                        autoscaling={**builtin, "maxReplicas": 2}), namespace=ns)  # fmt: skip
    # Workers that exit at start (a workflow their code does not have): the kubelet restarts them.
    kube.apply(pool_doc("crashing", queue["crash"], addr, real=True, replicas=1,
                        workflows=[f"{APP}:Missing"]), namespace=ns)  # fmt: skip
    # The runtime's OpenAIChat activity against the local OpenAI-compatible server.
    kube.apply(pool_doc("llm", queue["llm"], addr, real=True, replicas=1, env=llm_env(llm_url),
                        activities=["worker_runtime.llm.openai:openai_chat"]),
               namespace=ns)  # fmt: skip
    # A Service named like the pool, not the pool's: NameConflict, Degraded, a reconcile error.
    kube.apply(foreign_service("conflict-a"), namespace=ns)
    kube.apply(pool_doc("conflict-a", queue["x"], addr, real=False, replicas=1), namespace=ns)

    async def feed() -> None:
        while not feeding.is_set():
            await start("Quick", pool="backlog")
            await start("Chat", pool="llm")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feeding.wait(), 3)

    feeder = asyncio.create_task(feed())
    for name in ("slots", "flaky", "llm"):  # work starts once the workers run: no task waits
        await eventually(functools.partial(ready, kube, ns, name), f"pool {name} Ready",
                         functools.partial(kube.get, "twp", name, namespace=ns),
                         wait_s=WAIT_S)  # fmt: skip
    for _ in range(2):
        await start("Hold", HOLD_S, pool="slots")
    ledger.note("pools on the real node Ready")
    await start("Flaky", pool="flaky")
    await start("Nondeterministic", pool="flaky")
    # A counter's first sample is no increase: a second pool's conflict makes the rate > 0.
    await eventually(lambda: prom.query('workerpool_operator_errors_total{reason="NameConflict"}'),
                     "the first NameConflict error scraped", wait_s=WAIT_S)  # fmt: skip
    kube.apply(foreign_service("conflict-b"), namespace=ns)
    kube.apply(pool_doc("conflict-b", queue["x"], addr, real=False, replicas=1), namespace=ns)

    await asyncio.gather(
        ledger.firing("TemporalWorkerPoolNoPollers", pool="backlog"),
        ledger.firing("TemporalWorkerPoolBacklogGrowing", pool="backlog"),
        ledger.firing("TemporalWorkerPoolSlotsExhausted", pool="slots",
                      worker_type="ActivityWorker"),
        ledger.firing("TemporalWorkerPoolActivityScheduleToStartHigh", pool="slots"),
        ledger.firing("TemporalWorkerPoolActivityFailureRate", pool="flaky"),
        ledger.firing("TemporalWorkerPoolNonDeterminism", pool="flaky"),
        ledger.firing("TemporalWorkerPoolDegraded", pool="conflict-a"),
        ledger.firing("WorkerPoolOperatorReconcileErrors", reason="NameConflict"),
        ledger.firing("TemporalWorkerPoolGPUCapacityPending", pool="gpu"),
        ledger.firing("TemporalWorkerPoolWorkerRestarts", pool="crashing"),
    )  # fmt: skip

    # Every query of the dashboard returns data while all of it is going on.
    def returns_data(expr: str) -> list[dict[str, Any]]:
        return prom.query(expr)

    await asyncio.gather(*(
        eventually(functools.partial(returns_data, expr), f"dashboard {title}: {expr} has data",
                   wait_s=WAIT_S, interval=2, not_yet=unanswered)
        for title, expr in dashboard_queries(ns)
    ))  # fmt: skip

    ledger.note("every dashboard query returned data")

    # --- causes removed ----------------------------------------------------------------------
    feeding.set()
    await feeder
    # The pool's workers move to the real node: they poll and drain the backlog.
    patch(kube, ns, "backlog", {"template": template(real=True)})
    for h in handles:
        if h.id.startswith("flaky-"):
            await h.terminate("cause removed")
    # The pools heal at the operator's next resync (RESYNC_S): it does not watch the deletion
    # of an object it does not own.
    kube.kubectl("delete", "service", "conflict-a", "conflict-b", "-n", ns)
    patch(kube, ns, "gpu", {"gpu": {"count": 1}})
    # Its restarts stay in the 15 min window; the pool's series (the alert's join) go with it.
    kube.kubectl("delete", "twp", "crashing", "-n", ns)
    await asyncio.gather(
        ledger.gone("TemporalWorkerPoolWorkerRestarts"),
        ledger.gone("TemporalWorkerPoolNoPollers"),
        ledger.gone("TemporalWorkerPoolBacklogGrowing"),
        ledger.gone("TemporalWorkerPoolSlotsExhausted"),  # the two activities are done
        ledger.gone("TemporalWorkerPoolDegraded"),
        ledger.gone("TemporalWorkerPoolGPUCapacityPending"),
    )

    # --- a second operator run without leader election ----------------------------------
    async def two_leaders() -> None:
        with operator_process(kube, "stray", op_ns, ns, log_dir):
            await ledger.firing("WorkerPoolOperatorMultipleLeaders", namespace=op_ns)
        await ledger.gone("WorkerPoolOperatorMultipleLeaders")

    # The backlog's workers take it in a second or two, before Prometheus first scrapes them:
    # a series' first sample is no increase, so those waits need not count. Once their
    # workflow-task series are scraped, the tasks that wait through the outage below do.
    wft = "TemporalWorkerPoolWorkflowTaskScheduleToStartHigh"
    wft_series = (
        "temporal_workflow_task_schedule_to_start_latency_count"
        f'{{namespace="{ns}", service="backlog"}}'
    )

    # The workers' alerts resolve as their rate windows empty out, the operator's once the
    # second operator is gone. Meanwhile Temporal becomes unreachable: the workers go unready
    # but stay scraped (prometheus-operator's scrape config keeps not-ready endpoints), so
    # their windows empty all the same.
    quiet = asyncio.ensure_future(asyncio.gather(
        two_leaders(),
        ledger.gone("WorkerPoolOperatorReconcileErrors"),
        ledger.gone("TemporalWorkerPoolActivityScheduleToStartHigh"),
        ledger.gone("TemporalWorkerPoolActivityFailureRate"),
        ledger.gone("TemporalWorkerPoolNonDeterminism"),
    ))  # fmt: skip

    async def outage() -> None:
        """Temporal unreachable for the operator's scaler and every worker, then back."""
        await eventually(lambda: prom.query(wft_series), "the backlog workers' task series "
                         "scraped", wait_s=WAIT_S, not_yet=unanswered)  # fmt: skip
        await eventually(lambda: not alerts_of(prom, wft), f"{wft} not active before the outage",
                         ledger.state, wait_s=WAIT_S, interval=2, not_yet=unanswered)  # fmt: skip
        fwd.stop()
        ledger.note("Temporal unreachable")
        # Workflows started meanwhile (the client does not go through the forwarder): no
        # worker can take their tasks until it is back, then the backlog pool's take them late.
        for _ in range(6):
            await start("Quick", pool="backlog")
        await ledger.firing("WorkerPoolOperatorScalerPollErrors")
        fwd.start()
        ledger.note("Temporal back")

    async def tasks_waited() -> None:
        await ledger.firing(wft, pool="backlog")
        await ledger.gone(wft)  # nothing waits any more: the rate window empties

    async def operator_down() -> None:
        """Last for the operator: its other alerts must resolve on their own first."""
        await ledger.gone("WorkerPoolOperatorScalerPollErrors")
        await quiet
        op.kill()
        await ledger.firing("WorkerPoolOperatorNoLeader")
        op.restart()
        await ledger.gone("WorkerPoolOperatorNoLeader")

    try:
        await outage()
        await asyncio.gather(quiet, tasks_waited(), operator_down())
    finally:
        quiet.cancel()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring_bins() -> None:
    if monitoring.missing_binaries():
        monitoring.build()


@pytest.fixture
def op_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"t-alerts-op-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


# --- the test --------------------------------------------------------------------------------


@pytest.mark.usefixtures("pool_crd", "monitoring_bins", "runtime_image")
async def test_every_alert_fires_and_resolves_on_a_live_prometheus(
    kube_cluster: KubeCluster,
    real_node: RealNode,
    namespace: str,
    op_namespace: str,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    kube, ns, op_ns = kube_cluster, namespace, op_namespace
    alerts = shipped_alerts()
    monitoring.install_crds(kube.kubeconfig)
    helm_install(kube, op_ns, ns, tmp_path / "helm")
    kube.kubectl("create", "configmap", "alerts-app", "-n", ns,
                 f"--from-file=alerts_app.py={APP_FILE}")  # fmt: skip
    fwd = Forwarder(temporal_server.address, tmp_path / "forward.log")
    fwd.start()
    prom_op = PrometheusOperator(kube.kubeconfig, [op_ns, ns], tmp_path / "prometheus-operator.log")
    prom = HostPrometheus(kube.kubeconfig, op_ns, PROMETHEUS, tmp_path / "prometheus")
    prom.workdir.mkdir()
    ksm = KubeStateMetrics(kube.kubeconfig, [ns], GATEWAY, tmp_path / "kube-state-metrics.log")
    llm = FakeOpenAI()
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    feeding = asyncio.Event()
    handles: list[WorkflowHandle[Any, Any]] = []
    ledger: Ledger | None = None
    try:
        kube.apply(monitoring.prometheus_object(PROMETHEUS, [op_ns, ns], INTERVAL),
                   namespace=op_ns)  # fmt: skip
        for obj in ksm_objects(ksm.port):
            kube.apply(obj, namespace=op_ns)
        await asyncio.to_thread(prom.start)
        # The chart's rules, as prometheus-operator hands them to Prometheus: every alert.
        await eventually(
            lambda: prom.rule_names() == set(alerts),
            "the chart's rules loaded",
            lambda: (prom.rule_names(), prom_op.log_path.read_text()[-3000:]),
        )
        ledger = Ledger(prom)
        ledger.note("rules loaded")
        with operator_process(kube, "main", op_ns, ns, tmp_path, "--leader-elect",
                              "--resync-seconds", RESYNC_S) as op:  # fmt: skip
            await eventually(
                lambda: prom.query(f'workerpool_operator_leader{{namespace="{op_ns}"}} == 1'),
                "Prometheus scrapes the leading operator through the chart's ServiceMonitor",
                lambda: (prom.targets(), op.log_path.read_text()[-2000:]),
            )
            await drive_alerts(kube, ns, prom, ledger, fwd, client, handles, feeding, op,
                               tmp_path, op_ns, llm.url)  # fmt: skip
    finally:
        if ledger is not None:
            print("\n".join(ledger.timeline))
        feeding.set()
        for h in handles:
            with contextlib.suppress(Exception):
                await h.terminate("test done")
        prom.stop()
        prom_op.stop()
        ksm.stop()
        llm.stop()
        fwd.stop()
        for kind in ("twp", "prometheus"):
            kube.run("delete", kind, "--all", "-n", ns if kind == "twp" else op_ns,
                     "--wait=false")  # fmt: skip
        await asyncio.to_thread(helm_uninstall, kube, op_ns)

    assert ledger is not None
    fired = set(ledger.fired) & ledger.resolved
    assert fired == set(alerts) - set(NOT_TRIGGERED), (sorted(fired), sorted(alerts))
    record("release", alerts_fired_live=len(fired), alerts_total=len(alerts))
