"""Generate the CustomResourceDefinition from the pydantic models (`make crds`).

Kubernetes wants a *structural* OpenAPI v3.0 schema: no `$ref`, no `anyOf` of types, no nulls,
boolean `exclusiveMinimum`. Pydantic emits JSON Schema 2020-12, so this module inlines and
rewrites it. A small converter beats a dependency here: the rules are few and visible, and a
golden test (tests/unit/test_crd.py) fails when the committed YAML drifts from the models.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from workerpool_operator.api import v1alpha1 as api

CRD_FILE = f"{api.GROUP}_{api.PLURAL}.yaml"
CONNECTION_CRD_FILE = f"{api.GROUP}_{api.CONNECTION_PLURAL}.yaml"
CLUSTER_CONNECTION_CRD_FILE = f"{api.GROUP}_{api.CLUSTER_CONNECTION_PLURAL}.yaml"
# Upstream Kubernetes schemas of pod fields, extracted by hack/k8s_schemas.py (generated file).
K8S_SCHEMAS = Path(__file__).with_name("k8s_schemas.json")
_DROP = {"title", "discriminator"}
# What a field marked with `k8s_field()` keeps of its own schema on top of the upstream one.
_K8S_KEEP = ("description", "default", "maxItems", "maxProperties")


@functools.cache
def k8s_schemas() -> dict[str, Any]:
    """The generated file: {"source": ..., "fields": {name: structural schema}}."""
    data: dict[str, Any] = json.loads(K8S_SCHEMAS.read_text())
    return data


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` merged into `base`, nested dicts merged key by key."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _k8s_field(node: dict[str, Any]) -> dict[str, Any]:
    """The upstream schema for a `k8s_field()` node, plus the node's description and rules."""
    name = node["x-k8s-field"]
    fields = k8s_schemas()["fields"]
    if name not in fields:
        raise KeyError(f"{name} is not in {K8S_SCHEMAS.name}: add it to hack/k8s_schemas.py")
    out: dict[str, Any] = _merge(copy.deepcopy(fields[name]), node.get("x-k8s-overlay") or {})
    for key in _K8S_KEEP:
        if node.get(key) is not None:
            out[key] = node[key]
    rules = node.get("x-kubernetes-validations")
    if rules:
        out["x-kubernetes-validations"] = out.get("x-kubernetes-validations", []) + rules
    return out


NAME_RULE = "self.metadata.name.matches('^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')"


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one JSON-schema node into a structural schema node (recursively)."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "x-overlay" in node:  # schema_overlay(): the type's schema, then the overlay on top
        overlay = copy.deepcopy(node.pop("x-overlay"))
        return _merge(_structural(node, defs), overlay)
    if "x-k8s-field" in node:
        return _k8s_field(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**target, **node}  # siblings (description, default) win over the definition
        if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
            merged["x-kubernetes-validations"] = (
                target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
            )
        node = merged
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            pattern = next((b["pattern"] for b in branches if "pattern" in b), None)
            if pattern and "pattern" not in node and node.get("x-kubernetes-int-or-string"):
                node["pattern"] = pattern
        elif len(branches) == 1:
            node = {**branches[0], **node}
            if "$ref" in node:
                return _structural(node, defs)
        else:
            raise ValueError(f"cannot express anyOf {branches} structurally")
    if node.get("x-kubernetes-int-or-string") or (
        node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") != "object"
    ):
        node.pop("type", None)
        node.pop("enum", None)
    if node.get("default", 0) is None:
        node.pop("default")
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    return out


