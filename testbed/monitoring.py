"""prometheus-operator and Prometheus on the local bed, for the live alert test.

All three (with kube-state-metrics) are built from their Go modules by hack/build-monitoring.sh
(cached; `make tools`).
prometheus-operator runs as a process against the bed's API server and does its whole job: it
reconciles a `Prometheus` object, the chart's ServiceMonitor and PrometheusRule and the pools'
ServiceMonitors into the Prometheus config Secret and the rule-file ConfigMaps, exactly as in a
cluster. What a cluster would do next, run that config in a pod, cannot happen here: the bed's
pods reach only the real node's bridge, not the API server that Prometheus' Kubernetes service
discovery must watch. So `HostPrometheus` runs the same Prometheus binary on the host and does
the kubelet's and the config reloader's part: it writes the operator's Secret and ConfigMaps to
files, expands `$(POD_NAME)` and `$(SHARD)` as the reloader does from the pod's environment, and
reloads Prometheus when they change. Two more edits, both for the pod's environment and none to
a scrape job or rule: rule files live under the work folder instead of /etc/prometheus/rules,
and each Kubernetes discovery gets a kubeconfig instead of the in-cluster service-account files.

The `Prometheus` object's own StatefulSet is pinned to a node that does not exist, so its pod
stays Pending and nothing pretends to be that server.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml

from testbed.cluster import REPO_ROOT, cache_root, kubectl, read_versions, wait_established
from testbed.forward import free_port_on
from testbed.keda import run_build_script
from testbed.proc import stop as stop_process
from testbed.temporal import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-monitoring.sh"
BINARIES = ("prometheus", "prometheus-operator", "kube-state-metrics")
RULES_DIR = "/etc/prometheus/rules"  # where the operator's StatefulSet mounts the rule files
NOWHERE = {"workerpools.dev/prometheus-runs-on-the-host": "true"}  # no node has this label
# What the config reloader expands from the pod's environment: its name, and its shard (one).
POD_ENV = {"POD_NAME": "prometheus-host-0", "SHARD": "0"}


def bin_dir() -> Path:
    return cache_root() / "tools" / "bin"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if not (bin_dir() / b).exists()]


def build(timeout: float = 3600) -> Path:
    """Run hack/build-monitoring.sh (a no-op when cached); return the bin folder."""
    return run_build_script(BUILD_SCRIPT, timeout)


def crd_folder() -> Path:
    version = read_versions()["PROMETHEUS_OPERATOR_VERSION"]
    return cache_root() / "crds" / f"prometheus-operator-all-{version}"


def install_crds(kubeconfig: str) -> None:
    """Every monitoring.coreos.com CRD at PROMETHEUS_OPERATOR_VERSION (the operator watches
    them all); server-side apply, so a bed that has some of them already is left consistent."""
    files = sorted(crd_folder().glob("*.yaml"))
    if not files:
        raise RuntimeError(f"no CRDs in {crd_folder()}: run hack/build-monitoring.sh")
    args = [a for f in files for a in ("-f", str(f))]
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", *args, timeout=180)
    # BaseLoader: the CRDs hold a bare `=` (a YAML "value" tag) that safe_load refuses.
    names = [yaml.load(f.read_text(), Loader=yaml.BaseLoader)["metadata"]["name"] for f in files]
    wait_established(kubeconfig, *names, timeout=120)


def prometheus_object(name: str, namespaces: list[str], interval: str) -> dict[str, Any]:
    """A Prometheus that selects every ServiceMonitor and PrometheusRule of `namespaces`."""
    selector = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
        ]
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceMonitorSelector": {},
            "serviceMonitorNamespaceSelector": selector,
            "ruleSelector": {},
            "ruleNamespaceSelector": selector,
            # EndpointSlices: the operator's metrics endpoint is a hand-made slice (see the test)
            "serviceDiscoveryRole": "EndpointSlice",
            "scrapeInterval": interval,
            "evaluationInterval": interval,
            "scrapeTimeout": "4s",
            "nodeSelector": NOWHERE,
        },
    }


class PrometheusOperator:
    """prometheus-operator as a process, scoped to `namespaces`."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log: Path) -> None:
        self.port = free_port()
        self._log: IO[bytes] = log.open("ab")
        self.log_path = log
        self.proc = subprocess.Popen(
            [str(bin_dir() / "prometheus-operator"),
             f"--namespaces={','.join(namespaces)}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--log-format=json"],
            env={"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin"},
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)
        self._log.close()


