"""KEDA's operator and metrics API server as local processes against the bed's control plane.

Built from KEDA's Go module by hack/build-keda.sh (cached; `make tools` builds it). The operator
runs its ScaledObject controller and its scalers (the `temporal` scaler talks to the dev server
on loopback); the metrics API server (the "adapter") serves `external.metrics.k8s.io`, which the
kube-apiserver aggregates, so the bed's real kube-controller-manager (HPA controller) scales on
KEDA's metrics. No webhooks (a separate KEDA binary), no certificate rotation: the test makes
the adapter's certificates (`make_certs`) and registers the APIService itself.

How the kube-apiserver reaches the adapter. An APIService names a Service; the bed's apiserver
runs without `--enable-aggregator-routing`, so it dials the Service's ClusterIP, and there is no
kube-proxy. Endpoints or EndpointSlices naming 127.0.0.1 are refused by validation anyway. So
`Aggregation` creates a network namespace of its own, a veth pair into it, and gives the
namespace's end the Service's ClusterIP (the host routes that one /32 into the veth). Inside the
namespace a forwarder (`python -m testbed.keda forward`: the listening socket is made inside the
namespace, the onward connection in the host's) passes each connection to the adapter on host
loopback. Traffic goes only to loopback and to that address of the test's own namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from testbed.cluster import REPO_ROOT, cache_root, kubectl, read_versions, wait_until
from testbed.proc import stop as stop_process
from testbed.temporal import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-keda.sh"
NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
APISERVICE = "v1beta1.external.metrics.k8s.io"
BINARIES = ("keda-operator", "keda-adapter")
CLONE_NEWNET = 0x40000000


def bin_dir() -> Path:
    return cache_root() / "keda" / read_versions()["KEDA_VERSION"] / "bin"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if not (bin_dir() / b).is_file()]


def run_build_script(script: Path, timeout: float = 3600) -> Path:
    """Run one of the hack/build-*.sh scripts (a no-op when cached); return the bin folder
    it prints last."""
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/{script.name} failed:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def build(timeout: float = 3600) -> Path:
    """Run hack/build-keda.sh (a no-op when cached); return the bin folder."""
    return run_build_script(BUILD_SCRIPT, timeout)


def crd_folder() -> Path:
    return cache_root() / "crds" / f"keda-{read_versions()['KEDA_VERSION']}"


def install_crds(kubeconfig: str) -> None:
    """All of KEDA's CRDs at KEDA_VERSION (server-side apply: idempotent, shared-bed safe)."""
    from testbed.cluster import crd_files

    crd_files()  # fetches the folder when missing
    files = sorted(crd_folder().glob("*.yaml"))
    args = [a for f in files for a in ("-f", str(f))]
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", *args, timeout=120)
    kubectl(
        kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
        *(f"-f={f}" for f in files),
    )  # fmt: skip


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_certs(folder: Path, sans: list[str]) -> Path:
    """ca.crt, tls.crt, tls.key in `folder`: KEDA's layout. The leaf is both server and client
    (the operator's gRPC metrics service requires the adapter's client certificate)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = folder / "ca.key", folder / "ca.crt"
    key, csr, crt, ext = (folder / n for n in ("tls.key", "tls.csr", "tls.crt", "tls.ext"))
    ec = ("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out")
    _openssl(*ec, str(ca_key))
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-out", str(ca), "-days", "1",
        "-subj", "/CN=workerpools test KEDA CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=" + ",".join(sans) + "\n"
    )
    _openssl(*ec, str(key))
    _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/CN=keda")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext),
    )  # fmt: skip
    return folder


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s=15)
        if self._log is not None:
            self._log.close()

    def tail(self, lines: int = 25) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


@dataclass
class Keda:
    """The running KEDA: processes, ports, where its logs are."""

    kubeconfig: str
    workdir: Path
    operator: Process
    adapter: Process
    forwarder: Process
    cluster_ip: str
    netns: str
    grpc_port: int
    operator_metrics_port: int

    def operator_metrics(self) -> str:
        url = f"http://127.0.0.1:{self.operator_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log_path}):\n{p.tail()}"
            for p in (self.operator, self.adapter, self.forwarder)
        )

    def external_metric(self, namespace: str, metric: str, scaled_object: str) -> Any:
        """GET the external metric through the aggregator, as the HPA controller does."""
        path = (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{scaled_object}"
        )
        out = kubectl(self.kubeconfig, "get", "--raw", path, timeout=30).stdout
        return json.loads(out)


@contextlib.contextmanager
def one_per_bed(name: str, what: str, wait_s: float = 1800) -> Iterator[None]:
    """Hold the bed-wide lock `name` (a file in the cache folder) while the block runs: what it
    starts (an APIService, a global Service) exists once per bed, so a second session waits."""
    lock_path = cache_root() / name / ".running.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    busy = f"another session runs {what} on the bed ({lock_path})"
                    raise RuntimeError(busy) from None
                time.sleep(1)
        yield


def apiservice_status(kubeconfig: str, name: str) -> dict[str, Any]:
    """An APIService's status (or the error of reading it), for waits and failure messages."""
    proc = kubectl(kubeconfig, "get", "apiservice", name, "-o", "json", check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()}
    status: dict[str, Any] = json.loads(proc.stdout).get("status", {})
    return status


