"""Local Kubernetes test bed: a real control plane run by ``kwokctl --runtime binary``.

kind cannot run here (no image registry), so the pinned kube-apiserver, kube-controller-manager,
kube-scheduler and etcd built by ``hack/build-controlplane.sh`` run as plain processes, and the
kwok controller plays the kubelets of fake nodes. Everything that reaches the API server is real:
admission (PodSecurity included), RBAC, the scheduler, the garbage collector, the upstream CRD
schemas. Only containers are simulated: pods on the fake nodes turn Running and Ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLUSTER_NAME = "workerpools"
REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
FETCH_CRDS = REPO_ROOT / "hack" / "fetch-crds.sh"
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kwok",
    "kwokctl",
)
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
POOL_LABEL = "workerpools.dev/node-pool"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# metrics-server reads a node's resource metrics from this path instead of /metrics/resource;
# kwok serves each fake node's simulated kubelet metrics under its own path.
RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"
KWOK_METRICS_CRDS = ("Metric", "ClusterResourceUsage", "ResourceUsage")
# The API server's audit log records every write (who, what, which field manager), so tests
# and benchmarks count writes from the server's side instead of trusting the writer's own
# counters (testbed/audit.py reads it). Metadata level: no request or response bodies.
AUDIT_WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # kwok's node heartbeats and the components' leader-election Leases: constant noise
        # that no test counts (the operator's own Lease lives in its own namespace).
        {"level": "None", "namespaces": ["kube-node-lease", "kube-system"],
         "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
        {"level": "Metadata", "verbs": list(AUDIT_WRITE_VERBS)},
        {"level": "None"},
    ],
}  # fmt: skip


class TestbedError(RuntimeError):
    """The test bed could not be brought to the requested state; the message says why."""


def kwok_metrics_path(node: str) -> str:
    """Where kwok serves a fake node's kubelet resource metrics (its Metric object's path)."""
    return f"/metrics/nodes/{node}/metrics/resource"


@dataclass(frozen=True)
class FakeNode:
    """One kwok-managed node; GPU nodes carry what the NVIDIA device plugin would publish."""

    name: str
    gpu: bool

    def manifest(self) -> dict[str, Any]:
        """Node object as a kubelet plus GPU device plugin would register it."""
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: "gpu" if self.gpu else "cpu",
        }
        spec: dict[str, Any] = {}
        if self.gpu:
            capacity[GPU_RESOURCE] = "8"
            labels[GPU_PRESENT_LABEL] = "true"
            spec["taints"] = [dict(GPU_TAINT)]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {
                    KWOK_NODE_ANNOTATION: "fake",
                    RESOURCE_METRICS_PATH_ANNOTATION: kwok_metrics_path(self.name),
                },
            },
            "spec": spec,
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


FAKE_NODES = (
    FakeNode("kwok-cpu-0", gpu=False),
    FakeNode("kwok-cpu-1", gpu=False),
    FakeNode("kwok-gpu-0", gpu=True),
    FakeNode("kwok-gpu-1", gpu=True),
)


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse hack/versions.env so Python and the shell scripts share one set of pins."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        versions[key.strip()] = value.strip().strip("\"'")
    return versions


def cache_root() -> Path:
    """Cache folder shared with the hack/ scripts (outside the repo, reused across checkouts)."""
    explicit = os.environ.get("WORKERPOOLS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "workerpools"


def kubectl(
    kubeconfig: str | Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against one kubeconfig; on failure raise with kubectl's own stderr."""
    binary = shutil.which("kubectl")
    if binary is None:
        raise TestbedError("kubectl is not on PATH; install kubectl (any version within 2 minors)")
    cmd = [binary, "--kubeconfig", str(kubeconfig), *args]
    try:
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"timed out after {timeout}s: kubectl {' '.join(args)}") from exc
    if check and proc.returncode != 0:
        raise TestbedError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}"
        )
    return proc


