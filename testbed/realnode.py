"""A real kubelet node on the local bed: pods on it run as containers, not as kwok simulations.

One node, ``real-0``, next to kwok's fake nodes: the kubelet built from the same Kubernetes
module as the control plane (``hack/build-controlplane.sh``) runs pods through a private
instance of Debian's containerd (own root, state and gRPC socket in a scratch folder, so it
never meets Docker's or the host's containerd) with runc and the CNI bridge plugin. Pods get
addresses in ``SUBNET`` on the bridge ``BRIDGE`` that this module creates, whose host side is
``GATEWAY``; pods have no default route, so they reach only that network.

The node is labelled ``workerpools.dev/node-pool=real`` and tainted ``workerpools.dev/real-node``
(NoSchedule): only pods that ask for it (``placement()``) land there, so the kwok-based tests
are unaffected. Images come from the local Docker engine (``import_image``; containerd names
them ``docker.io/<repo>:<tag>``) and pods use them with ``imagePullPolicy: Never``.

The node's files live under the cache folder (``WORKERPOOLS_CACHE``), so a session with a cache
of its own has a node of its own; ``WORKERPOOLS_REALNODE_BRIDGE`` names its bridge, so another
cache's node stopping (which deletes its bridge) leaves this one's network alone. Only one of
them can run at a time: they share ``SUBNET``.

Local bed only: the kubelet authenticates with the admin kubeconfig and serves its API
anonymously with AlwaysAllow, on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from testbed.cluster import (
    POOL_LABEL,
    REPO_ROOT,
    TestbedError,
    _pid_alive,
    cache_root,
    kubectl,
    read_versions,
    wait_until,
)
from testbed.temporal import free_port

NODE_NAME = "real-0"
NODE_POOL = "real"
TAINT_KEY = "workerpools.dev/real-node"
BRIDGE = os.environ.get("WORKERPOOLS_REALNODE_BRIDGE") or "twpbr0"  # see the docstring
SUBNET = "10.244.77.0/24"
GATEWAY = "10.244.77.1"
PAUSE_IMAGE = "workerpools/pause:1"
RUNTIME_REPO = "workerpools/worker-runtime"
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
# Registries whose names a pod might use; containerd sends them all to a closed loopback port.
REGISTRIES = ("docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io")
NO_REGISTRY = "http://127.0.0.1:1"
# Debian's binaries first: a Docker bundle in /usr/local/bin may ship another containerd/runc.
SYSTEM_PATH = "/usr/bin:/usr/sbin:/bin:/sbin:/usr/local/bin"


def placement() -> dict[str, Any]:
    """Pod spec fields (nodeSelector, tolerations) that put a pod on the real node."""
    return {
        "nodeSelector": {POOL_LABEL: NODE_POOL},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


def containerd_name(image: str) -> str:
    """The name containerd gives an image imported from `docker save` (only a name)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        image = f"library/{image}"
    elif "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def build_runtime_image(tag: str) -> str:
    """`hack/build-images.sh runtime` (offline wheelhouse; layers cached); returns the image."""
    build = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-images.sh"), "runtime"],
        env={**os.environ, "IMG_TAG": tag, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if build.returncode != 0:
        raise TestbedError(f"hack/build-images.sh runtime failed:\n{build.stdout}{build.stderr}")
    return f"{RUNTIME_REPO}:{tag}"


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(tree.get(child, []))
    return out


def _mounts_under(folder: Path) -> list[str]:
    """Mount points at or below folder, deepest first (from /proc/self/mountinfo)."""
    prefix = str(folder)
    points: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _run(cmd: list[str], *, check: bool = True, timeout: float = 120, **kw: Any) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        raise TestbedError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return str(proc.stdout)


def _succeeds(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RealNode:
    """The kubelet + containerd pair of node ``real-0``; all its files under one scratch folder."""

    settle_s = 60.0  # how long a running node that is not Ready is given before a restart

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache or cache_root()
        version = read_versions()["KUBERNETES_VERSION"]
        self.kubelet_bin = self.cache / "k8s" / version / "bin" / "kubelet"
        self.pause_bin = self.cache / "realnode" / "bin" / "pause"
        self.home = self.cache / "realnode"
        # Wiped on every start and stop: containerd root/state, kubelet root, CNI, logs.
        self.run_dir = self.home / "run"
        self.socket = self.run_dir / "containerd.sock"
        self.logs = self.run_dir / "logs"

    # --- prerequisites -----------------------------------------------------------------------

    def missing(self) -> list[str]:
        """What this machine lacks to run the node, each with the fix (empty: all there)."""
        out: list[str] = []
        if os.geteuid() != 0:
            out.append("root (the kubelet and containerd mount, and create network namespaces)")
        if not os.access(self.kubelet_bin, os.X_OK):
            out.append(f"{self.kubelet_bin} (make controlplane)")
        for binary in (CONTAINERD, CTR, RUNC):
            if not os.access(binary, os.X_OK):
                out.append(f"{binary} (hack/setup-realnode.sh installs containerd and runc)")
        for plugin in CNI_PLUGINS:
            if not os.access(f"{CNI_BIN_DIR}/{plugin}", os.X_OK):
                out.append(f"{CNI_BIN_DIR}/{plugin} (hack/setup-realnode.sh)")
        if not os.access(self.pause_bin, os.X_OK):
            out.append(f"{self.pause_bin} (hack/setup-realnode.sh)")
        if shutil.which("docker") is None or not _succeeds(["docker", "info"]):
            out.append("a running Docker engine to import images from (hack/setup-docker.sh)")
        if shutil.which("ip") is None:
            out.append("the ip command (iproute2)")
        return out

    # --- leases (several pytest sessions share one node) --------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "node.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def acquire(self, kubeconfig: str | Path) -> None:
        """Start the node (or reuse a healthy one) and record that this process uses it."""
        with self.lock():
            running = (
                self._pid("kubelet", self.kubelet_bin) is not None
                and self._pid("containerd", CONTAINERD) is not None
            )
            bed, users = self.serves(), self.other_users()
            if running and bed is not None and bed != str(kubeconfig) and users:
                # Restarting it for this bed would kill the pods of the sessions on that one.
                raise TestbedError(
                    f"the real node is joined to another bed ({bed}) and used by the pytest "
                    f"sessions {users}: wait for them to end, or run on that bed"
                )
            if running and not self.node_ready(kubeconfig):
                # Possibly only slow, or the API server restarting: a restart would kill the
                # pods of every other session using the node, so give it a minute first.
                with contextlib.suppress(TestbedError):
                    wait_until(
                        lambda: self.healthy(kubeconfig),
                        timeout=self.settle_s,
                        interval=2,
                        what="node",
                    )
            if not self.healthy(kubeconfig):
                self.start(kubeconfig)
                (self.home / "started-by-tests").touch()
            leases = self.home / "users"
            leases.mkdir(exist_ok=True)
            for stale in [p for p in leases.iterdir() if not _pid_alive(p.name)]:
                stale.unlink(missing_ok=True)  # sessions that died without releasing
            (leases / str(os.getpid())).touch()

    def serves(self) -> str | None:
        """The kubeconfig of the bed the running kubelet joined; None when it does not run."""
        pid = self._pid("kubelet", self.kubelet_bin)
        flags = _cmdline(pid).split() if pid is not None else []
        return next((f.split("=", 1)[1] for f in flags if f.startswith("--kubeconfig=")), None)

    def other_users(self) -> list[str]:
        """Pids of the other live sessions that hold a lease on the node."""
        leases = self.home / "users"
        if not leases.is_dir():
            return []
        return sorted(
            p.name for p in leases.iterdir() if p.name != str(os.getpid()) and _pid_alive(p.name)
        )

    def release(self, kubeconfig: str | Path) -> bool:
        """Drop this process's lease; stop the node if tests started it and nobody is left."""
        with self.lock():
            leases = self.home / "users"
            (leases / str(os.getpid())).unlink(missing_ok=True)
            alive = [p for p in leases.glob("*") if _pid_alive(p.name)] if leases.is_dir() else []
            if alive or not (self.home / "started-by-tests").exists():
                return False
            self.stop(kubeconfig)
            return True

    # --- state -------------------------------------------------------------------------------

    def _pid(self, name: str, binary: str | Path) -> int | None:
        """Pid from run/<name>.pid if that process is alive and still runs binary."""
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _cmdline(pid).startswith(str(binary)) else None

    def node_ready(self, kubeconfig: str | Path) -> bool:
        proc = kubectl(kubeconfig, "get", "node", NODE_NAME, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def healthy(self, kubeconfig: str | Path) -> bool:
        return (
            self._pid("kubelet", self.kubelet_bin) is not None
            and self._pid("containerd", CONTAINERD) is not None
            and self.node_ready(kubeconfig)
        )

    # --- configuration -----------------------------------------------------------------------

    def containerd_config(self) -> str:
        run = self.run_dir
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{run}/containerd/root"
state = "{run}/containerd/state"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{run}/containerd/opt"

[{cri}]
  sandbox_image = "{containerd_name(PAUSE_IMAGE)}"
  # Without these two every sandbox fails here with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Network namespaces under the state folder, so stop() finds and unmounts them.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{run}/cni/net.d"
  max_conf_num = 1

[{cri}.registry]
  # Every registry a pod might name resolves to a closed loopback port (registry_hosts()):
  # images are imported, and an accidental pull must fail here, not leave the machine.
  config_path = "{run}/registry"
"""

    def registry_hosts(self) -> dict[str, str]:
        """hosts.toml per registry: its server is a closed port on loopback."""
        return {
            registry: f'server = "{NO_REGISTRY}"\n\n[host."{NO_REGISTRY}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            for registry in REGISTRIES
        }

    @contextlib.contextmanager
    def mirror(self, registry: str, server: str) -> Iterator[None]:
        """Send pulls for `registry` (e.g. docker.io) to `server` (http://127.0.0.1:PORT) while
        the block runs, then back to the closed port. containerd reads hosts.toml on every
        pull, so nothing restarts; other sessions' pods use imported images and never pull."""
        folder = self.run_dir / "registry" / registry
        folder.mkdir(parents=True, exist_ok=True)
        hosts = folder / "hosts.toml"
        before = hosts.read_text() if hosts.is_file() else None
        hosts.write_text(
            f'server = "{server}"\n\n[host."{server}"]\n  capabilities = ["pull", "resolve"]\n'
        )
        try:
            yield
        finally:
            if before is None:
                hosts.unlink(missing_ok=True)
            else:
                hosts.write_text(before)

    def cni_config(self) -> dict[str, Any]:
        """bridge + host-local + portmap + loopback; no gateway route, no masquerade."""
        return {
            "cniVersion": "0.4.0",
            "name": "twp-realnode",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    # The bridge and its address GATEWAY are made by start(); pods get no
                    # default route, so the only network they reach is SUBNET.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                        "dataDir": str(self.run_dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }

    def kubelet_config(self, port: int, healthz_port: int) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,  # these machines run cgroup v1
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": "127.0.0.1",
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            # Local bed only: no client certificates, no webhook authorizer.
            "authentication": {
                "anonymous": {"enabled": True},
                "webhook": {"enabled": False},
                "x509": {},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "enforceNodeAllocatable": [],
            "localStorageCapacityIsolation": False,
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "podLogsDir": str(self.run_dir / "pod-logs"),
            "resolvConf": "",  # pods resolve nothing: they talk to addresses in SUBNET only
            # The images are imported, not pullable: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "maxPods": 40,
            "serializeImagePulls": False,
        }

    # --- start / stop ------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives Ctrl-C of a test run; stop() ends it
                env={**os.environ, "PATH": SYSTEM_PATH},
            )
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))

    def _log_tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        if not path.is_file():
            return ""
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {name}.log ---\n" + "\n".join(tail)

    def start(self, kubeconfig: str | Path, timeout: float = 120) -> None:
        """Bring up bridge, containerd, the pause image and the kubelet; wait for Ready."""
        missing = self.missing()
        if missing:
            raise TestbedError("the real node cannot run here; missing: " + "; ".join(missing))
        self.stop(kubeconfig)
        for sub in ("logs", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "containerd"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        cfg = self.run_dir / "containerd.toml"
        cfg.write_text(self.containerd_config())
        for registry, hosts in self.registry_hosts().items():
            folder = self.run_dir / "registry" / registry
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts.toml").write_text(hosts)
        conflist = self.run_dir / "cni" / "net.d" / "10-twp-realnode.conflist"
        conflist.write_text(json.dumps(self.cni_config(), indent=2))
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{GATEWAY}/{SUBNET.split('/')[1]}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])

        self._spawn("containerd", [CONTAINERD, "--config", str(cfg)])
        try:
            wait_until(
                lambda: self._ctr("version", check=False) != "", timeout=60, what="containerd"
            )
            self._import_pause()
            port, healthz = free_port(), free_port()
            kcfg = self.run_dir / "kubelet.yaml"
            kcfg.write_text(yaml.safe_dump(self.kubelet_config(port, healthz)))
            self._spawn(
                "kubelet",
                [
                    str(self.kubelet_bin),
                    f"--config={kcfg}",
                    f"--kubeconfig={kubeconfig}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={GATEWAY}",
                    f"--root-dir={self.run_dir / 'kubelet'}",
                    f"--node-labels={POOL_LABEL}={NODE_POOL},type=real",
                    "--v=1",
                ],
            )
            wait_until(
                lambda: (
                    self._pid("kubelet", self.kubelet_bin) is not None
                    and self.node_ready(kubeconfig)
                ),
                timeout=timeout,
                interval=1,
                what=f"node {NODE_NAME} Ready",
            )
        except TestbedError as exc:
            tails = "\n".join(self._log_tail(n) for n in ("containerd", "kubelet"))
            self.stop(kubeconfig)
            raise TestbedError(f"{exc}\n{tails}") from exc

    def stop(self, kubeconfig: str | Path | None = None) -> None:
        """Stop kubelet, containerd, the shims and their containers; remove every trace."""
        self._terminate("kubelet", self.kubelet_bin)
        tree = _children()
        shims = [
            pid
            for pids in tree.values()
            for pid in pids
            if "containerd-shim" in _cmdline(pid) and f"-address {self.socket} " in _cmdline(pid)
        ]
        for shim in shims:
            for pid in [*_descendants(shim, tree), shim]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._terminate("containerd", CONTAINERD)
        deadline = time.monotonic() + 20
        while any(_cmdline(p) for p in shims) and time.monotonic() < deadline:
            time.sleep(0.2)
        for point in _mounts_under(self.run_dir):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            _run(["ip", "link", "del", BRIDGE], check=False)
        if _mounts_under(self.run_dir):
            raise TestbedError(f"mounts left under {self.run_dir}: {_mounts_under(self.run_dir)}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        (self.home / "started-by-tests").unlink(missing_ok=True)
        if kubeconfig is not None and Path(kubeconfig).is_file():
            # Pods bound to a node that is gone are deleted by the pod garbage collector.
            kubectl(kubeconfig, "delete", "node", NODE_NAME, "--ignore-not-found",
                    "--wait=false", check=False, timeout=30)  # fmt: skip

    def _terminate(self, name: str, binary: str | Path, timeout: float = 20) -> None:
        pid = self._pid(name, binary)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def processes(self) -> list[tuple[int, str]]:
        """Live kubelet/containerd/shim processes of this node (for leak checks)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                cmd = _cmdline(int(entry.name))
                if cmd.startswith(str(self.kubelet_bin)) or str(self.socket) in cmd:
                    found.append((int(entry.name), cmd))
        return found

    def leftovers(self) -> list[str]:
        """What a stopped node must not leave: processes, mounts, the bridge, its files."""
        out = [f"process {pid}: {cmd}" for pid, cmd in self.processes()]
        out += [f"mount {point}" for point in _mounts_under(self.run_dir)]
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            out.append(f"network link {BRIDGE}")
        if self.run_dir.exists():
            out.append(f"folder {self.run_dir}")
        return out

    # --- images ------------------------------------------------------------------------------

    def _ctr(self, *args: str, check: bool = True, stdin: Any = None) -> str:
        return _run(
            [CTR, "--address", str(self.socket), "--namespace", "k8s.io", *args],
            check=check,
            timeout=600,
            stdin=stdin,
        )

    def images(self) -> set[str]:
        return set(self._ctr("images", "ls", "-q").split())

    def remove_image(self, image: str) -> None:
        """Forget an image (by containerd name), so the next pod that names it pulls it."""
        self._ctr("images", "rm", containerd_name(image), check=False)

    def _import_pause(self) -> None:
        """A scratch image holding only the static pause binary, via docker import + save."""
        if containerd_name(PAUSE_IMAGE) in self.images():
            return
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(self.pause_bin), arcname="pause")
        made = subprocess.run(
            ["docker", "import", "-c", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE],
            input=buf.getvalue(), capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            raise TestbedError(f"docker import of the pause image failed: {made.stderr!r}")
        self.import_image(PAUSE_IMAGE)

    def import_image(self, image: str) -> None:
        """Copy an image from the local Docker engine into the node's containerd."""
        with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
            self._ctr("images", "import", "-", stdin=save.stdout)
            if save.wait() != 0:
                raise TestbedError(f"docker save {image} failed ({save.returncode})")
        if containerd_name(image) not in self.images():
            raise TestbedError(f"{image} not in containerd after import: {self.images()}")

    def pod_log(self, namespace: str, pod: str) -> str:
        """Container logs of a pod on this node, read from the kubelet's log folder."""
        out = []
        for path in sorted((self.run_dir / "pod-logs").glob(f"{namespace}_{pod}_*/*/*.log")):
            out.append(
                f"--- {path.parent.name}/{path.name} ---\n{path.read_text(errors='replace')}"
            )
        return "\n".join(out)