def register_apiservice(
    stack: contextlib.ExitStack,
    kubeconfig: str,
    *,
    name: str,
    group: str,
    namespace: str,
    service: str,
    ca: Path,
    alive: Callable[[], bool],
    timeout: float,
    logs: Callable[[], str],
) -> None:
    """Aggregate `group`/v1beta1 to the Service, and wait until the aggregator calls it
    Available (while `alive()`); failures carry the APIService's status and `logs()`.

    Call it last and let `stack` remove it first: an APIService without a backend makes
    discovery (and namespace deletion) fail for everyone on the shared bed."""
    apisvc = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name},
        "spec": {
            "service": {"namespace": namespace, "name": service, "port": 443},
            "group": group, "version": "v1beta1", "caBundle": _b64(ca),
            "groupPriorityMinimum": 100, "versionPriority": 100,
        },
    }  # fmt: skip
    stack.callback(
        kubectl, kubeconfig, "delete", "apiservice", name, "--ignore-not-found", check=False
    )
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(apisvc))

    def available() -> bool:
        conds = apiservice_status(kubeconfig, name).get("conditions", [])
        return alive() and any(c["type"] == "Available" and c["status"] == "True" for c in conds)

    try:
        wait_until(available, timeout=timeout, interval=1, what=f"APIService {name} Available")
    except Exception as exc:
        status = json.dumps(apiservice_status(kubeconfig, name))
        raise RuntimeError(f"{exc}: {status}\n{logs()}") from exc


