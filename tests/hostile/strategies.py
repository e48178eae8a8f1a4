"""Hypothesis strategies that build TemporalWorkerPool specs from the CRD's own schema.

The generator walks `crdgen.crd()`'s `spec` schema: types, enums, patterns, bounds, required
fields, and the regular expressions in CEL rules of the form `self.matches(r'...')`. Each value is
drawn as *valid* (inside the schema), *edge* (on or just past a bound) or *hostile* (wrong type,
reserved names, quotes, control characters, huge or empty strings). A pool spec is usually a
valid base with one to three top-level fields drawn this way, sometimes a spec drawn entirely
from the schema, so the suite sees both near-misses and garbage.

Replica-like fields draw from a short list (small counts plus values the API must refuse), so
an admitted pool never asks the 2-core test bed for more than a few pods.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from workerpool_operator.api import crdgen

Json = Any

HOSTILE_STRINGS = [
    "",
    " ",
    "it's",
    "a\\b",
    "line\nbreak",
    "tab\there",
    "\x00",
    "TWP_TASK_QUEUE",
    "TWP_METRICS_PORT",
    "TWP_LOG_LEVEL",
    "/tmp",
    "/tmp/",
    "/dev/shm",
    "/etc/temporal/tls",
    "tmp",
    "dshm",
    "temporal-tls",
    "x" * 64,
    "y" * 300,
    "ü-ünïcode",
    "$(HOME)",
    "-",
    "_x",
    ".",
    "0",
    "-1",
    "1.2.3",
    "150%",
    "100%",
    "0%",
    "25%",
    "sha256:abc",
    "sha256:" + "a" * 64,
    "img:v2",
    "x@sha256:" + "b" * 64,
    "/_sys/queue",
    "%",
    "null",
    "true",
    "Exists",
    "Maybe",
    "host:99999",
    "host:0",
    "http://host:7233",
    "[::1]:7233",
    "UPPER/Case",
    "nvidia.com/gpu",
]
HOSTILE_INTS = [-(2**31), -1, 0, 1, 2, 63, 64, 101, 1023, 1024, 65535, 65536, 99999, 2**31]
# Keys where a large admitted value would start many pods on the bed: small or refused values.
REPLICA_KEYS = {"replicas", "minReplicas", "maxReplicas", "replicaLimit"}
REPLICA_VALUES = [0, 1, 2, 3]
REPLICA_REFUSED = [-1, 101, 100000, 20000]
_CEL_REGEX = re.compile(r"^self\.matches\(r'(.+)'\)$")
# Addresses that fail fast (no DNS wait on the bed), plus a few the API must refuse.
ADDRESSES = ["127.0.0.1:1", "127.0.0.1:7233", "temporal.invalid:7233", "[::1]:7233"]
ADDRESSES_REFUSED = ["t:99999", "t:0", "http://t:7233", "t", ""]
QUEUES = ["q", "orders", "llm-gpu", "ü", "q.2", "it's", "a\\b", "", " ", "/_sys/x", "x" * 1001]


# Hypothesis biases its own choices (first branches, small integers, boundaries), which would
# make "hostile" the common case. Proportions are therefore drawn from a seeded Random.
_SEEDS = st.integers(min_value=0, max_value=2**63 - 1)


def uniform(draw: st.DrawFn) -> float:
    """A float in [0, 1), reproducible and unbiased: hypothesis leans its own draws towards the
    simplest value (0) under `derandomize`, which made the "1 in 10" branches fire for half the
    specs; a seed it draws, however simple, gives an evenly spread value through random.Random."""
    return random.Random(draw(_SEEDS)).random()


def chance(draw: st.DrawFn, p: float) -> bool:
    """True with probability p."""
    return uniform(draw) < p


def mostly(
    valid: st.SearchStrategy[Json], other: st.SearchStrategy[Json], p: float
) -> st.SearchStrategy[Json]:
    """`valid` with probability 1 - p, else `other`."""

    @st.composite
    def pick(draw: st.DrawFn) -> Json:
        return draw(other) if chance(draw, p) else draw(valid)

    return pick()


def address(p: float) -> st.SearchStrategy[Json]:
    return mostly(st.sampled_from(ADDRESSES), st.sampled_from(ADDRESSES_REFUSED), p)


def spec_schema() -> dict[str, Any]:
    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def _regex(node: dict[str, Any]) -> str | None:
    if "pattern" in node:
        return str(node["pattern"])
    for rule in node.get("x-kubernetes-validations", []):
        m = _CEL_REGEX.match(rule["rule"])
        if m:
            return m.group(1)
    return None


def hostile_value() -> st.SearchStrategy[Json]:
    """Something of the wrong shape."""
    return st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(HOSTILE_INTS),
        st.just(None),
        st.booleans(),
        st.just([]),
        st.just({}),
        st.just([{"name": ["x"]}]),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
    )


PLAIN = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


def _string(node: dict[str, Any], p: float) -> st.SearchStrategy[Json]:
    valid: list[st.SearchStrategy[Json]] = []
    if "enum" in node:
        valid.append(st.sampled_from(node["enum"]))
    regex = _regex(node)
    if regex:
        max_len = int(node.get("maxLength", 64))
        valid.append(st.from_regex(regex, fullmatch=True).filter(lambda s: 0 < len(s) <= max_len))
    if not valid:
        valid.append(PLAIN)
    hostile = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=20))
    return mostly(st.one_of(*valid), hostile, 2 * p)


def _integer(node: dict[str, Any], key: str, p: float) -> st.SearchStrategy[Json]:
    if key in REPLICA_KEYS:
        return mostly(st.sampled_from(REPLICA_VALUES), st.sampled_from(REPLICA_REFUSED), 2 * p)
    lo = int(node.get("minimum", 0))
    hi = int(node.get("maximum", lo + 1000))
    edges = [lo, hi, lo - 1, hi + 1]
    return mostly(
        st.integers(min_value=lo, max_value=min(hi, lo + 10)),
        st.one_of(st.sampled_from(edges), st.sampled_from(HOSTILE_INTS)),
        2 * p,
    )


def _int_or_string(node: dict[str, Any], p: float) -> st.SearchStrategy[Json]:
    valid: list[st.SearchStrategy[Json]] = [
        st.integers(min_value=0, max_value=4),
        st.sampled_from(["1", "0%", "25%", "50%", "100%"]),
    ]
    regex = _regex(node)
    if regex:
        valid.append(st.from_regex(regex, fullmatch=True).filter(lambda s: len(s) <= 64))
    edge = st.sampled_from([-1, "0", "101%", "150%", "-1", "x", "1.5", 0])
    return mostly(st.one_of(*valid), edge, 2 * p)


def from_schema(
    node: dict[str, Any], key: str = "", depth: int = 0, p: float = 0.05
) -> st.SearchStrategy[Json]:
    """One schema node: inside the schema, or (probability ~p) outside it.

    p is the spec's hostility: 0 draws only values the schema allows (CEL rules may still refuse
    them, which is the point), larger p mixes in edges, wrong types and hostile strings.
    """
    return mostly(_inside(node, key, depth, p), hostile_value(), p / 2)


def _inside(node: dict[str, Any], key: str, depth: int, p: float) -> st.SearchStrategy[Json]:
    if node.get("x-kubernetes-int-or-string"):
        return _int_or_string(node, p)
    kind = node.get("type")
    if kind == "string":
        return _string(node, p)
    if kind == "integer":
        return _integer(node, key, p)
    if kind == "number":
        return mostly(
            st.floats(min_value=0.01, max_value=100, allow_nan=False),
            st.sampled_from([0, -1.5, 1e12]),
            2 * p,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = node.get("items", {})
        if depth > 5:
            return st.just([])
        return st.lists(from_schema(items, key, depth + 1, p), max_size=3)
    if kind == "object" or "properties" in node:
        return _object(node, depth, p)
    return st.just({})


def _object(node: dict[str, Any], depth: int, p: float) -> st.SearchStrategy[Json]:
    props: dict[str, Any] = node.get("properties", {})
    if not props:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and depth <= 5:
            keys = mostly(
                st.sampled_from(["cpu", "memory", "team", "nvidia.com/gpu", "example.com/k"]),
                st.text(max_size=10),
                2 * p,
            )
            return st.dictionaries(keys, from_schema(extra, "", depth + 1, p), max_size=3)
        return st.just({})
    required = [k for k in node.get("required", []) if k in props]
    optional = [k for k in props if k not in required]
    if depth > 5:
        optional = []

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Json]:
        out: dict[str, Json] = {}
        for k in required:
            out[k] = draw(from_schema(props[k], k, depth + 1, p))
        if optional:
            chosen = draw(st.lists(st.sampled_from(optional), max_size=2, unique=True))
            for k in chosen:
                out[k] = draw(from_schema(props[k], k, depth + 1, p))
        return out

    return build()


BASE: dict[str, Json] = {
    "connection": {"address": "127.0.0.1:1"},
    "taskQueue": "q",
    "workflows": ["app.workflows:Flow"],
    "replicas": 1,
}


# Hostility of a spec: (share of specs, p). Valid-shaped specs still meet the CEL rules.
MODES = [("valid", 0.45, 0.0), ("edge", 0.30, 0.04), ("hostile", 0.25, 0.2)]


@st.composite
def pool_specs(draw: st.DrawFn) -> dict[str, Json]:
    """One pool spec: a valid base with one to three drawn fields, or (1 in 10) drawn whole.

    Each spec first draws its mode (valid, edge or hostile, see MODES), which sets how often its
    values leave the schema.
    """
    schema = spec_schema()
    props: dict[str, Any] = schema["properties"]
    r = uniform(draw)
    p = next(p for _, share, p in _cumulative(MODES) if r < share)
    if chance(draw, 0.1):
        spec = draw(_object(schema, 0, p))
        conn = spec.get("connection")
        if isinstance(conn, dict) and chance(draw, 0.8):
            conn["address"] = draw(address(p))
        return dict(spec)
    spec = {**BASE, "connection": dict(BASE["connection"])}
    fields = draw(st.lists(st.sampled_from(sorted(props)), min_size=1, max_size=3, unique=True))
    for name in fields:
        if name == "connection":
            conn = draw(from_schema(props["connection"], "connection", 1, p))
            if isinstance(conn, dict) and chance(draw, 0.8):
                conn["address"] = draw(address(p))
            spec["connection"] = conn
        elif name == "taskQueue":
            spec["taskQueue"] = draw(
                mostly(st.sampled_from(QUEUES[:5]), st.sampled_from(QUEUES), 2 * p)
            )
        else:
            spec[name] = draw(from_schema(props[name], name, 1, p))
    if "autoscaling" in spec:
        spec.pop("replicas", None)  # mostly valid: the two are exclusive
    return spec


def _cumulative(modes: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    total, out = 0.0, []
    for name, share, p in modes:
        total += share
        out.append((name, total, p))
    out[-1] = (out[-1][0], 1.01, out[-1][2])
    return out


def draw(count: int) -> list[dict[str, Any]]:
    """`count` distinct specs, drawn with a fixed seed and no example database."""
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=int(count * 1.8) + 50,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(pool_specs())
    def collect(spec: dict[str, Any]) -> None:
        drawn.append(spec)

    collect()
    unique: dict[str, dict[str, Any]] = {}
    for s in drawn:
        unique.setdefault(json.dumps(s, sort_keys=True), s)
    return list(unique.values())[:count]


def generate(count: int) -> list[dict[str, Any]]:
    """`draw(count)` in a fresh interpreter. Hypothesis mixes constants it finds in every local
    module already imported into its choices, so the same seed drew different specs after
    other tests had run in one session; a fresh process imports the same modules every time."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.hostile.strategies", str(count)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    specs: list[dict[str, Any]] = json.loads(out.stdout)
    return specs


if __name__ == "__main__":
    print(json.dumps(draw(int(sys.argv[1]))))
