"""Build IDs and per-build Deployment names: stable, valid, and blind to connection changes."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workerpool_operator.versioning.build_id import (
    BUILD_ID_LABEL,
    build_id,
    deployment_name,
    image_part,
    is_label_value,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def template(**changes: Any) -> dict[str, Any]:
    """A rendered pod template shaped like render/deployment.py's."""
    env = [
        {"name": "TWP_TEMPORAL_ADDRESS", "value": "temporal:7233"},
        {"name": "TWP_TEMPORAL_NAMESPACE", "value": "default"},
        {"name": "TWP_TASK_QUEUE", "value": "orders"},
        {"name": "TWP_WORKFLOWS", "value": "app:Flow"},
    ]
    tpl: dict[str, Any] = {
        "metadata": {"labels": {"workerpools.io/pool": "orders"}, "annotations": {"a": "1"}},
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "image": "worker:1.2",
                    "env": env,
                    "resources": {"requests": {"cpu": "500m"}},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "automountServiceAccountToken": False,
        },
    }
    for path, value in changes.items():
        node = tpl
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return tpl


BASE = build_id("worker:1.2", template())


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("worker:1.2", "1.2"),
        ("registry:5000/team/worker:v3", "v3"),
        ("registry:5000/team/worker", "latest"),
        ("worker@sha256:" + "ab" * 32, "sha256-" + "ab" * 6),
        ("worker:1.2@sha256:" + "cd" * 32, "sha256-" + "cd" * 6),
    ],
)
def test_image_part(image: str, expected: str) -> None:
    assert image_part(image) == expected


def test_build_id_shape() -> None:
    assert re.fullmatch(r"1\.2-[0-9a-f]{10}", BASE)
    long_tag = build_id("worker:" + "_v" * 64, template())
    assert is_label_value(long_tag)
    assert len(long_tag) <= 63


@pytest.mark.parametrize(
    ("what", "other"),
    [
        ("image tag", build_id("worker:1.3", template())),
        ("image digest", build_id("worker@sha256:" + "0" * 64, template())),
        (
            "workflows",
            build_id(
                "worker:1.2",
                template(
                    spec__containers__0__env__3={
                        "name": "TWP_WORKFLOWS",
                        "value": "app:Flow,app:Other",
                    }
                ),
            ),
        ),
        (
            "resources",
            build_id(
                "worker:1.2", template(spec__containers__0__resources={"requests": {"cpu": "1"}})
            ),
        ),
        ("pod label", build_id("worker:1.2", template(metadata__labels={"team": "a"}))),
        (
            "volumes",
            build_id("worker:1.2", template(spec__volumes=[{"name": "m", "emptyDir": {}}])),
        ),
        ("a false flag", build_id("worker:1.2", template(spec__automountServiceAccountToken=True))),
    ],
)
def test_a_change_to_what_runs_is_a_new_build(what: str, other: str) -> None:
    assert other != BASE, what


