"""Schema helpers every kind shares: the Model base, CEL and Kubernetes-field markers, the
regex grammar, small shared types (quantities, label selectors) and the API group."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from workerpool_operator.names import GROUP

VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORIES = ["temporal"]

# Safety cap on spec.replicas and autoscaling.maxReplicas unless spec.replicaLimit raises it.
DEFAULT_REPLICA_LIMIT = 100
MAX_REPLICA_LIMIT = 10000

# Schema markers understood by crdgen (kept as json_schema_extra so pydantic stays the source).
PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}
INT_OR_STRING = {"x-kubernetes-int-or-string": True}


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Attach CEL rules (rule, message) to a model's schema."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def k8s_field(
    name: str,
    *rules: tuple[str, str],
    max_items: int | None = None,
    max_properties: int | None = None,
    overlay: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark a field as typed by the upstream Kubernetes schema `name` (see k8s_schemas.json).

    crdgen replaces the field's schema with the one extracted from the Kubernetes OpenAPI of the
    version the test bed runs (hack/k8s_schemas.py), keeping this field's description, `rules`
    (CEL for what OpenAPI cannot say) and the size bounds that keep CEL cost estimates finite.
    `overlay` is merged into the upstream schema (nested dicts merge): only for bounds that the
    Kubernetes API enforces in Go but not in its OpenAPI, such as a label value's grammar.
    """
    extra: dict[str, Any] = {"x-k8s-field": name}
    if overlay:
        extra["x-k8s-overlay"] = overlay
    if rules:
        extra.update(cel(*rules))
    if max_items is not None:
        extra["maxItems"] = max_items
    if max_properties is not None:
        extra["maxProperties"] = max_properties
    return extra


def schema_overlay(overlay: dict[str, Any]) -> dict[str, Any]:
    """Mark a field whose schema crdgen generates from its type and then merges `overlay` into
    (nested dicts merge, anything else is replaced): the same type, documented for another use."""
    return {"x-overlay": overlay}


IntOrString = Annotated[int | str, Field(json_schema_extra=INT_OR_STRING)]
# The resource.Quantity grammar (the same pattern the extracted Kubernetes schema carries).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={**INT_OR_STRING, "pattern": QUANTITY_PATTERN}),
]
# Nested objects defaulted to {} at admission so their own field defaults show in the API.
EMPTY_DEFAULT: JsonDict = {"default": {}}
# Kubernetes objects we pass through verbatim (the API server validates them on the child).
KubeObject = Annotated[dict[str, Any], Field(json_schema_extra={"type": "object", **PRESERVE})]
KubeObjectList = Annotated[
    list[dict[str, Any]], Field(json_schema_extra={"items": {"type": "object", **PRESERVE}})
]


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields ignored on read."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        # A field's docstring is its description (kubectl explain), like Field(description=).
        use_attribute_docstrings=True,
    )

    def dump(self) -> dict[str, Any]:
        """Serialize as the API server stores it (camelCase, unset optionals omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- grammar shared by several fields ---------------------------------------------------------


def cel_strings(values: tuple[str, ...]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# distribution/reference: [host[:port]/]path, path components lowercase; no tag, no digest.
_DOMAIN_PART = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*"
IMAGE_REPOSITORY = rf"^({_DOMAIN_PART}(\.{_DOMAIN_PART})*(:[0-9]+)?/)?{_PATH_PART}(/{_PATH_PART})*$"
IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_DIGEST = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
ADDRESS = rf"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?):{PORT}$"
# Environment variable names (and envFrom prefixes): printable ASCII other than '=' (core/v1).
ENV_NAME = r"^[ -<>-~]+$"
ENV_PREFIX_CHARS = r"^[ -<>-~]*$"
PERCENT_UP_TO_100 = r"^(100|[1-9]?[0-9])%$"


def name_rule(what: str) -> tuple[str, str]:
    """CEL: a Kubernetes object name (DNS-1123 subdomain), with a message naming `what`."""
    return (
        f"self.matches(r'{DNS_SUBDOMAIN}')",
        f"{what} must be a Kubernetes object name: lowercase letters, digits, '-' and "
        "'.', starting and ending with a letter or digit",
    )


def name_field(what: str, **kwargs: Any) -> Any:
    """A Kubernetes object name (DNS-1123 subdomain) with a message naming `what`."""
    return Field(min_length=1, max_length=253, json_schema_extra=cel(name_rule(what)), **kwargs)


# A label value as the API server checks it, as a schema of the map's values (no CEL cost: CEL
# over map keys of unbounded length exceeds the API server's cost budget, so keys are not checked).
LABEL_VALUES: dict[str, Any] = {
    "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
}

LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


def toleration_rules(what: str) -> tuple[tuple[str, str], ...]:
    """What core/v1 validation checks on tolerations but OpenAPI cannot express."""
    return (
        (
            "self.all(t, !has(t.operator) || t.operator in ['Exists', 'Equal'])",
            f"{what}[].operator must be Exists or Equal",
        ),
        (
            "self.all(t, !has(t.effect) || "
            "t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'])",
            f"{what}[].effect must be NoSchedule, PreferNoSchedule, NoExecute or empty (all)",
        ),
        (
            "self.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || "
            "t.value == '')",
            f"{what}[]: operator Exists matches any value; remove value or use operator Equal",
        ),
        (
            "self.all(t, (has(t.key) && t.key != '') || (has(t.operator) && "
            "t.operator == 'Exists'))",
            f"{what}[]: an empty key matches every taint only with operator Exists",
        ),
    )


class LabelSelectorRequirement(Model):
    """One matchExpressions entry of a metav1.LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "matchExpressions[]: In and NotIn need values; Exists and DoesNotExist take none",
            ),
        )
    )

    key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY)
    """The label the requirement tests."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value is tested."""
    values: list[LabelValue] = Field(default_factory=list, max_length=64)
    """The values for In and NotIn (none for Exists and DoesNotExist)."""


class LabelSelector(Model):
    """A metav1.LabelSelector. `{}` selects everything."""

    match_labels: dict[str, str] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra={**LABEL_VALUES, "maxProperties": 32},
    )
    """Objects whose labels have all these values."""
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=16)
    """Requirements on the labels, all of which must hold."""


class NamespaceSelector(LabelSelector):
    """A metav1.LabelSelector on Namespaces. `{}` selects every namespace."""


class PoolSelector(LabelSelector):
    """A metav1.LabelSelector on TemporalWorkerPools (their metadata.labels). `{}` selects
    every pool."""


KubeList = list[dict[str, Any]]


def selector_matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector matches everything)."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True
