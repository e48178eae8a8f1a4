"""The Helm chart on the local bed with the real `helm`: install, upgrade, uninstall, and its
RBAC proven by running the real operator under the chart's ServiceAccount (a token from
`kubectl create token`, never the admin kubeconfig) while pools are created, scaled and deleted.

The bed's TemporalWorkerPool CRD is shared by every e2e test (and by other sessions on the same
bed), so the main flow installs with crds.install=false; the CRD toggles (install, keep on
uninstall, delete without keep) run on a renamed copy of the CRD that nothing else uses.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cluster import wait_established
from testbed.tools import require_tool
from testbed.wait import until
from tests.builders import condition, pool
from tests.e2e.operator_process import OperatorProcess, sa_kubeconfig
from workerpool_operator import kinds

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "workerpool-operator"
RELEASE = "wp"
SA = f"{RELEASE}-workerpool-operator"
CHILD_SELECTOR = "app.kubernetes.io/managed-by=workerpool-operator"


class Helm:
    def __init__(self, binary: str, kube: Any, home: Path) -> None:
        self.binary, self.kube = binary, kube
        self.env = {**kube.env(), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}  # fmt: skip

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", self.kube.kubeconfig, *args],
            env=self.env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result


@pytest.fixture
def helm(kube_cluster: Any, tmp_path: Path) -> Helm:
    return Helm(require_tool("helm"), kube_cluster, tmp_path / "helm")


@pytest.fixture
def crd(kube_cluster: Any) -> str:
    """The real CRD on the bed, applied the way the other e2e tests apply it."""
    path = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    wait_established(kube_cluster.kubeconfig, "temporalworkerpools.workerpools.io")
    return str(path)


@pytest.fixture
def extra_namespace(kube_cluster: Any) -> Iterator[str]:
    name = f"t-chart-b-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def release_namespace(kube_cluster: Any) -> Iterator[str]:
    name = f"t-chart-op-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
    )
    yield name
    kube_cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


TEMPORAL = {"address": "temporal:7233"}


def ready(kube: Any, ns: str, name: str) -> bool:
    return condition(kube, ns, name, "Ready").get("status") == "True"


def children(kube: Any, ns: str) -> list[str]:
    out = kube.kubectl(
        "get", "deployments,services,poddisruptionbudgets,servicemonitors", "-n", ns,
        "-l", CHILD_SELECTOR, "-o", "name",
    )  # fmt: skip
    return sorted(out.split())


def deployment_ready(kube: Any, ns: str, name: str, replicas: int) -> bool:
    st = kube.get("deployment", name, namespace=ns).get("status") or {}
    return st.get("readyReplicas") == replicas


@pytest.mark.usefixtures("crd")
def test_install_upgrade_uninstall_with_the_charts_rbac(
    kube_cluster: Any,
    helm: Helm,
    namespace: str,
    extra_namespace: str,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    kube = kube_cluster
    op_ns, ns_a, ns_b = release_namespace, namespace, extra_namespace

    # --- install: limited to one namespace, two replicas, leader election ----------------------
    helm.run("install", RELEASE, str(CHART), "-n", op_ns, "--wait", "--timeout", "3m",
             "--set", "crds.install=false", "--set", f"watchNamespaces={{{ns_a}}}")  # fmt: skip
    assert deployment_ready(kube, op_ns, SA, 2), "two operator replicas (kwok pods)"
    assert kube.exists("role", SA, namespace=ns_a)
    assert not kube.exists("role", SA, namespace=ns_b)
    assert kube.exists("role", f"{SA}-leader-election", namespace=op_ns)
    who = f"--as=system:serviceaccount:{op_ns}:{SA}"
    for verb, resource, ns, expected in (
        ("create", "deployments", ns_a, "yes"),
        ("create", "deployments", ns_b, "no"),   # not watched: no Role there
        ("create", "secrets", ns_a, "no"),       # Secrets are only listed and watched
        ("update", "leases", op_ns, "yes"),
        ("update", "leases", ns_a, "no"),
    ):  # fmt: skip
        got = kube.run("auth", "can-i", verb, resource, "-n", ns, who).stdout.strip()
        assert got == expected, f"can-i {verb} {resource} -n {ns}: {got}"

    # --- the operator under the chart's ServiceAccount: create, scale, delete ------------------
    kubeconfig = sa_kubeconfig(kube, SA, op_ns, tmp_path / "sa.kubeconfig")
    op = OperatorProcess(kubeconfig, ["-n", ns_a, "--leader-elect", "--verbose"],
                         tmp_path / "operator.log", pod_namespace=op_ns)  # fmt: skip
    try:
        until(lambda: op.sample("workerpool_operator_leader") == 1, "the operator to lead")
        lease = kube.get("lease", "workerpool-operator", namespace=op_ns)
        assert lease["spec"]["holderIdentity"]
        kube.apply(pool("a1", connection=TEMPORAL, replicas=2), namespace=ns_a)
        until(lambda: ready(kube, ns_a, "a1"), "pool a1 Ready")
        # This process wrote them (not some other operator on a shared bed), with the SA's token.
        assert (op.sample("workerpool_operator_writes_total") or 0) > 0, op.log[-3000:]
        assert children(kube, ns_a) == sorted(
            ["deployment.apps/a1", "service/a1", "poddisruptionbudget.policy/a1",
             "servicemonitor.monitoring.coreos.com/a1"]
        )  # fmt: skip
        kube.kubectl("scale", "twp/a1", "--replicas=3", "-n", ns_a)
        until(lambda: deployment_ready(kube, ns_a, "a1", 3), "a1 scaled to 3")
        until(lambda: ready(kube, ns_a, "a1"), "pool a1 Ready at 3")
        kube.delete("twp", "a1", namespace=ns_a)
        until(lambda: not children(kube, ns_a), "a1's children gone")
        used = api_requests(op.metrics())
    finally:
        op.stop()
    op.assert_no_forbidden()
    # The operator's own accounting of its requests stays within the registry (and so the RBAC).
    assert used, "no API requests counted"
    assert not outside_registry(used), outside_registry(used)

    # --- upgrade: a second namespace and three replicas ----------------------------------------
    helm.run("upgrade", RELEASE, str(CHART), "-n", op_ns, "--wait", "--timeout", "3m",
             "--set", "crds.install=false", "--set", "replicaCount=3",
             "--set", f"watchNamespaces={{{ns_a},{ns_b}}}")  # fmt: skip
    assert deployment_ready(kube, op_ns, SA, 3)
    assert kube.exists("role", SA, namespace=ns_b)
    history = json.loads(helm.run("history", RELEASE, "-n", op_ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"

    op = OperatorProcess(kubeconfig, ["-n", ns_a, "-n", ns_b, "--leader-elect", "--verbose"],
                         tmp_path / "operator2.log", pod_namespace=op_ns)  # fmt: skip
    try:
        until(lambda: op.sample("workerpool_operator_leader") == 1, "the operator to lead again")
        kube.apply(pool("b1", connection=TEMPORAL, replicas=1), namespace=ns_b)
        kube.apply(pool("a2", connection=TEMPORAL, replicas=1), namespace=ns_a)
        until(lambda: ready(kube, ns_b, "b1") and ready(kube, ns_a, "a2"), "b1 and a2 Ready")
    finally:
        op.stop()
    op.assert_no_forbidden()

    # --- uninstall: nothing of the chart is left; pools are not stuck; no orphans --------------
    helm.run("uninstall", RELEASE, "-n", op_ns, "--wait", "--timeout", "2m")
    assert not kube.exists("clusterrole", SA)
    assert not kube.exists("clusterrolebinding", SA)
    for ns in (ns_a, ns_b):
        assert not kube.exists("role", SA, namespace=ns)
        assert not kube.exists("rolebinding", SA, namespace=ns)
    left = kube.kubectl("get", "deployments,services,serviceaccounts,roles,rolebindings,"
                        "poddisruptionbudgets,networkpolicies", "-n", op_ns,
                        "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name")  # fmt: skip
    assert left.split() == []
    # The pools outlive the operator (the CRD is kept), and carry no finalizer that would need it.
    for ns, name in ((ns_a, "a2"), (ns_b, "b1")):
        meta = kube.get("twp", name, namespace=ns)["metadata"]
        assert not meta.get("finalizers"), meta.get("finalizers")
        kube.delete("twp", name, namespace=ns, wait=True)
        assert not kube.exists("twp", name, namespace=ns)
    # Children go with their pool (owner references; the garbage collector, not the operator).
    until(lambda: not children(kube, ns_a) and not children(kube, ns_b), "no orphaned children")


# HTTP method of a request (as workerpool_operator_api_requests_total counts it) -> RBAC verbs.
HTTP_TO_RBAC = {"GET": {"get", "list"}, "WATCH": {"watch"}, "POST": {"create"},
                "PATCH": {"patch"}, "PUT": {"update"}, "DELETE": {"delete"}}  # fmt: skip


def api_requests(text: str) -> set[tuple[str, str]]:
    """(HTTP method, kind) pairs the operator counted on its /metrics page."""
    pattern = r"^workerpool_operator_api_requests_total\{([^}]*)\} ([0-9.e+]+)$"
    used = set()
    for labels, value in re.findall(pattern, text, re.MULTILINE):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if float(value) > 0:
            used.add((pairs["verb"], pairs["kind"]))
    return used


def outside_registry(used: set[tuple[str, str]]) -> list[tuple[str, str]]:
    verbs: dict[str, set[str]] = {}
    for k in (*kinds.CLUSTER_RULE_KINDS, *kinds.CLUSTER_ONLY_KINDS, *kinds.OWN_NAMESPACE_KINDS):
        verbs.setdefault(k.kind, set()).update(k.verbs)
    return sorted(
        (method, kind)
        for method, kind in used
        if not HTTP_TO_RBAC.get(method, set()) & verbs.get(kind, set())
    )


def renamed_chart(tmp_path: Path, group: str) -> Path:
    """The chart with its CRD moved to another API group, so installing and deleting it cannot
    touch the bed's shared workerpools.io CRD."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    for path in (chart / "files" / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        crd["spec"]["group"] = group
        # Other names too: a kind, plural or short name shared with the real CRDs would make
        # `kubectl get twp` ambiguous (also through kubectl's discovery cache, after deletion).
        kind = "ChartTest" + crd["spec"]["names"]["kind"]
        plural = kind.lower() + "s"
        crd["spec"]["names"] = {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
        }
        crd["metadata"]["name"] = f"{plural}.{group}"
        path.unlink()
        (path.parent / f"{plural}.{group}.yaml").write_text(yaml.safe_dump(crd))
    return chart