@contextlib.contextmanager
def running_keda(
    kubeconfig: str, workdir: Path, *, ca_dirs: tuple[Path, ...] = (), timeout: float = 180
) -> Iterator[Keda]:
    """KEDA operator + metrics API server, aggregated; everything removed on exit.

    `ca_dirs`: folders of extra CA certificates for the scalers (KEDA's --ca-dir), e.g. the
    test CA of a TLS front of the Temporal dev server."""
    if os.geteuid() != 0:
        raise RuntimeError("KEDA on the bed needs root: it creates a network namespace")
    missing = missing_binaries()
    if missing:
        raise RuntimeError(
            f"KEDA binaries missing in {bin_dir()} ({', '.join(missing)}): run `make tools` "
            "(hack/build-keda.sh)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    # One KEDA per bed at a time: the keda namespace's Service and the APIService are global.
    with (
        one_per_bed("keda", "KEDA"),
        _running_keda(kubeconfig, workdir, ca_dirs=ca_dirs, timeout=timeout) as keda,
    ):
        yield keda


def service_in_netns(
    stack: contextlib.ExitStack,
    kubeconfig: str,
    namespace: str,
    service: str,
    target_port: int,
    *,
    netns: str,
    tag: str,
    host_ip: str,
    labels: dict[str, str] | None = None,
) -> str:
    """A Service whose ClusterIP is the address of a network namespace of the bed's own, and
    returns that ClusterIP; everything is undone by `stack`.

    The aggregator dials an APIService's Service at its ClusterIP, and the bed has no
    kube-proxy: so the ClusterIP is given to the namespace's end of a veth pair (`tag` names
    the pair), the host routes it there, and a forwarder inside the namespace (`forward`)
    passes connections on to a server on loopback. Endpoints are written by hand for the
    aggregator's availability check. Nothing outside the bed's own namespaces is addressed."""
    meta: dict[str, Any] = {"name": service, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    svc = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": target_port}]},
    }  # fmt: skip
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(svc))
    stack.callback(
        kubectl, kubeconfig, "delete", "service", service, "-n", namespace,
        "--ignore-not-found", "--wait=false", check=False,
    )  # fmt: skip
    cluster_ip = kubectl(
        kubeconfig, "get", "service", service, "-n", namespace, "-o",
        "jsonpath={.spec.clusterIP}",
    ).stdout.strip()  # fmt: skip
    eps = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": service, "namespace": namespace},
        "subsets": [{"addresses": [{"ip": cluster_ip}],
                     "ports": [{"name": "https", "port": 443}]}],
    }  # fmt: skip
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(eps))

    veth_host, veth_ns = f"twp{tag}h", f"twp{tag}n"
    _ip("netns", "del", netns, check=False)
    _ip("netns", "add", netns)
    stack.callback(_ip, "netns", "del", netns, check=False)
    _ip("link", "add", veth_host, "type", "veth", "peer", "name", veth_ns)
    stack.callback(_ip, "link", "del", veth_host, check=False)
    _ip("link", "set", veth_ns, "netns", netns)
    _ip("addr", "add", f"{host_ip}/32", "dev", veth_host)
    _ip("link", "set", veth_host, "up")
    _ip("route", "add", f"{cluster_ip}/32", "dev", veth_host, "src", host_ip)
    _ip("-n", netns, "addr", "add", f"{cluster_ip}/32", "dev", veth_ns)
    _ip("-n", netns, "link", "set", veth_ns, "up")
    _ip("-n", netns, "link", "set", "lo", "up")
    _ip("-n", netns, "route", "add", f"{host_ip}/32", "dev", veth_ns)
    return cluster_ip