def _with_env(tpl: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    tpl["spec"]["containers"][0]["env"] = [*tpl["spec"]["containers"][0]["env"], *extra]
    return tpl


@pytest.mark.parametrize(
    ("what", "tpl"),
    [
        (
            "address",
            template(
                spec__containers__0__env__0={"name": "TWP_TEMPORAL_ADDRESS", "value": "other:7233"}
            ),
        ),
        (
            "namespace",
            template(
                spec__containers__0__env__1={"name": "TWP_TEMPORAL_NAMESPACE", "value": "prod"}
            ),
        ),
        (
            "TLS and API key",
            _with_env(
                template(),
                {"name": "TWP_TLS_ENABLED", "value": "true"},
                {"name": "TWP_TLS_SERVER_NAME", "value": "t.example"},
                {
                    "name": "TWP_API_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "k", "key": "api-key"}},
                },
            ),
        ),
        (
            "TLS volume",
            _tls := template(
                spec__volumes=[
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "temporal-tls", "secret": {"secretName": "mtls"}},
                ],
                spec__containers__0__volumeMounts=[
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "temporal-tls", "mountPath": "/etc/temporal/tls", "readOnly": True},
                ],
            ),
        ),
        (
            "per-version env",
            _with_env(
                template(),
                {"name": "TWP_WORKER_DEPLOYMENT_NAME", "value": "ns/orders"},
                {"name": "TWP_WORKER_BUILD_ID", "value": "x"},
                {"name": "TWP_DEFAULT_VERSIONING_BEHAVIOR", "value": "Pinned"},
            ),
        ),
        (
            "build-id label",
            template(metadata__labels={"workerpools.io/pool": "orders", BUILD_ID_LABEL: "x"}),
        ),
        (
            "client zero values",
            template(
                spec__nodeSelector=None,
                spec__tolerations=[],
                spec__affinity={},
                metadata__annotations={"a": "1", "b": None},
            ),
        ),
    ],
)
def test_connection_and_zero_values_keep_the_build(what: str, tpl: dict[str, Any]) -> None:
    assert build_id("worker:1.2", tpl) == BASE, what


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _sprinkle_zeros(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        out = {k: _sprinkle_zeros(v, rng) for k, v in value.items()}
        for i in range(rng.randint(0, 2)):
            out[f"zz{i}"] = rng.choice([None, {}, [], {"x": None}, [{}]])
        return out
    if isinstance(value, list):
        return [_sprinkle_zeros(v, rng) for v in value]
    return value


json_scalars = st.one_of(st.text(max_size=8), st.integers(), st.booleans())
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=5), inner, min_size=1, max_size=3),
    ),
    max_leaves=12,
)
images = st.builds(
    lambda repo, tag: f"{repo}:{tag}",
    st.from_regex(r"[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,2}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True),
) | st.builds(lambda h: f"repo@sha256:{h}", st.from_regex(r"[a-f0-9]{64}", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(image=images, extra=json_values, seed=st.integers())
def test_build_id_is_a_label_value_stable_across_order_and_zero_values(
    image: str, extra: Any, seed: int
) -> None:
    tpl = template(spec__extra=extra)
    rng = random.Random(seed)
    first = build_id(image, tpl)
    assert is_label_value(first)
    assert build_id(image, _shuffled(copy.deepcopy(tpl), rng)) == first
    assert build_id(image, _sprinkle_zeros(copy.deepcopy(tpl), rng)) == first


@settings(max_examples=150, deadline=None)
@given(image=images, a=json_values, b=json_values)
def test_different_templates_are_different_builds(image: str, a: Any, b: Any) -> None:
    from workerpool_operator.versioning.build_id import normalize

    if normalize(a) == normalize(b):
        return
    assert build_id(image, template(spec__extra=a)) != build_id(image, template(spec__extra=b))


@pytest.mark.parametrize(
    ("pool", "build", "expected"),
    [
        ("orders", "v3-0123456789", "orders-v3-0123456789"),
        ("orders", "1.2-abc", None),  # '.' is not DNS-label material: hashed
        ("orders", "Release_2", None),
        ("p" * 63, "v1", None),
    ],
)
def test_deployment_name_table(pool: str, build: str, expected: str | None) -> None:
    name = deployment_name(pool, build)
    assert len(name) <= 63
    assert DNS_LABEL.match(name)
    if expected is not None:
        assert name == expected
    else:
        assert re.search(r"-[0-9a-f]{8}$", name)


pool_names = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
build_ids = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(pool=pool_names, a=build_ids, b=build_ids)
def test_deployment_names_valid_and_distinct(pool: str, a: str, b: str) -> None:
    na, nb = deployment_name(pool, a), deployment_name(pool, b)
    for name in (na, nb):
        assert len(name) <= 63, name
        assert DNS_LABEL.match(name), name
    assert (na == nb) == (a == b)
