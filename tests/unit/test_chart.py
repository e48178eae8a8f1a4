"""The Helm chart, rendered by the real `helm` (hack/build-tools.sh): lint, a values matrix,
its schema against values.yaml, its RBAC against the kind registry, and agreement with the
kustomize install in manifests/ (the two must install the same operator).

The install/upgrade/uninstall on a cluster is tests/e2e/test_chart_install.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from testbed.tools import require_tool
from tests.builders import CLUSTER_NEEDS, LEASE_NEEDS, triples
from workerpool_operator import kinds, rbac

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "workerpool-operator"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
NS = "workerpools-system"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> str:
    return require_tool("helm")


def template(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "wp", str(CHART), "--namespace", NS, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def render(helm: str, *args: str) -> list[Doc]:
    docs = yaml.safe_load_all(template(helm, *args).stdout)
    return [d for d in docs if d]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def kinds_of(docs: list[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def operator_container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]  # type: ignore[no-any-return]


# --- lint and the values matrix ------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_lint_strict(helm: str, values: Path) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values), "--namespace", NS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_template_matrix(helm: str, values: Path) -> None:
    """Every values file renders valid, namespaced, PSS-restricted objects."""
    docs = render(helm, "-f", str(values))
    conf = yaml.safe_load(values.read_text()) or {}
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for d in docs:
        assert d["apiVersion"], d
        assert d["metadata"]["name"], d
        if d["kind"] not in cluster_scoped:
            assert d["metadata"].get("namespace"), f"{d['kind']} {d['metadata']['name']}"
        labels = d["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", d["kind"]
    restricted_pod(one(docs, "Deployment"))
    dep = one(docs, "Deployment")
    replicas = conf.get("replicaCount", 2)
    assert dep["spec"]["replicas"] == replicas
    leader = (conf.get("leaderElection") or {}).get("enabled", True)
    args = operator_container(docs)["args"]
    assert ("--leader-elect" in args) == leader
    assert dep["spec"]["strategy"]["type"] == ("RollingUpdate" if leader else "Recreate")
    assert ("PodDisruptionBudget" in kinds_of(docs)) == (replicas > 1)
    watch = conf.get("watchNamespaces") or []
    if watch:
        assert "--all-namespaces" not in args
        assert [args[i + 1] for i, a in enumerate(args) if a == "-n"] == watch
    else:
        assert "--all-namespaces" in args
    crds = conf.get("crds") or {}
    assert ("CustomResourceDefinition" in kinds_of(docs)) == crds.get("install", True)
    mon = conf.get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
    assert ("ServiceMonitor" in kinds_of(docs)) == mon
    assert ("PrometheusRule" in kinds_of(docs)) == conf.get("prometheusRule", {}).get(
        "enabled", False
    )
    assert ("ConfigMap" in kinds_of(docs)) == conf.get("dashboard", {}).get("enabled", False)
    assert ("NetworkPolicy" in kinds_of(docs)) == conf.get("networkPolicy", {}).get("enabled", True)


def restricted_pod(dep: Doc) -> None:
    """Pod Security Standards, restricted profile (what its admission checks)."""
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    assert psc.get("runAsNonRoot") is True
    assert psc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    assert all("hostPath" not in v for v in pod.get("volumes") or [])
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        assert sc.get("allowPrivilegeEscalation") is False
        assert sc.get("capabilities", {}).get("drop") == ["ALL"]
        assert not sc.get("capabilities", {}).get("add")
        assert not sc.get("privileged")
        assert sc.get("readOnlyRootFilesystem") is True
        assert not c.get("ports") or all("hostPort" not in p for p in c["ports"])


def test_scheduling_and_image_values_reach_the_pod(helm: str) -> None:
    values = CHART / "ci" / "scheduling-values.yaml"
    conf = yaml.safe_load(values.read_text())
    docs = render(helm, "-f", str(values))
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = operator_container(docs)
    assert (
        c["image"] == f"registry.example.com/platform/workerpool-operator@{conf['image']['digest']}"
    )
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert pod[key] == conf[key], key
    assert c["resources"] == conf["resources"]
    assert pod["serviceAccountName"] == "wp-operator"
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "wp-operator"
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        for b in (d for d in docs if d["kind"] == binding):
            assert b["subjects"][0]["name"] == "wp-operator"
    assert {"name": "WORKERPOOL_RESYNC_SECONDS", "value": "60"} in c["env"]
    assert c["args"][-1] == "--verbose"
    netpol = one(docs, "NetworkPolicy")["spec"]
    assert netpol["policyTypes"] == ["Ingress", "Egress"]
    assert netpol["ingress"][0]["from"] == conf["networkPolicy"]["metricsFrom"]


def test_leader_election_env_and_ports(helm: str) -> None:
    docs = render(helm)
    c = operator_container(docs)
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--metrics-port=8080" in c["args"]
    assert "--liveness-port=8081" in c["args"]
    assert "--log-format=json" in c["args"]


def test_more_than_one_replica_needs_leader_election(helm: str) -> None:
    result = template(helm, "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert "needs leaderElection.enabled" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        "replicaCount=-1",
        "logFormat=xml",
        "image.pullPolicy=Sometimes",
        "unknownKey=1",
        "crds.instal=true",
        "watchNamespaces[0]=Not_A_Namespace",
        "metrics.port=0",
    ],
)
def test_schema_rejects_bad_values(helm: str, bad: str) -> None:
    result = template(helm, "--set", bad, check=False)
    assert result.returncode != 0, f"{bad} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


# --- CRDs ------------------------------------------------------------------------------------


def test_crds_keep_and_install_toggles(helm: str) -> None:
    crds = {
        d["metadata"]["name"]: d for d in render(helm) if d["kind"] == "CustomResourceDefinition"
    }
    sources = [
        yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("workerpools.io_*.yaml"))
    ]
    assert sorted(crds) == sorted(s["metadata"]["name"] for s in sources)
    for source in sources:  # the pool CRD and both connection CRDs
        crd = crds[source["metadata"]["name"]]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["spec"] == source["spec"], "the chart's CRD differs from crds/: run `make crds`"
    for crd in render(helm, "--set", "crds.keep=false"):
        if crd["kind"] == "CustomResourceDefinition":
            assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
    assert "CustomResourceDefinition" not in kinds_of(render(helm, "--set", "crds.install=false"))


def test_chart_crd_copy_is_current() -> None:
    from hack import chart_crds

    assert chart_crds.main(["--check"]) == 0, "run `make crds` (it refreshes the chart's copy)"


# --- RBAC ------------------------------------------------------------------------------------


def test_cluster_wide_rbac_is_the_registry(helm: str) -> None:
    docs = render(helm)
    assert triples(one(docs, "ClusterRole", "wp-workerpool-operator")["rules"]) == CLUSTER_NEEDS
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for role in rbac.user_roles_data():
        assert triples(users[f"wp-workerpool-operator-{role['name']}"]["rules"]) == triples(
            role["rules"]
        )
    no_users = render(helm, "--set", "rbac.userRoles=false")
    assert [d["metadata"]["name"] for d in no_users if d["kind"] == "ClusterRole"] == [
        "wp-workerpool-operator"
    ]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == [NS]
    assert triples(roles[0]["rules"]) == LEASE_NEEDS


def test_namespaced_rbac_is_the_registry_per_namespace(helm: str) -> None:
    docs = render(helm, "--set", "watchNamespaces={team-a,team-b}")
    cluster = triples(one(docs, "ClusterRole", "wp-workerpool-operator")["rules"])
    assert cluster == triples(rbac.cluster_only_rules())
    roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"
    }
    lease = roles.pop((NS, "wp-workerpool-operator-leader-election"))
    assert triples(lease["rules"]) == LEASE_NEEDS
    assert sorted(ns for ns, _ in roles) == ["team-a", "team-b"]
    for role in roles.values():
        assert triples(role["rules"]) | cluster == CLUSTER_NEEDS
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(["team-a", "team-b", NS])
    assert not any(r == "leases" for _, r, _ in cluster)
    namespaced = {k.plural for k in kinds.CLUSTER_RULE_KINDS if k.namespaced}
    assert not namespaced & {r for _, r, _ in cluster}


def test_rbac_off_renders_no_rbac(helm: str) -> None:
    docs = render(helm, "--set", "rbac.create=false")
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} & set(kinds_of(docs))


# --- values.schema.json cannot drift from values.yaml ---------------------------------------


def _walk(values: Any, schema: dict[str, Any], root: dict[str, Any], path: str) -> Iterator[str]:
    """Problems: keys of values.yaml the schema does not describe, and schema properties that
    values.yaml lacks (every option must have a default the reader can see)."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if not isinstance(values, dict) or "properties" not in schema:
        return
    props = schema["properties"]
    for key in values:
        if key not in props:
            yield f"{path}{key}: in values.yaml but not in values.schema.json"
    for key, sub in props.items():
        if key == "global":
            continue
        if key not in values:
            yield f"{path}{key}: in values.schema.json but not in values.yaml"
        else:
            yield from _walk(values[key], sub, root, f"{path}{key}.")
    if schema.get("additionalProperties") is not False:
        yield f"{path or '<root>'}: schema object without additionalProperties: false"