def openapi_schema(model: type[api.Model]) -> dict[str, Any]:
    """Structural schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_structural(raw, raw.get("$defs", {})))


def printer_columns() -> list[dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Queue", "type": "string", "jsonPath": ".spec.taskQueue"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Backlog", "type": "integer", "jsonPath": ".status.backlog.count"},
        {"name": "GPU", "type": "integer", "jsonPath": ".spec.gpu.count"},
        {"name": "Status", "type": "string", "jsonPath": f"{ready}.reason"},
        # -o wide: the autoscaling engine, the worker image's tag and where workers connect.
        {"name": "Engine", "type": "string", "jsonPath": ".spec.autoscaling.engine", "priority": 1},
        {"name": "Runtime", "type": "string", "jsonPath": ".status.runtimeImage", "priority": 1},
        {
            "name": "Connection",
            "type": "string",
            "jsonPath": ".status.connection",
            "priority": 1,
        },
        # -o wide, versioned pools (spec.versioning): the build Temporal routes new work to, the
        # build the spec asks for, and the share of new work the target gets while it ramps.
        {"name": "Current", "type": "string", "jsonPath": ".status.currentBuildId", "priority": 1},
        {"name": "Target", "type": "string", "jsonPath": ".status.targetBuildId", "priority": 1},
        {"name": "Ramp", "type": "number", "jsonPath": ".status.rampPercentage", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _envelope(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    cluster: bool,
    spec_model: type[api.Model],
    status_model: type[api.Model],
    description: str,
    subresources: dict[str, Any],
    columns: list[dict[str, Any]],
    rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One CustomResourceDefinition: a single served and stored version of `kind`, whose schema
    is the structural schema of its spec and status models (each described by its docstring)."""
    spec = openapi_schema(spec_model)
    spec["description"] = " ".join((spec_model.__doc__ or "").split())
    status = openapi_schema(status_model)
    status["description"] = " ".join((status_model.__doc__ or "").split())
    root: dict[str, Any] = {"type": "object", "description": description, "required": ["spec"]}
    if rules:
        root["x-kubernetes-validations"] = rules
    root["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
        "status": status,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "temporal-workerpools"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Cluster" if cluster else "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": api.CATEGORIES,
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    """The TemporalWorkerPool CustomResourceDefinition (with the scale subresource)."""
    return _envelope(
        kind=api.KIND,
        plural=api.PLURAL,
        short_names=api.SHORT_NAMES,
        cluster=False,
        spec_model=api.TemporalWorkerPoolSpec,
        status_model=api.TemporalWorkerPoolStatus,
        description=(
            "A pool of Temporal workers: Deployment, Service, ServiceMonitor, "
            "PodDisruptionBudget and backlog autoscaling from one object."
        ),
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=printer_columns(),
        rules=[
            {
                "rule": NAME_RULE,
                "message": "metadata.name must be a DNS-1035 label of at most 63 characters "
                "(lowercase letters, digits, '-', starting with a letter): the pool's Service "
                "and labels carry it",
            }
        ],
    )


def connection_printer_columns(cluster: bool) -> list[dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Address", "type": "string", "jsonPath": ".spec.address"},
        {"name": "Namespace", "type": "string", "jsonPath": ".spec.namespace"},
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Version", "type": "string", "jsonPath": ".status.serverVersion"},
        *(
            [
                {
                    "name": "Allowed",
                    "type": "string",
                    "jsonPath": ".spec.allowedNamespaces",
                    "priority": 1,
                }
            ]
            if cluster
            else []
        ),
        {"name": "Pools", "type": "string", "jsonPath": ".spec.allowedPools", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def connection_crd(cluster: bool) -> dict[str, Any]:
    """The CRD of TemporalConnection (namespaced) or ClusterTemporalConnection."""
    return _envelope(
        kind=api.CLUSTER_CONNECTION_KIND if cluster else api.CONNECTION_KIND,
        plural=api.CLUSTER_CONNECTION_PLURAL if cluster else api.CONNECTION_PLURAL,
        short_names=api.CLUSTER_CONNECTION_SHORT_NAMES if cluster else api.CONNECTION_SHORT_NAMES,
        cluster=cluster,
        spec_model=api.ClusterTemporalConnectionSpec if cluster else api.TemporalConnectionSpec,
        status_model=api.TemporalConnectionStatus,
        description=(
            "A Temporal connection (address, namespace, TLS, API key) that "
            "TemporalWorkerPools reference with spec.connectionRef"
            + (", from the namespaces it allows." if cluster else ".")
        ),
        subresources={"status": {}},
        columns=connection_printer_columns(cluster),
    )


HEADER = "# Generated by `make crds` from workerpool_operator/api/v1alpha1.py. Do not edit.\n"


def _yaml(doc: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)


def render_yaml() -> str:
    """The TemporalWorkerPool CRD as committed."""
    return _yaml(crd())


def render_all() -> dict[str, str]:
    """Every generated CRD file under crds/, by file name."""
    return {
        CRD_FILE: render_yaml(),
        CONNECTION_CRD_FILE: _yaml(connection_crd(cluster=False)),
        CLUSTER_CONNECTION_CRD_FILE: _yaml(connection_crd(cluster=True)),
    }


def main(argv: list[str] | None = None) -> int:
    """Write (default) or `--check` the CRD files under crds/."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[-1]) if args and not args[-1].startswith("-") else Path("crds")
    files = render_all()
    if "--check" in args:
        stale = [n for n, t in files.items() if not (out_dir / n).exists() or
                 (out_dir / n).read_text() != t]  # fmt: skip
        for name in stale:
            print(f"{out_dir / name} is stale: run `make crds` and commit it", file=sys.stderr)
        return 1 if stale else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text)
        print(out_dir / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
