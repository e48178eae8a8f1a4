"""The RBAC in manifests/ and the chart is what the kind registry needs, no more, no less."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.builders import CLUSTER_NEEDS, LEASE_NEEDS, triples
from workerpool_operator import kinds, rbac

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_current() -> None:
    """`python -m workerpool_operator.rbac --check` (also in `make lint`)."""
    assert rbac.main(["--check", str(ROOT)]) == 0, "run `python -m workerpool_operator.rbac`"


def test_cluster_rules_match_registry_exactly() -> None:
    assert triples(rbac.cluster_rules()) == CLUSTER_NEEDS


def test_namespaced_split_covers_the_same_permissions() -> None:
    """watchNamespaces installs: Roles for namespaced kinds + a ClusterRole for the rest."""
    namespaced = triples(rbac.namespaced_rules())
    cluster_only = triples(rbac.cluster_only_rules())
    assert namespaced | cluster_only == CLUSTER_NEEDS
    assert not namespaced & cluster_only
    cluster_scoped = {k.plural for k in (*kinds.CLUSTER_RULE_KINDS, *kinds.CLUSTER_ONLY_KINDS)
                      if not k.namespaced}  # fmt: skip
    assert {r for _, r, _ in cluster_only} == cluster_scoped
    assert triples(rbac.own_namespace_rules()) == LEASE_NEEDS


def test_rules_are_merged_by_group_and_verbs() -> None:
    rules = rbac.cluster_rules()
    keys = [(tuple(r["apiGroups"]), tuple(r["verbs"])) for r in rules]
    assert len(keys) == len(set(keys)), "two rules share group and verbs: merge them"
    keda = next(r for r in rules if r["apiGroups"] == ["keda.sh"])
    assert keda["resources"] == ["scaledobjects", "triggerauthentications"]


def test_manifests_grant_exactly_the_registry() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/rbac.yaml").read_text()) if d]
    users = {f"workerpools-{r.name}" for r in kinds.USER_ROLES}
    by_kind = {d["kind"]: d for d in docs if d["metadata"]["name"] not in users}
    assert triples(by_kind["ClusterRole"]["rules"]) == CLUSTER_NEEDS
    assert triples(by_kind["Role"]["rules"]) == LEASE_NEEDS
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        b = by_kind[binding]
        assert b["roleRef"]["kind"] == binding.removesuffix("Binding")
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT,
             "namespace": rbac.SYSTEM_NAMESPACE}
        ]  # fmt: skip
    assert sorted(by_kind) == [
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount",
    ]  # fmt: skip


def test_no_secret_writes_and_no_cluster_wide_lease() -> None:
    granted = triples(rbac.cluster_rules())
    assert {v for g, r, v in granted if (g, r) == ("", "secrets")} == {"list", "watch"}
    assert not any(r == "leases" for _, r, _ in granted)


def test_a_registry_change_changes_the_rules() -> None:
    """The rules are computed, not copied: a new verb in the registry shows up."""
    extra = kinds.Kind("v1", "ConfigMap", "configmaps", ("get",))
    assert ("", "configmaps", "get") in triples(rbac.rules((*kinds.CLUSTER_RULE_KINDS, extra)))


def test_user_roles_split_pool_authors_connection_authors_and_viewers() -> None:
    """Pool authors cannot write connections (where credentials go) and viewers write nothing;
    each role aggregates into the built-in roles that should include it."""
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/rbac.yaml").read_text()) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    pool = triples(roles["workerpools-pool-author"]["rules"])
    conn = triples(roles["workerpools-connection-author"]["rules"])
    view = triples(roles["workerpools-viewer"]["rules"])
    group = "workerpools.io"
    assert (group, "temporalworkerpools", "create") in pool
    assert not any(r.startswith("temporalconnections") for _, r, _ in pool)
    assert (group, "temporalconnections", "create") in conn
    assert not any(r.startswith("temporalworkerpools") for _, r, _ in conn)
    assert {v for _, _, v in view} == {"get", "list", "watch"}
    assert not any(r.startswith("clustertemporalconnections") for _, r, _ in pool | conn | view)
    assert not any(r == "secrets" for _, r, _ in pool | conn | view)

    def aggregates(name: str) -> set[str]:
        labels = roles[name]["metadata"]["labels"]
        prefix = "rbac.authorization.k8s.io/aggregate-to-"
        return {k.removeprefix(prefix) for k, v in labels.items() if k.startswith(prefix) and v}

    assert aggregates("workerpools-pool-author") == {"admin", "edit"}
    assert aggregates("workerpools-connection-author") == {"admin", "edit"}
    assert aggregates("workerpools-viewer") == {"admin", "edit", "view"}