def test_values_schema_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values, schema)
    assert list(_walk(values, schema, schema, "")) == []
    for path in VALUES_FILES:
        jsonschema.validate(yaml.safe_load(path.read_text()) or {}, schema)


def test_every_value_has_a_comment() -> None:
    """values.yaml is the chart's documentation: each top-level key is explained above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and ":" in line:
            block = lines[max(0, i - 3) : i]
            nested = i + 1 < len(lines) and lines[i + 1].startswith("  ")
            assert nested or any(b.lstrip().startswith("# --") for b in block), line


# --- one operator, two installs: the chart agrees with manifests/ (kustomize) ---------------


def manifests_docs() -> list[Doc]:
    docs: list[Doc] = []
    kustomization = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        if name.startswith(".."):
            continue
        docs += [d for d in yaml.safe_load_all((ROOT / "manifests" / name).read_text()) if d]
    return docs


def test_chart_and_kustomize_install_the_same_operator(helm: str) -> None:
    chart = render(helm)
    kust = manifests_docs()
    kustomization = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NS
    assert "../crds" in kustomization["resources"]
    # RBAC: the same rules (both generated from the registry).
    for suffix in ("", *(f"-{r.name}" for r in kinds.USER_ROLES)):
        c = one(chart, "ClusterRole", f"wp-workerpool-operator{suffix}")
        k = one(kust, "ClusterRole", f"workerpool{'-operator' if not suffix else 's'}{suffix}")
        assert triples(c["rules"]) == triples(k["rules"])
    assert triples(one(chart, "Role")["rules"]) == triples(one(kust, "Role")["rules"])
    # The operator pod: same replicas, strategy, args, env, ports, probes, security, resources.
    cdep, kdep = one(chart, "Deployment"), one(kust, "Deployment")
    assert cdep["spec"]["replicas"] == kdep["spec"]["replicas"] == 2
    assert cdep["spec"]["strategy"]["type"] == kdep["spec"]["strategy"]["type"]
    cpod, kpod = cdep["spec"]["template"]["spec"], kdep["spec"]["template"]["spec"]
    assert cpod["securityContext"] == kpod["securityContext"]
    assert cpod["volumes"] == kpod["volumes"]
    cc, kc = operator_container(chart), kpod["containers"][0]
    for key in (
        "args",
        "env",
        "ports",
        "livenessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
        "imagePullPolicy",
    ):
        assert cc[key] == kc[key], key
    repo = kc["image"].rsplit(":", 1)[0]
    tag = next(i["newTag"] for i in kustomization["images"] if i["name"] == repo)
    assert cc["image"] == f"{repo}:{tag}"
    # The metrics Service exposes the same port.
    csvc = one(chart, "Service")["spec"]["ports"]
    ksvc = one(kust, "Service")["spec"]["ports"]
    assert csvc == ksvc
    # Disruption budget and network policy: same rules.
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        cspec, kspec = dict(one(chart, kind)["spec"]), dict(one(kust, kind)["spec"])
        for spec in (cspec, kspec):
            spec.pop("selector" if kind == "PodDisruptionBudget" else "podSelector")
        assert cspec == kspec, kind
    assert sorted({d["kind"] for d in chart} - {"CustomResourceDefinition"}) == sorted(
        {d["kind"] for d in kust} - {"Namespace"}
    )
    # The namespace enforces the restricted profile the pod is written for.
    ns = one(kust, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_admission_policy_is_optional_and_the_shipped_one(helm: str) -> None:
    """Off by default; on, the chart installs exactly manifests/admission/."""
    assert "ValidatingAdmissionPolicy" not in kinds_of(render(helm))
    shipped = [
        d
        for d in yaml.safe_load_all(
            (ROOT / "manifests" / "admission" / "pool-template-policy.yaml").read_text()
        )
        if d
    ]
    docs = render(helm, "--set", "admissionPolicy.enabled=true")
    chart = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert [d["kind"] for d in chart] == [d["kind"] for d in shipped]
    for ours, theirs in zip(chart, shipped, strict=True):
        assert ours["spec"] == theirs["spec"]


def test_restrict_egress_limits_the_operator_to_dns_the_api_server_and_the_given_rules(
    helm: str,
) -> None:
    """networkPolicy.restrictEgress: the operator, which dials the addresses tenants write in
    their connections, may reach only the cluster DNS pods, the API server and the admin's own
    rules (e.g. the Temporal servers): no rule without a destination, none to 0.0.0.0/0."""
    temporal = {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"port": 7233}]}
    docs = render(
        helm,
        "--set", "networkPolicy.restrictEgress=true",
        "--set", "networkPolicy.apiServerCIDRs={10.96.0.1/32,172.18.0.2/32}",
        "--set-json", f"networkPolicy.egress=[{json.dumps(temporal)}]",
    )  # fmt: skip
    netpol = one(docs, "NetworkPolicy")["spec"]
    assert netpol["policyTypes"] == ["Ingress", "Egress"]
    dns, api_server, user = netpol["egress"]
    assert dns["to"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }]  # fmt: skip
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api_server["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}},
                                {"ipBlock": {"cidr": "172.18.0.2/32"}}]  # fmt: skip
    assert [p["port"] for p in api_server["ports"]] == [443, 6443]
    assert user == temporal
    for rule in netpol["egress"]:
        assert rule.get("to"), rule
        assert all(p.get("ipBlock", {}).get("cidr") != "0.0.0.0/0" for p in rule["to"]), rule
    # without the API server's addresses the operator would lock itself out: refused
    failed = template(helm, "--set", "networkPolicy.restrictEgress=true", check=False)
    assert failed.returncode != 0
    assert "networkPolicy.apiServerCIDRs" in failed.stderr
    # the default stays as it was: egress open
    assert one(render(helm), "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress"]
