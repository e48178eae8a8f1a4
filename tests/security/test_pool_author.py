"""Attacks by a pool author: the `workerpools-pool-author` role in `team-a`, nothing else.

The rule under attack (issue 20): everything the operator does for a pool is something the
pool's author could do, or something an admin granted explicitly. Each test creates a pool as
that role (a real ServiceAccount token) and checks what the running operator wrote for it.
The session's operator runs with the default grants: none that widen (tests/security/conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import pool, ready, unique


def network_policy(bed: Bed, name: str) -> dict[str, Any] | None:
    got = bed.kube.run("get", "networkpolicy", name, "-n", bed.team_a, "-o", "json")
    return json.loads(got.stdout)["spec"] if got.returncode == 0 else None


@attack("pool author: write children, Secrets or connections directly")
@pytest.mark.parametrize(
    "resource",
    ["secrets", "deployments", "networkpolicies", "horizontalpodautoscalers",
     "temporalconnections", "serviceaccounts", "triggerauthentications.keda.sh"],
)  # fmt: skip
def test_a_pool_author_may_create_pools_and_nothing_else(bed: Bed, resource: str) -> None:
    author = bed.pool_author()
    assert author.can("create", "temporalworkerpools")
    assert not author.can("create", resource)
    assert not author.can("get", "secrets")


@attack("pool author: set a reserved TWP_* variable under another case")
@pytest.mark.parametrize(
    "spec",
    [
        {"env": [{"name": "twp_temporal_address", "value": "attacker.example:7233"}]},
        {"env": [{"name": "Twp_Api_Key", "valueFrom": {"secretKeyRef": {"name": "db",
                                                                         "key": "password"}}}]},
        {"envFrom": [{"prefix": "twp_", "secretRef": {"name": "db"}}]},
    ],
    ids=["env-lower", "env-mixed", "envFrom-prefix-lower"],
)  # fmt: skip
def test_reserved_env_names_are_refused_in_any_case(bed: Bed, spec: dict[str, Any]) -> None:
    result = bed.pool_author().apply(pool(unique("env"), **spec))
    assert result.returncode != 0, "the API server admitted the pool"
    assert "any case" in result.stderr, result.stderr


@attack("pool author: widen the admin's network policy with extraEgress")
async def test_extra_egress_needs_an_admin_grant(bed: Bed) -> None:
    name = unique("egress")
    anywhere = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    result = bed.pool_author().apply(pool(name, networkPolicy={"extraEgress": [anywhere]}))
    assert result.returncode == 0, result.stderr
    await until(
        lambda: ready(bed, name).get("reason") == "InvalidSpec",
        "InvalidSpec",
        lambda: ready(bed, name),
    )
    assert "'extraEgress' network grant" in ready(bed, name)["message"]
    policy = network_policy(bed, name)
    assert policy is None or anywhere not in policy["egress"], policy


@attack("pool author: a host-name address opens its port to every address")
async def test_a_host_name_address_needs_an_admin_grant(bed: Bed) -> None:
    name = unique("host")
    # An address the admin allows (tests/security/conftest.py), but a host name.
    spec = {"connection": {"address": "temporal.partner.example:7233"}, "networkPolicy": {}}
    assert bed.pool_author().apply(pool(name, **spec)).returncode == 0
    await until(
        lambda: ready(bed, name).get("reason") == "InvalidSpec",
        "InvalidSpec",
        lambda: ready(bed, name),
    )
    assert "'hostEgressAnywhere'" in ready(bed, name)["message"]
    policy = network_policy(bed, name)
    assert policy is None or all(rule.get("to") for rule in policy["egress"]), policy


@attack("pool author: DNS to any address, metrics open to every namespace")
async def test_dns_and_metrics_rules_stay_within_what_the_admin_set(bed: Bed) -> None:
    name = unique("np")
    assert bed.pool_author().apply(pool(name, networkPolicy={})).returncode == 0
    await until(lambda: network_policy(bed, name), "the pool's NetworkPolicy")
    policy = network_policy(bed, name)
    assert policy is not None
    temporal, dns = policy["egress"]
    assert temporal["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]  # fmt: skip
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [bed.team_a]},
        ]}}
    ]  # fmt: skip


@attack("pool author: ServiceMonitor labels that overwrite the operator's own")
async def test_service_monitor_labels_cannot_hide_it_from_the_operator(bed: Bed) -> None:
    name = unique("sm")
    labels = {"app.kubernetes.io/managed-by": "someone-else", "workerpools.io/pool": "other"}
    metrics = {"serviceMonitor": {"enabled": True, "labels": labels}}
    assert bed.pool_author().apply(pool(name, metrics=metrics)).returncode == 0

    def sm_labels() -> dict[str, str] | None:
        got = bed.kube.run("get", "servicemonitor", name, "-n", bed.team_a, "-o", "json")
        return json.loads(got.stdout)["metadata"]["labels"] if got.returncode == 0 else None

    await until(sm_labels, "the pool's ServiceMonitor")
    got = sm_labels() or {}
    assert got["app.kubernetes.io/managed-by"] == "workerpool-operator", got
    assert got["workerpools.io/pool"] == name, got
