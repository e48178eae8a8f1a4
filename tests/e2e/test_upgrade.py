"""`helm upgrade` from the previous commit to this one, with pools running.

The previous release is built from git: `git archive` of `PREVIOUS_RELEASE`, the last commit
before 0.3.0 (`TWP_UPGRADE_FROM` overrides; the repository has no tags yet), its chart
installed with `helm install` and its operator run from its own sources, under the chart's
ServiceAccount. Pools are created and become Ready; then `helm upgrade` to this tree's chart, and
this tree's operator takes over. Shown: the release is upgraded (revision 2), every pool is kept
(same UID), the new operator has reconciled every pool (`status.runtimeImage`, a field only it
writes), and no worker pod was replaced where the rendered pod template did not change.

On the shared bed the CRDs are the bed's (`crds.install=false`: other sessions own them through
Helm-less applies), so the test applies this tree's CRDs itself at the upgrade, as the chart
would; the pools' pods run on kwok's nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import wait_established
from testbed.operator import OperatorProcess, sa_kubeconfig
from testbed.pytest_cluster import KubeCluster
from testbed.results import record
from testbed.temporal import free_port
from testbed.tools import require_tool
from tests import builders

ROOT = Path(__file__).resolve().parents[2]
POOLS = ("unpinned", "pinned", "other-repo")


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()  # fmt: skip


# The last commit of the release before this one (0.2 line, every artifact still said 0.1.0):
# upgrading from a commit of the same release would show nothing for the operator to change.
PREVIOUS_RELEASE = "34ca8b4"


def previous_commit() -> str:
    return git("rev-parse", os.environ.get("TWP_UPGRADE_FROM") or PREVIOUS_RELEASE)


@pytest.fixture(scope="module")
def previous_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous commit's files (`git archive`: no worktree, nothing to clean in .git)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no previous commit to build the previous release from")
    tree = tmp_path_factory.mktemp("previous")
    archive = subprocess.run(["git", "archive", previous_commit()], cwd=ROOT,
                             capture_output=True, check=True, timeout=120).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=120)
    return tree


def run(cmd: list[str]) -> str:
    """A command that must succeed; its stderr in the failure."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(cmd[:3])}...: {done.stderr}"
    return done.stdout


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return builders.pool(name, connection={"address": "temporal:7233"}, replicas=2, **spec)


def ready(kube: KubeCluster, ns: str, name: str) -> bool:
    status = kube.get("twp", name, namespace=ns).get("status") or {}
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def worker_pods(kube: KubeCluster, ns: str) -> dict[str, str]:
    """Pod UID -> pool, for the pools' running pods."""
    pods = kube.get("pods", namespace=ns)["items"]
    return {
        p["metadata"]["uid"]: p["metadata"]["labels"].get("workerpools.io/pool", "")
        for p in pods
        if p["metadata"].get("deletionTimestamp") is None
    }


