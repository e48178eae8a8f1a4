"""The attack harness: tenants with only their role's rights, against the running operator.

A session on the shared local bed gets its own namespaces: `team-a` and `team-b` (tenants),
and `ops` (the operator's own namespace: Lease, ClusterTemporalConnection Secrets). One real
operator process (`testbed.operator.OperatorProcess`) watches only those, so other sessions on
the bed are neither seen nor touched. Each tenant role is a ServiceAccount bound in `team-a` to
the user-facing ClusterRole the project ships (manifests/rbac.yaml, `kinds.USER_ROLES`); an
attack runs as that ServiceAccount through a real bound token (`kubectl create token`), so the
API server, not the test, decides what it may do.

Each attack test carries the `attack` marker; at the end of the session the counts (tried,
blocked = passed) and any figures the tests recorded go to `bench-results/security.json`; a run
of some of the attack tests updates their outcomes and keeps the others' last ones.
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cluster import default_service_account_exists
from testbed.operator import OperatorProcess, sa_kubeconfig
from testbed.pytest_cluster import KubeCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench-results" / "security.json"
ROLES = ("pool-author", "connection-author", "viewer")
# The admin's address allowlist for the session's operator (grants.allowedAddresses).
ALLOWED_ADDRESSES = "10.1.2.3:7233,127.0.0.1:*,*.partner.example:7233"

_FIGURES: dict[str, Any] = {}
_OUTCOMES: dict[str, bool] = {}


def record(name: str, value: Any) -> None:
    """A figure for bench-results/security.json (written once, at the end of the session)."""
    _FIGURES[name] = value


@dataclass
class Tenant:
    """One role in one namespace: `kubectl` as that role's ServiceAccount."""

    role: str
    namespace: str
    kubeconfig: Path

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            input=input, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def apply(self, *objs: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """`kubectl apply` as this role; the result says whether the API server admitted it."""
        return self.run("apply", "-f", "-", input=yaml.safe_dump_all(list(objs)))

    def can(self, verb: str, resource: str) -> bool:
        return self.run("auth", "can-i", verb, resource).stdout.strip() == "yes"


@dataclass
class Bed:
    """The session's namespaces, tenants and operator."""

    kube: KubeCluster
    team_a: str
    team_b: str
    ops: str
    operator: OperatorProcess
    tenants: dict[str, Tenant] = field(default_factory=dict)

    def pool_author(self) -> Tenant:
        return self.tenants["pool-author"]

    def connection_author(self) -> Tenant:
        return self.tenants["connection-author"]


def user_roles() -> list[dict[str, Any]]:
    """The shipped user-facing ClusterRoles, exactly as manifests/rbac.yaml has them."""
    docs = yaml.safe_load_all((REPO_ROOT / "manifests" / "rbac.yaml").read_text())
    users = {f"workerpools-{r}" for r in ROLES}
    return [d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] in users]


def _tenant(kube: KubeCluster, role: str, ns: str, tmp: Path) -> Tenant:
    sa = f"as-{role}"
    kube.kubectl("create", "serviceaccount", sa, "-n", ns)
    kube.kubectl(
        "create", "rolebinding", sa, "-n", ns,
        f"--clusterrole=workerpools-{role}", f"--serviceaccount={ns}:{sa}",
    )  # fmt: skip
    return Tenant(role, ns, sa_kubeconfig(kube, sa, ns, tmp / f"{role}.kubeconfig"))


@pytest.fixture(scope="session")
def bed(
    kube_cluster: KubeCluster, pool_crd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("security")
    suffix = uuid.uuid4().hex[:6]
    team_a, team_b, ops = (f"sec-{n}-{suffix}" for n in ("team-a", "team-b", "ops"))
    for ns in (team_a, team_b, ops):
        kube_cluster.kubectl("create", "namespace", ns)
        kube_cluster.wait_for(
            functools.partial(default_service_account_exists, kube_cluster.kubeconfig, ns),
            what=f"serviceaccount default in {ns}",
        )
    kube_cluster.apply(user_roles(), server_side=True)
    operator = OperatorProcess(
        kube_cluster.kubeconfig, f"security-{suffix}", "-n", team_a, "-n", team_b,
        "--log-format", "text",
        log_dir=tmp, env={"POD_NAMESPACE": ops, "WORKERPOOL_RESYNC_SECONDS": "30",
                          "WORKERPOOL_ALLOWED_ADDRESSES": ALLOWED_ADDRESSES},
    )  # fmt: skip
    bed = Bed(kube_cluster, team_a, team_b, ops, operator)
    bed.tenants = {r: _tenant(kube_cluster, r, team_a, tmp) for r in ROLES}
    # The connection author also writes pools (a namespace owner's usual pair of rights).
    kube_cluster.kubectl(
        "create", "rolebinding", "as-connection-author-pools", "-n", team_a,
        "--clusterrole=workerpools-pool-author",
        f"--serviceaccount={team_a}:as-connection-author",
    )  # fmt: skip
    try:
        yield bed
    finally:
        code = operator.stop()
        tracebacks = operator.tracebacks()
        for ns in (team_a, team_b, ops):
            kube_cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        if tracebacks:
            print(f"operator log (exit {code}): {operator.log_path}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each attack once: failed in any phase = not blocked, passed in call = blocked."""
    if "attack" not in report.keywords:
        return
    if report.when == "call" or report.failed:
        if report.skipped:
            return
        _OUTCOMES[report.nodeid] = _OUTCOMES.get(report.nodeid, True) and report.passed


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _OUTCOMES and not _FIGURES:
        return
    previous: dict[str, Any] = {}
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
    out = {**previous, **_FIGURES}
    if _OUTCOMES:
        # A run of some attack tests updates theirs and keeps the others' last outcome (of
        # tests that still exist), so the counts always cover every attack, not just the run.
        kept = {
            k: v
            for k, v in (previous.get("attacks") or {}).items()
            if (REPO_ROOT / k.split("::", 1)[0]).exists() and k not in _OUTCOMES
        }
        attacks = {**kept, **{k: ("blocked" if v else "NOT BLOCKED") for k, v in _OUTCOMES.items()}}
        out["attacks"] = dict(sorted(attacks.items()))
        out["attacks_tried"] = len(attacks)
        out["attacks_blocked"] = sum(v == "blocked" for v in attacks.values())
        out["attacks_this_run"] = len(_OUTCOMES)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
