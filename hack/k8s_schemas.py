"""Extract the upstream Kubernetes schemas of the pod fields a pool passes into its pods.

`python -m hack.k8s_schemas` reads the OpenAPI v3 documents that ship inside the
`k8s.io/kubernetes` Go module of the version the test bed runs (hack/versions.env, found in
`go env GOMODCACHE`, where `make controlplane` leaves it), inlines every `$ref` (a CRD schema
must be structural: no references) and writes `operator/workerpool_operator/api/k8s_schemas.json`,
which `crdgen` embeds wherever the pydantic model marks a field with `k8s_field(...)`.

`--check` compares the committed file with a fresh extraction (`make lint`); where the module is
not in the Go module cache it says so and succeeds, since there is nothing to compare against.

Conversions, all mechanical:
- `$ref` / `allOf: [$ref]` are inlined; the referring node's keys win.
- IntOrString becomes `x-kubernetes-int-or-string`; Quantity the same plus the quantity
  grammar as a `pattern` (what controller-gen emits), so `cpu: "1.2.3"` fails at admission.
- Descriptions are cut to their first sentence (at most 200 characters), so `kubectl explain`
  documents every field while the CRD stays far below the API server's request limit and
  kubectl's 256 KiB client-side-apply annotation. Defaults are dropped (the Deployment gets
  them from the API server), except a default on a list-map key (the API server requires keys
  to be required or defaulted).
- Strategic-merge-patch hints (`x-kubernetes-patch-*`) are dropped; CRDs do not use them.
- An object without properties (e.g. FieldsV1) keeps its content
  (`x-kubernetes-preserve-unknown-fields`) instead of being pruned to `{}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "operator" / "workerpool_operator" / "api" / "k8s_schemas.json"

# Exactly the grammar of k8s.io/apimachinery/pkg/api/resource (as controller-gen writes it).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

CORE = "api__v1_openapi.json"
APPS = "apis__apps__v1_openapi.json"
POLICY = "apis__policy__v1_openapi.json"

# name used in api/*.py (k8s_field) -> (OpenAPI document, definition, property or None)
FIELDS: dict[str, tuple[str, str, str | None]] = {
    "Container.env": (CORE, "io.k8s.api.core.v1.Container", "env"),
    "Container.envFrom": (CORE, "io.k8s.api.core.v1.Container", "envFrom"),
    "Container.volumeMounts": (CORE, "io.k8s.api.core.v1.Container", "volumeMounts"),
    "Container.imagePullPolicy": (CORE, "io.k8s.api.core.v1.Container", "imagePullPolicy"),
    "ResourceRequirements.requests": (CORE, "io.k8s.api.core.v1.ResourceRequirements", "requests"),
    "ResourceRequirements.limits": (CORE, "io.k8s.api.core.v1.ResourceRequirements", "limits"),
    "PodSpec.volumes": (CORE, "io.k8s.api.core.v1.PodSpec", "volumes"),
    "PodSpec.tolerations": (CORE, "io.k8s.api.core.v1.PodSpec", "tolerations"),
    "PodSpec.affinity": (CORE, "io.k8s.api.core.v1.PodSpec", "affinity"),
    "PodSpec.topologySpreadConstraints": (
        CORE,
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
    ),
    "PodSpec.imagePullSecrets": (CORE, "io.k8s.api.core.v1.PodSpec", "imagePullSecrets"),
    "PodSpec.nodeSelector": (CORE, "io.k8s.api.core.v1.PodSpec", "nodeSelector"),
    "PodSpec.serviceAccountName": (CORE, "io.k8s.api.core.v1.PodSpec", "serviceAccountName"),
    "PodSpec.priorityClassName": (CORE, "io.k8s.api.core.v1.PodSpec", "priorityClassName"),
    "PodSpec.runtimeClassName": (CORE, "io.k8s.api.core.v1.PodSpec", "runtimeClassName"),
    "EmptyDirVolumeSource.sizeLimit": (
        CORE,
        "io.k8s.api.core.v1.EmptyDirVolumeSource",
        "sizeLimit",
    ),
    "RollingUpdateDeployment.maxSurge": (
        APPS,
        "io.k8s.api.apps.v1.RollingUpdateDeployment",
        "maxSurge",
    ),
    "RollingUpdateDeployment.maxUnavailable": (
        APPS,
        "io.k8s.api.apps.v1.RollingUpdateDeployment",
        "maxUnavailable",
    ),
    "PodDisruptionBudgetSpec.maxUnavailable": (
        POLICY,
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        "maxUnavailable",
    ),
    "PodDisruptionBudgetSpec.minAvailable": (
        POLICY,
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        "minAvailable",
    ),
}

_DROP = {"description", "default", "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy"}


def kubernetes_version() -> str:
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("KUBERNETES_VERSION="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("KUBERNETES_VERSION missing from hack/versions.env")


def spec_dir(version: str) -> Path | None:
    """api/openapi-spec/v3 of k8s.io/kubernetes@version in the Go module cache, if there."""
    cache = os.environ.get("GOMODCACHE")
    if not cache:
        try:
            cache = subprocess.run(
                ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    path = Path(cache) / "k8s.io" / f"kubernetes@{version}" / "api" / "openapi-spec" / "v3"
    return path if path.is_dir() else None


def _convert(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """One upstream node as a structural CRD schema node (references inlined)."""
    if isinstance(node, list):
        return [_convert(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    all_of = node.get("allOf")
    if ref is None and isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        node.pop("allOf")
        ref = all_of[0]["$ref"]
    if ref is not None:
        name = ref.split("/")[-1]
        if name in seen:
            raise ValueError(f"recursive schema {' -> '.join((*seen, name))}")
        if name == INT_OR_STRING:
            target: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        elif name == QUANTITY:
            target = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}
        else:
            target = _convert(defs[name], defs, (*seen, name))
        described = node.get("description")
        node = {**target, **{k: v for k, v in node.items() if k not in _DROP}}
        if described:  # the field's own words beat its type's
            node["description"] = _short(described)
        return node
    if "oneOf" in node or "anyOf" in node or "allOf" in node:
        raise ValueError(f"cannot express {sorted(node)} structurally under {seen}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description":
            out[key] = _short(value)
            continue
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _convert(v, defs, seen) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, defs, seen)
        else:
            out[key] = value
    if out.get("type") == "object" and not {"properties", "additionalProperties"} & set(out):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-list-type") == "map":
        item = out["items"]
        raw_item = _resolve(node["items"], defs)
        for key in out["x-kubernetes-list-map-keys"]:
            if key not in item.get("required", []):
                default = raw_item.get("properties", {}).get(key, {}).get("default")
                if default is None:
                    raise ValueError(f"list-map key {key} under {seen}: not required, no default")
                item["properties"][key]["default"] = default
    return out


def _short(text: str) -> str:
    """The first sentence of an upstream description, at most 200 characters."""
    first = " ".join(text.split("\n\n")[0].split())
    cut = first.find(". ")
    if cut != -1:
        first = first[: cut + 1]
    return first if len(first) <= 200 else first[:197].rstrip() + "..."


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The raw definition a node refers to (through `allOf: [$ref]`), or the node itself."""
    ref = node.get("$ref") or (node.get("allOf") or [{}])[0].get("$ref")
    return dict(defs[ref.split("/")[-1]]) if ref else node


def extract(directory: Path, version: str) -> dict[str, Any]:
    docs: dict[str, dict[str, Any]] = {}
    fields: dict[str, Any] = {}
    for name, (doc, definition, prop) in sorted(FIELDS.items()):
        if doc not in docs:
            docs[doc] = json.loads((directory / doc).read_text())["components"]["schemas"]
        defs = docs[doc]
        node = defs[definition]["properties"][prop] if prop else defs[definition]
        fields[name] = _convert(node, defs, (definition,))
    return {
        "source": f"k8s.io/kubernetes@{version} api/openapi-spec/v3",
        "generator": "python -m hack.k8s_schemas",
        "fields": fields,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    version = kubernetes_version()
    directory = spec_dir(version)
    if directory is None:
        msg = f"k8s.io/kubernetes@{version} is not in the Go module cache (make controlplane)"
        if "--check" in args:
            print(f"{OUT.name}: not checked: {msg}", file=sys.stderr)
            return 0
        print(msg, file=sys.stderr)
        return 1
    text = render(extract(directory, version))
    if "--check" in args:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run `python -m hack.k8s_schemas`", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