@pytest.mark.usefixtures("pool_crd")
def test_helm_upgrade_keeps_pools_and_rolls_no_unchanged_worker(
    kube_cluster: KubeCluster, namespace: str, previous_tree: Path, tmp_path: Path
) -> None:
    kube = kube_cluster
    helm_bin = require_tool("helm")
    suffix = uuid.uuid4().hex[:6]
    op_ns, release = f"t-upgrade-op-{suffix}", f"wp-up-{suffix}"
    sa = f"{release}-workerpool-operator"
    helm = [helm_bin, "--kubeconfig", kube.kubeconfig]
    common = ["-n", op_ns, "--wait", "--timeout", "3m", "--set", "crds.install=false",
              "--set", f"watchNamespaces={{{namespace}}}", "--set", "replicaCount=1",
              "--set", "leaderElection.enabled=false"]  # fmt: skip
    old_log = (tmp_path / "operator-old.log").open("ab")
    old = None
    try:
        # --- the previous release: its chart, its operator, pools Ready --------------------
        old_chart = str(previous_tree / "charts" / "workerpool-operator")
        run([*helm, "install", release, old_chart, "--create-namespace", *common])
        kubeconfig = sa_kubeconfig(kube, sa, op_ns, tmp_path / "sa.kubeconfig")
        path = f"{previous_tree / 'operator'}{os.pathsep}{previous_tree}"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": op_ns,
               "PYTHONPATH": path}  # fmt: skip
        old = subprocess.Popen(
            [sys.executable, "-m", "workerpool_operator", "-n", namespace,
             "--metrics-port", str(free_port()), "--liveness-port", str(free_port())],
            cwd=previous_tree, env=env, stdout=old_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        kube.apply(pool("unpinned"), namespace=namespace)
        kube.apply(pool("pinned", image={"tag": "0.3.0"}), namespace=namespace)
        kube.apply(pool("other-repo", image={"repository": "registry.test/w"}), namespace=namespace)
        kube.wait_for(lambda: all(ready(kube, namespace, p) for p in POOLS),
                      what="pools Ready under the previous release", timeout=300)  # fmt: skip
        uids = {p: kube.get("twp", p, namespace=namespace)["metadata"]["uid"] for p in POOLS}
        pods_before = worker_pods(kube, namespace)
        templates = {
            p: kube.get("deployment", p, namespace=namespace)["spec"]["template"] for p in POOLS
        }
        assert len(pods_before) == 2 * len(POOLS), pods_before

        # --- helm upgrade to this tree; this tree's operator takes over ----------------------
        started = time.monotonic()
        old.terminate()
        old.wait(timeout=60)
        new_chart = str(ROOT / "charts" / "workerpool-operator")
        run([*helm, "upgrade", release, new_chart, *common])
        history = json.loads(run([*helm, "history", release, "-n", op_ns, "-o", "json"]))
        assert [h["revision"] for h in history] == [1, 2]
        assert history[-1]["status"] == "deployed"
        # The CRDs of this release (what crds.install does on a cluster of one's own); on the
        # shared bed another session may re-apply its own copy at any time, so apply them here,
        # right before the new operator writes status fields only they declare.
        for crd in sorted((ROOT / "crds").glob("workerpools.io_*.yaml")):
            kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        wait_established(kube.kubeconfig, "temporalworkerpools.workerpools.io")
        new = OperatorProcess(str(kubeconfig), "upgrade-new", "-n", namespace, log_dir=tmp_path,
                              env={"POD_NAMESPACE": op_ns})  # fmt: skip
        try:

            def reconciled() -> bool:
                return all(
                    (kube.get("twp", p, namespace=namespace).get("status") or {}).get(
                        "runtimeImage"
                    )
                    and ready(kube, namespace, p)
                    for p in POOLS
                )

            kube.wait_for(reconciled, what="the new operator reconciled every pool", timeout=300)
            upgrade_s = time.monotonic() - started
            assert new.writes() > 0, "the new operator wrote"
        finally:
            new.stop()
        # Pools kept, workers not replaced where the rendered template is the same.
        for p in POOLS:
            assert kube.get("twp", p, namespace=namespace)["metadata"]["uid"] == uids[p]
        changed = [
            p
            for p in POOLS
            if kube.get("deployment", p, namespace=namespace)["spec"]["template"] != templates[p]
        ]
        pods_after = worker_pods(kube, namespace)
        replaced = [u for u in pods_before if u not in pods_after]
        replaced_unchanged = [u for u in replaced if pods_before[u] not in changed]
        assert not replaced_unchanged, (changed, replaced_unchanged)
        # status.runtimeImage says which runtime the workers run now (an unpinned pool follows
        # the operator's release, so its image may have moved with the upgrade)
        status = kube.get("twp", "unpinned", namespace=namespace)["status"]
        live = kube.get("deployment", "unpinned", namespace=namespace)["spec"]["template"]
        assert status["runtimeImage"] == live["spec"]["containers"][0]["image"]
    finally:
        if old is not None and old.poll() is None:
            old.kill()
        old_log.close()
        # uninstall: the chart's ClusterRole and ClusterRoleBinding outlive the namespace
        subprocess.run([*helm, "uninstall", release, "-n", op_ns, "--wait"],
                       capture_output=True, timeout=300, check=False)  # fmt: skip
        kube.run("delete", "namespace", op_ns, "--wait=false", "--ignore-not-found")
    record("release", upgrade_s=round(upgrade_s, 1), worker_restarts_on_upgrade=len(replaced),
           pools_with_changed_template_on_upgrade=len(changed))  # fmt: skip
