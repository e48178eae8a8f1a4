"""Faults for the local bed: restart a control-plane component in place (same command line).

kwokctl's binary runtime keeps one pid file per component; a restarted component gets its
pid written back, so `make cluster-down` still stops it. The controller manager and the
scheduler exit by design when they cannot renew their leader lease while the API server is
down; `revive` starts whatever component is no longer running, as a supervisor would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testbed.cluster import LocalCluster


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0") if a]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (a.decode(errors="replace").partition("=") for a in raw.split(b"\0") if a)
    return {k: v for k, _, v in pairs}


def restart_component(cluster: LocalCluster, component: str, down_s: float = 2.0) -> int:
    """Stop `component` (e.g. kube-apiserver), wait `down_s`, start it again; the new pid."""
    pid_file = cluster.cluster_dir / "pids" / f"{component}.pid"
    pid = int(pid_file.read_text().strip())
    argv, env = _cmdline(pid), _environ(pid)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(down_s)
    log = (cluster.cluster_dir / "logs" / f"{component}.log").open("ab")
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def revive(cluster: LocalCluster) -> None:
    """Start every component of the bed that is not running (kwokctl start is idempotent)."""
    cluster._kwokctl("start", "cluster")


def dead_components(cluster: LocalCluster) -> list[str]:
    """Components whose pid file names a process that is gone."""
    dead = []
    for pid_file in sorted((cluster.cluster_dir / "pids").glob("*.pid")):
        pid = pid_file.read_text().strip()
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            dead.append(pid_file.stem)
    return dead


def _lease_renewed_since(cluster: LocalCluster, name: str, since: float) -> bool:
    """kube-system Lease `name` renewed after `since` (Unix seconds): its holder works."""
    from testbed.audit import parse_time
    from testbed.cluster import kubectl

    proc = kubectl(cluster.kubeconfig, "get", "lease", name, "-n", "kube-system",
                   "-o", "jsonpath={.spec.renewTime}", check=False, timeout=10)  # fmt: skip
    stamp = proc.stdout.strip()
    return proc.returncode == 0 and bool(stamp) and parse_time(stamp) > since


def ensure_whole(cluster: LocalCluster, since: float, timeout: float = 180) -> list[str]:
    """After a fault: start what died (as a supervisor would) until every component runs,
    the bed is healthy, and the controller manager and the scheduler have renewed their
    leader Leases after `since` (so they are working, not about to exit for a lease they lost
    during the fault). Returns the components that had to be started again."""
    from testbed.cluster import TestbedError

    revived: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = dead_components(cluster)
        if dead:
            revived += dead
            revive(cluster)
        elif (
            cluster.healthy()
            and all(
                _lease_renewed_since(cluster, lease, since)
                for lease in ("kube-controller-manager", "kube-scheduler")
            )
            and not dead_components(cluster)
        ):
            return revived
        time.sleep(1)
    raise TestbedError(
        f"the bed is not whole {timeout:.0f}s after a fault: dead {dead_components(cluster)}, "
        f"healthy {cluster.healthy()}"
    )
