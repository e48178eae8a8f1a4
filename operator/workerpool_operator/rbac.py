"""RBAC rules generated from the kind registry (`workerpool_operator.kinds`); pure, no I/O.

`python -m workerpool_operator.rbac` (re)writes the two generated files, `--check` fails when
either is stale (part of `make lint`):

- `manifests/rbac.yaml`: ServiceAccount, ClusterRole + binding (cluster-wide install), the
  leader-election Role + binding in the operator's own namespace, and the user-facing
  ClusterRoles (`kinds.USER_ROLES`: pool author, connection author, viewer) that aggregate into
  the built-in `admin`/`edit`/`view`;
- `charts/workerpool-operator/files/rbac.yaml`: the same rules as data, which the chart's
  templates turn into a ClusterRole, or a Role per `watchNamespaces` entry for namespaced kinds.

Kinds of one API group with the same verbs share a rule, so the output stays short and reads
like a hand-written one; tests/unit/test_rbac.py expands every rule back into
(group, resource, verb) triples and compares them with the registry, both ways.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from workerpool_operator import kinds, names

# The operator's own ServiceAccount and namespace (names.py).
SERVICE_ACCOUNT = names.OPERATOR
SYSTEM_NAMESPACE = names.DEFAULT_NAMESPACE
MANIFEST_FILE = Path("manifests/rbac.yaml")
CHART_FILE = Path("charts/workerpool-operator/files/rbac.yaml")

Rule = dict[str, list[str]]


def rules(kind_list: Iterable[kinds.Kind]) -> list[Rule]:
    """PolicyRules for the kinds, merging kinds of one group with identical verbs.

    Order follows the registry (first appearance of each group+verbs pair), so a new kind
    shows up as a small diff.
    """
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for kind in kind_list:
        resources = merged.setdefault((kind.group, kind.verbs), [])
        if kind.plural not in resources:
            resources.append(kind.plural)
    return [
        {"apiGroups": [group], "resources": resources, "verbs": list(verbs)}
        for (group, verbs), resources in merged.items()
    ]


def cluster_rules() -> list[Rule]:
    """The ClusterRole of a cluster-wide install (all namespaces)."""
    return rules((*kinds.CLUSTER_RULE_KINDS, *kinds.CLUSTER_ONLY_KINDS))


def namespaced_rules() -> list[Rule]:
    """Per watched namespace (a Role in each) when the install is limited to some namespaces."""
    return rules(k for k in kinds.CLUSTER_RULE_KINDS if k.namespaced)


def cluster_only_rules() -> list[Rule]:
    """What stays in a ClusterRole even for a namespace-limited install (cluster-scoped kinds,
    and any cluster-rule kind that is not namespaced)."""
    extra = [k for k in kinds.CLUSTER_RULE_KINDS if not k.namespaced]
    return rules((*extra, *kinds.CLUSTER_ONLY_KINDS))


def own_namespace_rules() -> list[Rule]:
    """A Role in the operator's own namespace: the leader-election Lease."""
    return rules(kinds.OWN_NAMESPACE_KINDS)


def user_role_rules(role: kinds.UserRole) -> list[Rule]:
    """The rules of one user-facing role: its verbs on its kinds (status read-only)."""
    return rules(
        kinds.Kind(k.api_version, k.kind, k.plural, kinds.READ_VERBS if "/" in k.plural
                   else role.verbs)
        for k in role.kinds
    )  # fmt: skip


def user_roles_data() -> list[dict[str, Any]]:
    """User-facing roles as data: name suffix, the built-in roles they aggregate to, rules."""
    return [
        {"name": r.name, "why": r.why, "aggregateTo": list(r.aggregate_to),
         "rules": user_role_rules(r)}
        for r in kinds.USER_ROLES
    ]  # fmt: skip


def user_cluster_roles(prefix: str = "workerpools") -> list[dict[str, Any]]:
    """ClusterRoles `<prefix>-pool-author`, `-connection-author`, `-viewer` that aggregate
    into `admin`/`edit`/`view`."""
    out = []
    for role in user_roles_data():
        meta = _meta(f"{prefix}-{role['name']}")
        meta["labels"].update(
            {f"rbac.authorization.k8s.io/aggregate-to-{to}": "true" for to in role["aggregateTo"]}
        )
        meta["annotations"] = {"workerpools.io/role": role["why"]}
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta, "rules": role["rules"],
        })  # fmt: skip
    return out


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": SERVICE_ACCOUNT,
            "app.kubernetes.io/part-of": "temporal-workerpools",
        },
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def manifests(namespace: str = SYSTEM_NAMESPACE) -> list[dict[str, Any]]:
    """The kustomize install's RBAC objects (cluster-wide)."""
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT)},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(SERVICE_ACCOUNT),
            "rules": cluster_rules(),
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(SERVICE_ACCOUNT),
            "roleRef": {
                "apiGroup": rbac.split("/")[0],
                "kind": "ClusterRole",
                "name": SERVICE_ACCOUNT,
            },
            "subjects": [subject],
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": _meta(f"{SERVICE_ACCOUNT}-leader-election"),
            "rules": own_namespace_rules(),
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": _meta(f"{SERVICE_ACCOUNT}-leader-election"),
            "roleRef": {
                "apiGroup": rbac.split("/")[0],
                "kind": "Role",
                "name": f"{SERVICE_ACCOUNT}-leader-election",
            },
            "subjects": [subject],
        },
        *user_cluster_roles(),
    ]


def chart_data() -> dict[str, list[Rule]]:
    """Rules as data for the chart's templates (charts/workerpool-operator/templates/rbac.yaml)."""
    return {
        "clusterRules": cluster_rules(),
        "namespacedRules": namespaced_rules(),
        "clusterOnlyRules": cluster_only_rules(),
        "leaderElectionRules": own_namespace_rules(),
        "userRoles": user_roles_data(),
    }


class _Dumper(yaml.SafeDumper):
    """Lists of plain strings in flow style (`verbs: [get, list]`), like hand-written RBAC."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(isinstance(x, str) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)

_HEADER = (
    "# Generated by `python -m workerpool_operator.rbac` from workerpool_operator/kinds.py.\n"
    "# Do not edit: change the kind registry and regenerate (`make lint` checks it).\n"
)


def render_manifests() -> str:
    return _HEADER + yaml.dump_all(manifests(), Dumper=_Dumper, sort_keys=False, width=100)


def render_chart_data() -> str:
    return _HEADER + yaml.dump(chart_data(), Dumper=_Dumper, sort_keys=False, width=100)


def outputs(root: Path) -> dict[Path, str]:
    return {root / MANIFEST_FILE: render_manifests(), root / CHART_FILE: render_chart_data()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write (default) or `--check` manifests/rbac.yaml and the chart's RBAC data.

    Usage: python -m workerpool_operator.rbac [--check] [REPO_ROOT]
    """
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    rest = [a for a in args if not a.startswith("-")]
    root = Path(rest[0]) if rest else Path()
    stale = 0
    for path, text in outputs(root).items():
        if check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} is stale: run `python -m workerpool_operator.rbac`", file=sys.stderr)
                stale += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