@contextlib.contextmanager
def _running_keda(
    kubeconfig: str, workdir: Path, *, ca_dirs: tuple[Path, ...], timeout: float
) -> Iterator[Keda]:
    install_crds(kubeconfig)
    kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)
    tag = f"{os.getpid() % 100000}"
    netns = f"twp-keda-{tag}"
    host_ip = "169.254.213.1"
    stack = contextlib.ExitStack()
    try:
        cluster_ip = service_in_netns(
            stack, kubeconfig, NAMESPACE, SERVICE, 6443, netns=netns, tag=f"k{tag}",
            host_ip=host_ip,
        )  # fmt: skip

        certs = make_certs(
            workdir / "certs",
            [
                "IP:127.0.0.1", f"IP:{cluster_ip}", "DNS:localhost",
                f"DNS:{SERVICE}.{NAMESPACE}.svc", f"DNS:{SERVICE}.{NAMESPACE}.svc.cluster.local",
                f"DNS:keda-operator.{NAMESPACE}.svc",
            ],
        )  # fmt: skip
        grpc_port, adapter_port = free_port(), free_port()
        op_metrics, op_probe, adapter_metrics = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
            "WATCH_NAMESPACE": "",
        }
        b = bin_dir()
        ca_args = [f"--ca-dir={d}" for d in ca_dirs]
        operator = Process(
            "keda-operator",
            [str(b / "keda-operator"), "--leader-elect=false", "--enable-cert-rotation=false",
             f"--cert-dir={certs}", f"--metrics-bind-address=127.0.0.1:{op_metrics}",
             f"--health-probe-bind-address=127.0.0.1:{op_probe}",
             f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
             "--zap-log-level=info", *ca_args],
            env, workdir / "keda-operator.log",
        )  # fmt: skip
        adapter = Process(
            "keda-adapter",
            [str(b / "keda-adapter"), f"--secure-port={adapter_port}",
             "--bind-address=127.0.0.1", f"--cert-dir={certs}",
             f"--tls-cert-file={certs / 'tls.crt'}", f"--tls-private-key-file={certs / 'tls.key'}",
             f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
             f"--authorization-kubeconfig={kubeconfig}",
             f"--metrics-service-address=127.0.0.1:{grpc_port}", f"--port={adapter_metrics}",
             "--zap-log-level=info"],
            env, workdir / "keda-adapter.log",
        )  # fmt: skip
        forwarder = Process(
            "forwarder",
            [sys.executable, "-m", "testbed.keda", "forward", "--netns", netns,
             "--listen", f"{cluster_ip}:443", "--to", f"127.0.0.1:{adapter_port}"],
            {**os.environ, "PYTHONPATH": str(REPO_ROOT)}, workdir / "forwarder.log",
        )  # fmt: skip
        for p in (operator, adapter, forwarder):
            p.start()
            stack.callback(p.stop)
        keda = Keda(
            kubeconfig, workdir, operator, adapter, forwarder, cluster_ip, netns, grpc_port,
            op_metrics,
        )  # fmt: skip

        def ready(port: int) -> bool:
            for p in (operator, adapter, forwarder):
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited:\n{keda.logs()}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{port}/readyz"
                with urllib.request.urlopen(url, timeout=2) as r:
                    return bool(r.status == 200)
            return False

        wait_until(lambda: ready(op_probe), timeout=timeout, what="keda-operator /readyz")
        register_apiservice(
            stack, kubeconfig, name=APISERVICE, group="external.metrics.k8s.io",
            namespace=NAMESPACE, service=SERVICE, ca=certs / "ca.crt", alive=forwarder.alive,
            timeout=timeout, logs=keda.logs,
        )  # fmt: skip
        yield keda
    finally:
        stack.close()


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


# --- the forwarder inside the network namespace ------------------------------------------------


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path) as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def forward(netns: str, listen: str, to: str) -> None:
    """Accept in `netns` on `listen`, connect in the host namespace to `to` (loopback)."""
    host, port = listen.rsplit(":", 1)
    to_host, to_port = to.rsplit(":", 1)
    if to_host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit(f"forward: refusing a non-loopback target {to}")
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    _setns(f"/run/netns/{netns}")
    server = socket.create_server((host, int(port)), backlog=64)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(own, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the host namespace")
    print(f"forwarding {netns}/{listen} -> {to}", flush=True)
    while True:
        conn, peer = server.accept()
        try:
            upstream = socket.create_connection((to_host, int(to_port)), timeout=10)
        except OSError as exc:
            print(f"{peer}: upstream {to}: {exc}", flush=True)
            conn.close()
            continue
        upstream.settimeout(None)
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.keda")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fwd = sub.add_parser("forward", help="TCP forwarder from a network namespace to loopback")
    fwd.add_argument("--netns", required=True)
    fwd.add_argument("--listen", required=True)
    fwd.add_argument("--to", required=True)
    sub.add_parser("build", help="build (or reuse) the KEDA binaries; print their folder")
    args = parser.parse_args(argv)
    if args.cmd == "forward":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        forward(args.netns, args.listen, args.to)
    else:
        print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