def wait_until(
    probe: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str
) -> None:
    """testbed.wait.poll for the bed itself (outside pytest): raise TestbedError on timeout."""
    from testbed.wait import poll

    last = poll(probe, wait_s=timeout, interval=interval, not_yet=None)
    if not last.ok:
        raise TestbedError(f"gave up after {timeout:.0f}s waiting for {what}")


def crd_files(cache: Path | None = None, versions: Mapping[str, str] | None = None) -> list[Path]:
    """Upstream CRD files at the pinned versions, fetched by hack/fetch-crds.sh when missing."""
    cache = cache or cache_root()
    versions = versions or read_versions()
    folders = [
        cache / "crds" / f"prometheus-operator-{versions['PROMETHEUS_OPERATOR_VERSION']}",
        cache / "crds" / f"keda-{versions['KEDA_VERSION']}",
    ]
    if not all((folder / ".complete").is_file() for folder in folders):
        env = {**os.environ, "WORKERPOOLS_CACHE": str(cache)}
        proc = subprocess.run(
            ["bash", str(FETCH_CRDS)], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise TestbedError(f"hack/fetch-crds.sh failed:\n{proc.stderr.strip()}")
    return sorted(path for folder in folders for path in folder.glob("*.yaml"))


def crd_names(files: Iterable[Path]) -> list[str]:
    """metadata.name of every CRD in the files, to wait for them to be Established."""
    names: list[str] = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                names.append(str(doc["metadata"]["name"]))
    return names


def wait_established(kubeconfig: str | Path, *names: str, timeout: float = 60) -> None:
    """Wait until each CRD is Established. `kubectl wait --for=condition=Established` fails at
    once (instead of waiting) on a CRD so new that it has no status.conditions yet."""

    def established(name: str) -> bool:
        proc = kubectl(kubeconfig, "get", "crd", name, "-o",
                       "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                       check=False)  # fmt: skip
        return proc.returncode == 0 and proc.stdout.strip() == "True"

    for name in names:
        wait_until(
            functools.partial(established, name), timeout=timeout, what=f"CRD {name} Established"
        )


def install_crds(kubeconfig: str | Path, *, cache: Path | None = None) -> list[str]:
    """Server-side apply the third-party CRDs (too big for client-side apply's annotation)."""
    files = crd_files(cache)
    file_args = [arg for path in files for arg in ("-f", str(path))]
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", *file_args)
    names = crd_names(files)
    wait_established(kubeconfig, *names)
    return names


def install_fake_nodes(kubeconfig: str | Path, nodes: Sequence[FakeNode] = FAKE_NODES) -> None:
    """Register the fake nodes and wait until kwok reports them Ready."""
    items = [node.manifest() for node in nodes]
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    kubectl(kubeconfig, "apply", "-f", "-", input=doc)
    node_args = [f"node/{node.name}" for node in nodes]
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "--timeout=60s", *node_args)


def api_ready(kubeconfig: str | Path) -> bool:
    """True when the API server answers /readyz (all its post-start hooks are done)."""
    if not Path(kubeconfig).is_file():
        return False
    try:
        proc = kubectl(kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s", check=False)
    except TestbedError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def default_service_account_exists(kubeconfig: str | Path, namespace: str = "default") -> bool:
    """The serviceaccount controller (kube-controller-manager) creates it: proves KCM runs."""
    proc = kubectl(
        kubeconfig, "get", "serviceaccount", "default", "-n", namespace, "-o", "name", check=False
    )
    return proc.returncode == 0


def _pid_alive(name: str) -> bool:
    """A lease file is named by the pid of its test session; stale ones (crashes) are ignored."""
    if not name.isdigit():
        return False
    try:
        os.kill(int(name), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalCluster:
    """The kwokctl-managed cluster, with every file of kwokctl under the cache folder."""

    def __init__(self, name: str | None = None, cache: Path | None = None) -> None:
        # WORKERPOOLS_CLUSTER_NAME: a second, private bed next to the shared one (a benchmark
        # that must not share the API server, or a checkout whose bed flags differ).
        self.name: str = name or os.environ.get("WORKERPOOLS_CLUSTER_NAME") or CLUSTER_NAME
        self.cache = cache or cache_root()
        self.versions = read_versions()
        self.bin_dir = self.cache / "k8s" / self.versions["KUBERNETES_VERSION"] / "bin"
        self.kwok_workdir = self.cache / "kwok"
        self.cluster_dir = self.kwok_workdir / "clusters" / self.name
        self.config_file = self.kwok_workdir / f"{self.name}.kwokctl.yaml"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise up/down across processes (parallel pytest sessions share one cluster)."""
        self.kwok_workdir.mkdir(parents=True, exist_ok=True)
        with (self.kwok_workdir / f"{self.name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def _leases(self) -> Path:
        return self.kwok_workdir / f"{self.name}.users"

    @property
    def _owned_marker(self) -> Path:
        return self.kwok_workdir / f"{self.name}.started-by-tests"

    def acquire(self) -> Path:
        """Start or reuse the cluster for one test session and record that this process uses it.

        A cluster started here is marked so that the last session to release it stops it; a
        cluster someone started by hand (``make cluster-up``) is left running.
        """
        with self.lock():
            started = not self.is_current()
            kubeconfig = self.up()
            if started:
                self._owned_marker.touch()
            self._leases.mkdir(exist_ok=True)
            (self._leases / str(os.getpid())).touch()
            return kubeconfig

    def release(self) -> bool:
        """Drop this process's lease; stop the cluster if tests started it and no user is left.

        Returns True when the cluster was stopped.
        """
        with self.lock():
            (self._leases / str(os.getpid())).unlink(missing_ok=True)
            alive = [p for p in self._leases.glob("*") if _pid_alive(p.name)]
            if alive or not self._owned_marker.exists():
                return False
            self.down()
            return True

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig kwokctl writes for the host (removed by ``down``)."""
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def audit_policy_file(self) -> Path:
        """The audit policy the API server loads (written before the cluster is created)."""
        return self.kwok_workdir / f"{self.name}.audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines, writes only: AUDIT_POLICY)."""
        return self.cluster_dir / "logs" / "audit.log"

    def missing_binaries(self) -> list[str]:
        """Binaries hack/build-controlplane.sh has not built yet."""
        return [b for b in BINARIES if not os.access(self.bin_dir / b, os.X_OK)]

    def exists(self) -> bool:
        """kwokctl has a saved configuration for this cluster (it may be stopped)."""
        return (self.cluster_dir / "kwok.yaml").is_file()

    def healthy(self) -> bool:
        """API ready, controller manager working and every fake node Ready."""
        if not (self.exists() and api_ready(self.kubeconfig)):
            return False
        if not default_service_account_exists(self.kubeconfig):
            return False
        proc = kubectl(self.kubeconfig, "get", "nodes", "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        ready = {
            item["metadata"]["name"]
            for item in json.loads(proc.stdout)["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
        }
        return all(node.name in ready for node in FAKE_NODES)

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of live components of this cluster (for leak checks).

        kwokctl runs them from symlinks in <cluster>/bin, which tells them apart from e.g. a
        kubectl that merely names the cluster's kubeconfig.
        """
        marker = f"{self.cluster_dir / 'bin'}/"
        found: list[tuple[int, str]] = []
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                raw = (proc_dir / "cmdline").read_bytes()
            except OSError:
                continue
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            if cmdline.startswith(marker):
                found.append((int(proc_dir.name), cmdline))
        return found

    def _env(self) -> dict[str, str]:
        """kwokctl environment: its workdir (and download cache) live under our cache."""
        return {**os.environ, "KWOK_WORKDIR": str(self.kwok_workdir)}

    def _kwokctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / "kwokctl"), "--name", self.name, *args]
        try:
            proc = subprocess.run(
                cmd,
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"kwokctl {' '.join(args)} timed out after {timeout}s") from exc
        if proc.returncode != 0:
            raise TestbedError(
                f"kwokctl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout.strip()}\n{proc.stderr.strip()}\n{self._log_tails()}"
            )
        return proc

    def _log_tails(self, lines: int = 15) -> str:
        """Last lines of each component log, so a failed start explains itself."""
        out: list[str] = []
        for log in sorted((self.cluster_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def kwokctl_config(self) -> dict[str, Any]:
        """KwokctlConfiguration: local binaries only (no downloads), loopback, real admission."""
        b = self.bin_dir
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": self.versions["KUBERNETES_VERSION"],
                "etcdVersion": self.versions["ETCD_VERSION"].lstrip("v"),
                "kwokVersion": self.versions["KWOK_VERSION"],
                "bindAddress": "127.0.0.1",
                "securePort": True,
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "quietPull": True,
                "cacheDir": str(self.kwok_workdir / "cache"),
                "kubeApiserverBinary": str(b / "kube-apiserver"),
                "kubeControllerManagerBinary": str(b / "kube-controller-manager"),
                "kubeSchedulerBinary": str(b / "kube-scheduler"),
                "etcdBinary": str(b / "etcd"),
                "kwokControllerBinary": str(b / "kwok"),
                # kwok's resource-usage simulation as CRDs, inert until a test creates a
                # Metric and a (Cluster)ResourceUsage (testbed/metrics_server.py): then kwok
                # serves kubelet-style /metrics/resource for its nodes' pods, which
                # metrics-server scrapes. No objects, no usage: other tests see no change.
                "enableCRDs": list(KWOK_METRICS_CRDS),
            },
            "componentsPatches": [
                {
                    "name": "kube-apiserver",
                    "extraArgs": [
                        # On by default since 1.25; explicit because the e2e suite relies on it.
                        {"key": "enable-admission-plugins", "value": "PodSecurity"},
                        {"key": "audit-policy-file", "value": str(self.audit_policy_file)},
                        {"key": "audit-log-path", "value": str(self.audit_log)},
                        {"key": "audit-log-format", "value": "json"},
                        # no rotation: readers scan one file; a bed lives hours, not weeks
                        {"key": "audit-log-maxsize", "value": "0"},
                        # batch mode would delay events by up to a second: blocking writes
                        # keep the log current for a reader that counts right after acting
                        {"key": "audit-log-mode", "value": "blocking"},
                    ],
                },
                {
                    "name": "kube-controller-manager",
                    "extraArgs": [
                        # All default controllers: deployment, replicaset, garbagecollector,
                        # horizontalpodautoscaling, serviceaccount, namespace, ...
                        {"key": "controllers", "value": "*"},
                    ],
                },
                {
                    # kwokctl starts kwok with --manage-all-nodes=true, which would also fake
                    # the status of pods on the real kubelet node (testbed/realnode.py): kwok
                    # manages only the nodes annotated as its own (FakeNode.manifest).
                    "name": "kwok-controller",
                    "extraArgs": [
                        {"key": "manage-all-nodes", "value": "false", "override": True},
                        {
                            "key": "manage-nodes-with-annotation-selector",
                            "value": f"{KWOK_NODE_ANNOTATION}=fake",
                        },
                    ],
                },
            ],
        }

    def _rendered_config(self) -> str:
        return yaml.safe_dump(self.kwokctl_config(), sort_keys=False)

    def config_matches(self) -> bool:
        """The running cluster was created from the configuration this checkout generates."""
        return (
            self.config_file.is_file()
            and self.config_file.read_text() == self._rendered_config()
            and self.audit_policy_file.is_file()
            and self.audit_policy_file.read_text() == yaml.safe_dump(AUDIT_POLICY)
        )

    def is_current(self) -> bool:
        """Healthy and started from the configuration this checkout would generate now."""
        return self.config_matches() and self.healthy()

    def live_users(self) -> set[int]:
        """Pids of test sessions holding a lease (see acquire), this process excluded."""
        if not self._leases.is_dir():
            return set()
        pids = {int(p.name) for p in self._leases.iterdir() if _pid_alive(p.name)}
        return pids - {os.getpid()}

    def up(self, timeout: float = 180) -> Path:
        """Start (or reuse) the cluster, install nodes and CRDs; return the kubeconfig path."""
        missing = self.missing_binaries()
        if missing:
            raise TestbedError(
                f"missing control-plane binaries in {self.bin_dir}: {', '.join(missing)}; "
                "run `make controlplane` (hack/build-controlplane.sh) first"
            )
        if self.is_current():
            return self.kubeconfig
        if self.exists() and self.config_matches():
            # Possibly only slow (2 loaded cores): never recreate a cluster on one failed probe.
            with contextlib.suppress(TestbedError):
                wait_until(self.healthy, timeout=20, interval=2, what="cluster health")
                return self.kubeconfig
        if self.exists():
            # Stale (processes gone after a reboot) or built from other pins/flags: a fresh
            # cluster takes seconds, a repair would need to know what changed.
            users = self.live_users()
            if users:
                raise TestbedError(
                    f"cluster {self.name} is unhealthy or outdated but test sessions "
                    f"{sorted(users)} still use it; let them finish or run "
                    "`python -m testbed down --force`"
                )
            self.down()
        self.kwok_workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._rendered_config())
        self.audit_policy_file.write_text(yaml.safe_dump(AUDIT_POLICY))
        self._kwokctl(
            "create",
            "cluster",
            "--config",
            str(self.config_file),
            # Empty: do not touch ~/.kube/config; callers use self.kubeconfig explicitly.
            "--kubeconfig",
            "",
            f"--timeout={int(timeout)}s",
            f"--wait={int(timeout)}s",
            timeout=timeout + 30,
        )
        try:
            wait_until(lambda: api_ready(self.kubeconfig), timeout=timeout, what="API /readyz")
            install_fake_nodes(self.kubeconfig)
            install_crds(self.kubeconfig, cache=self.cache)
            wait_until(
                lambda: default_service_account_exists(self.kubeconfig),
                timeout=timeout,
                what="kube-controller-manager to create serviceaccount default/default",
            )
        except TestbedError as exc:
            raise TestbedError(f"{exc}\n{self._log_tails()}") from exc
        return self.kubeconfig

    def down(self) -> None:
        """Stop every component and delete kwokctl's files; verify no process is left.

        The real kubelet node (testbed/realnode.py) goes first if it is joined to this bed (or
        not running): one joined to another bed is that bed's, with its tests' pods on it.
        """
        from testbed.realnode import RealNode

        node = RealNode(self.cache)
        if node.serves() in (None, str(self.kubeconfig)):
            node.stop(self.kubeconfig)
        self._owned_marker.unlink(missing_ok=True)
        shutil.rmtree(self._leases, ignore_errors=True)
        if self.exists():
            # kwokctl rejects an empty path here; its own kubeconfig is deleted anyway.
            self._kwokctl("delete", "cluster", "--kubeconfig", str(self.kubeconfig), timeout=120)
        wait_until(lambda: not self.processes(), timeout=30, what="cluster processes to exit")
        if self.cluster_dir.exists():
            shutil.rmtree(self.cluster_dir)
        self.config_file.unlink(missing_ok=True)
        self.audit_policy_file.unlink(missing_ok=True)

    def status(self) -> str:
        """One-line human summary for the CLI."""
        if not self.exists():
            return f"cluster {self.name}: absent"
        state = "healthy" if self.healthy() else "unhealthy"
        return (
            f"cluster {self.name}: {state}, {len(self.processes())} processes, "
            f"kubeconfig {self.kubeconfig}"
        )


def use_built_binaries() -> None:
    """Put the pinned binaries first on PATH, so kubectl matches the server (v1.34).

    A fresh machine may have no kubectl at all; hack/build-controlplane.sh builds one.
    """
    bin_dir = str(cache_root() / "k8s" / read_versions()["KUBERNETES_VERSION"] / "bin")
    path = os.environ.get("PATH", "")
    if os.path.isdir(bin_dir) and not path.startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


use_built_binaries()