def test_crds_install_keep_and_delete(
    kube_cluster: Any, helm: Helm, release_namespace: str, tmp_path: Path
) -> None:
    group = f"charttest-{uuid.uuid4().hex[:6]}.workerpools.io"
    crd_name = f"charttesttemporalworkerpools.{group}"
    chart = renamed_chart(tmp_path, group)
    base = ["-n", release_namespace, "--set", "replicaCount=1", "--set",
            "leaderElection.enabled=false", "--set", "rbac.create=false"]  # fmt: skip
    try:
        helm.run("install", "crdtest", str(chart), *base)
        wait_established(kube_cluster.kubeconfig, crd_name)
        annotations = kube_cluster.get("crd", crd_name)["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        helm.run("uninstall", "crdtest", "-n", release_namespace, "--wait")
        assert kube_cluster.exists("crd", crd_name), "crds.keep=true must keep the CRD"
        # Reinstalling adopts the kept CRD; without keep, uninstall deletes it.
        helm.run("install", "crdtest", str(chart), *base, "--set", "crds.keep=false")
        helm.run("uninstall", "crdtest", "-n", release_namespace, "--wait")
        kube_cluster.wait_for(lambda: not kube_cluster.exists("crd", crd_name),
                              what="CRD deleted with crds.keep=false")  # fmt: skip
    finally:
        for crd in kube_cluster.get("crd")["items"]:
            if crd["spec"]["group"] == group:
                kube_cluster.run("delete", "crd", crd["metadata"]["name"], "--wait=false")


@pytest.mark.parametrize(
    "values", sorted((CHART / "ci").glob("*-values.yaml")), ids=lambda p: p.stem
)
def test_every_values_file_renders_objects_the_api_server_accepts(
    kube_cluster: Any, helm: Helm, namespace: str, values: Path
) -> None:
    """`helm template` of each values file, dry-run applied with strict field validation:
    every object (PrometheusRule and ServiceMonitor against prometheus-operator's real CRDs, the
    pod under the namespace's restricted Pod Security profile) is valid for this API server."""
    kube_cluster.kubectl("label", "namespace", namespace, "--overwrite",
                         "pod-security.kubernetes.io/enforce=restricted")  # fmt: skip
    conf = yaml.safe_load(values.read_text()) or {}
    overrides = ["--set", "dashboard.namespace="]
    if conf.get("watchNamespaces"):
        overrides += ["--set", f"watchNamespaces={{{namespace}}}"]
    rendered = helm.run("template", RELEASE, str(CHART), "-n", namespace, "-f", str(values),
                        *overrides).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    # The shared CRD is not re-applied here (other tests own it); its schema equality with
    # crds/ is tests/unit/test_chart.py's business.
    docs = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    result = kube_cluster.run(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        input=yaml.safe_dump_all(docs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
