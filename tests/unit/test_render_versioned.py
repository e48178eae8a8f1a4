"""The Deployment of one build of a versioned pool, and the build the spec asks for."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.builders import pool_model as pool
from worker_runtime.contract import RuntimeSettings
from workerpool_operator.render import render_deployment
from workerpool_operator.render.versioned import render_build_deployment, target_build_id
from workerpool_operator.versioning.build_id import BUILD_ID_LABEL

VERSIONED: dict[str, Any] = {"versioning": {}}


def test_build_deployment_is_named_labelled_and_selected_per_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pool({**VERSIONED, "image": {"tag": "1.4"}}, name="orders")
    build = target_build_id(p)
    assert re.fullmatch(r"1\.4-[0-9a-f]{10}", build)
    dep = render_build_deployment(p, build, replicas=2)
    assert dep["metadata"]["name"].startswith("orders-1-4-")
    assert len(dep["metadata"]["name"]) <= 63
    assert dep["metadata"]["labels"][BUILD_ID_LABEL] == build
    assert dep["spec"]["selector"]["matchLabels"] == {
        "workerpools.io/pool": "orders",
        BUILD_ID_LABEL: build,
    }
    assert dep["spec"]["template"]["metadata"]["labels"][BUILD_ID_LABEL] == build
    assert dep["spec"]["replicas"] == 2
    # The pods read their version through the env contract, exactly as the runtime parses it.
    for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"])
    settings = RuntimeSettings()
    assert settings.versioned
    assert (settings.worker_deployment_name, settings.worker_build_id) == ("ns/orders", build)
    assert settings.default_versioning_behavior == "Pinned"
    # Otherwise it is the pool's ordinary Deployment.
    plain = render_deployment(p, replicas=2)
    assert dep["spec"]["strategy"] == plain["spec"]["strategy"]
    assert (
        dep["spec"]["template"]["spec"]["securityContext"]
        == (plain["spec"]["template"]["spec"]["securityContext"])
    )


def _build(spec: dict[str, Any]) -> str:
    return target_build_id(pool({**VERSIONED, **spec}))


@pytest.mark.parametrize(
    ("what", "spec", "same"),
    [
        ("connection address", {"connection": {"address": "other:7233"}}, True),
        (
            "Temporal namespace",
            {"connection": {"address": "temporal:7233", "namespace": "x"}},
            True,
        ),
        ("system TLS", {"connection": {"address": "temporal:7233", "tls": {}}}, True),
        ("replicas", {"replicas": 7}, True),
        ("strategy", {"versioning": {"strategy": "Manual"}}, True),
        ("image tag", {"image": {"tag": "9.9"}}, False),
        ("workflows", {"workflows": ["app.wf:Flow", "app.wf:Other"]}, False),
        ("resources", {"resources": {"requests": {"cpu": "2"}}}, False),
        ("user env", {"env": [{"name": "FEATURE", "value": "on"}]}, False),
    ],
)
def test_what_mints_a_new_build(what: str, spec: dict[str, Any], same: bool) -> None:
    assert (_build(spec) == _build({})) == same, what


def test_a_fixed_build_id_is_used_as_is() -> None:
    p = pool({"versioning": {"buildId": "release-7"}, "image": {"tag": "2.0"}})
    assert target_build_id(p) == "release-7"
    assert render_build_deployment(p, "release-7", replicas=None)["metadata"]["name"] == (
        "p-release-7"
    )