class KubeStateMetrics:
    """kube-state-metrics as a process, exporting the pods of `namespaces` on `host` (the
    bridge, where a Service's hand-made EndpointSlice can name it, as for the operator)."""

    def __init__(self, kubeconfig: str, namespaces: list[str], host: str, log: Path) -> None:
        self.host, self.port = host, free_port_on(host)
        self._log: IO[bytes] = log.open("ab")
        self.log_path = log
        self.proc = subprocess.Popen(
            [str(bin_dir() / "kube-state-metrics"),
             f"--kubeconfig={kubeconfig}",
             f"--namespaces={','.join(namespaces)}",
             "--resources=pods",
             f"--host={host}", f"--port={self.port}",
             "--telemetry-host=127.0.0.1", f"--telemetry-port={free_port()}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)
        self._log.close()


def _secret_config(kubeconfig: str, namespace: str, name: str) -> str | None:
    proc = kubectl(kubeconfig, "get", "secret", f"prometheus-{name}", "-n", namespace,
                   "-o", "json", check=False)  # fmt: skip
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout).get("data") or {}
    blob = data.get("prometheus.yaml.gz")
    return gzip.decompress(base64.b64decode(blob)).decode() if blob else None


def _rule_files(kubeconfig: str, namespace: str, name: str) -> dict[str, dict[str, str]]:
    """ConfigMap name -> {file: text} of the operator's rule files for Prometheus `name`."""
    items = json.loads(kubectl(kubeconfig, "get", "configmaps", "-n", namespace,
                               "-o", "json").stdout)["items"]  # fmt: skip
    prefix = f"prometheus-{name}-rulefiles-"
    return {
        cm["metadata"]["name"]: dict(cm.get("data") or {})
        for cm in items
        if cm["metadata"]["name"].startswith(prefix)
    }


def host_config(text: str, rules_dir: Path, kubeconfig: str) -> str:
    """The operator's config as the Prometheus pod would run it, for a process on the host."""
    for name, value in POD_ENV.items():
        text = text.replace(f"$({name})", value)
    config = yaml.safe_load(text)
    config["rule_files"] = [
        str(rules_dir) + f[len(RULES_DIR) :] if f.startswith(RULES_DIR) else f
        for f in config.get("rule_files") or []
    ]
    for job in config.get("scrape_configs") or []:
        for sd in job.get("kubernetes_sd_configs") or []:
            sd["kubeconfig_file"] = kubeconfig
    return yaml.safe_dump(config, sort_keys=False)


class HostPrometheus:
    """The Prometheus binary on the host, running the config prometheus-operator generated for
    the `Prometheus` object `name` in `namespace` (see the module docstring)."""

    def __init__(self, kubeconfig: str, namespace: str, name: str, workdir: Path) -> None:
        self.kubeconfig, self.namespace, self.name = kubeconfig, namespace, name
        self.workdir = workdir
        self.config_file = workdir / "prometheus.yaml"
        self.rules_dir = workdir / "rules"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.reloads = 0
        self._seen: tuple[str, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sync_loop, daemon=True)
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def sync(self) -> bool:
        """Write the operator's current config and rule files; True when they changed."""
        raw = _secret_config(self.kubeconfig, self.namespace, self.name)
        if raw is None:
            return False
        rules = _rule_files(self.kubeconfig, self.namespace, self.name)
        key = (raw, json.dumps(rules, sort_keys=True))
        if key == self._seen:
            return False
        for folder, files in rules.items():
            d = self.rules_dir / folder
            d.mkdir(parents=True, exist_ok=True)
            for old in d.iterdir():
                if old.name not in files:
                    old.unlink()
            for fname, body in files.items():
                (d / fname).write_text(body)
        config = host_config(raw, self.rules_dir, self.kubeconfig)
        self.config_file.write_text(config)
        self._seen = key
        return True

    def start(self, timeout: float = 300) -> None:
        """Wait for the operator's first config, then start Prometheus and the sync loop."""
        deadline = time.monotonic() + timeout
        while not self.sync():
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus-operator wrote no config for {self.name}")
            time.sleep(1)
        self._log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [str(bin_dir() / "prometheus"),
             f"--config.file={self.config_file}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not start:\n{self.log_tail()}")
            time.sleep(0.5)
        self._thread.start()

    def _sync_loop(self) -> None:
        """The config reloader's job: reload whenever the operator changed the config."""
        while not self._stop.wait(2):
            try:
                if self.sync():
                    req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
                    with urllib.request.urlopen(req, timeout=30):
                        self.reloads += 1
            except Exception as exc:  # keep syncing; the log says why one round failed
                if self._log is not None:
                    self._log.write(f"sync failed: {exc!r}\n".encode())

    def api(self, path: str, **params: str) -> Any:
        if self.proc is not None and self.proc.poll() is not None:
            # Not "no answer yet": say so at once instead of waiting out a probe.
            raise RuntimeError(f"Prometheus exited ({self.proc.returncode}):\n{self.log_tail()}")
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) from /api/v1/alerts."""
        return list(self.api("/api/v1/alerts")["alerts"])

    def query(self, promql: str) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/query", query=promql)["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/targets")["activeTargets"])

    def rule_names(self) -> set[str]:
        groups = self.api("/api/v1/rules")["groups"]
        return {r["name"] for g in groups for r in g["rules"] if r.get("type") == "alerting"}

    def log_tail(self, n: int = 4000) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.proc is not None:
            stop_process(self.proc, grace_s=20)
        if self._log is not None:
            self._log.close()
