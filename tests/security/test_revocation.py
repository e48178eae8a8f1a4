"""Attacks on revocation (issue 20, item 3): a pool author keeps a connection's credentials after
the connection stops admitting the pool. The connection's owner narrows `allowedPools`, or the
cluster admin takes the namespace out of a ClusterTemporalConnection's `allowedNamespaces`;
the pool that ran must lose every child that carries the connection's Secrets or dials with
them (Deployment, ScaledObject, TriggerAuthentication), with Ready=False naming the connection
and an `AccessRevoked` Event, and get them back once it is admitted again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import (
    TEMPORAL_IP,
    connection,
    get,
    pool,
    ready,
    secret,
    secrets_named,
    unique,
)

CARRIERS = ("deployment", "triggerauthentication", "scaledobject")


def events(bed: Bed, name: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},reason={reason}"
    got = bed.kube.run(
        "get", "events", "-n", bed.team_a, "--field-selector", selector, "-o", "json"
    )
    return json.loads(got.stdout).get("items", []) if got.returncode == 0 else []


async def revoked(bed: Bed, name: str, reason: str, kinds: tuple[str, ...]) -> None:
    """Until the pool's children that carry the credentials are gone and it says why."""

    def state() -> dict[str, Any]:
        return {
            "ready": ready(bed, name),
            "left": [k for k in kinds if get(bed, k, name) is not None],
            "events": len(events(bed, name, "AccessRevoked")),
        }

    def done() -> bool:
        s = state()
        return s["ready"].get("reason") == reason and not s["left"] and s["events"] > 0

    await until(done, f"{reason}: the pool's credential-carrying children deleted", state)
    message = ready(bed, name)["message"]
    assert "runs no workers" in message
    note = events(bed, name, "AccessRevoked")[0]
    assert note["type"] == "Warning"
    assert "Deployment" in note["message"]


async def restored(bed: Bed, name: str, secret_name: str) -> None:
    def back() -> bool:
        return secret_name in secrets_named(get(bed, "deployment", name))

    await until(back, "the re-admitted pool's Deployment with the connection's Secret")


@attack("pool author: keep a connection's Secrets after its allowedPools stops admitting the pool")
async def test_a_pool_the_connection_stops_admitting_loses_its_credentials(bed: Bed) -> None:
    name = unique("revoke")
    key = f"{name}-key"
    secret(bed, key, {"api-key": b"opted-in-key"}, opted_in=True)
    owner, author = bed.connection_author(), bed.pool_author()

    def conn(team: str) -> dict[str, Any]:
        spec = {"tls": {}, "apiKeySecretRef": {"name": key},
                "allowedPools": {"matchLabels": {"team": team}}}  # fmt: skip
        return connection(name, TEMPORAL_IP, **spec)

    assert owner.apply(conn("payments")).returncode == 0
    keda = {"engine": "KEDA", "minReplicas": 1, "maxReplicas": 2}
    body = pool(name, connectionRef={"name": name}, autoscaling=keda)
    body["metadata"]["labels"] = {"team": "payments"}
    result = author.apply(body)
    assert result.returncode == 0, result.stderr

    def running() -> bool:
        return (
            key in secrets_named(get(bed, "deployment", name))
            and key in secrets_named(get(bed, "triggerauthentication", name))
            and get(bed, "scaledobject", name) is not None
        )

    await until(running, "the admitted pool's Deployment, TriggerAuthentication, ScaledObject")

    assert owner.apply(conn("orders")).returncode == 0  # the connection's owner says no
    await revoked(bed, name, "PoolNotAllowed", CARRIERS)
    assert "spec.allowedPools" in ready(bed, name)["message"]
    # The pool author edits the pool: still nothing carries the Secret.
    body["spec"]["autoscaling"]["maxReplicas"] = 3
    assert author.apply(body).returncode == 0

    def seen() -> bool:
        got = get(bed, "twp", name) or {}
        observed = (got.get("status") or {}).get("observedGeneration")
        return bool(observed == got.get("metadata", {}).get("generation"))

    await until(seen, "the operator's status for the edited pool")
    for kind in CARRIERS:
        assert key not in secrets_named(get(bed, kind, name)), kind

    assert owner.apply(conn("payments")).returncode == 0  # admitted again
    await restored(bed, name, key)


@pytest.fixture
def cluster_connection(bed: Bed) -> Iterator[str]:
    name = unique("ctc")
    yield name
    bed.kube.run("delete", "clustertemporalconnection", name, "--ignore-not-found")
    bed.kube.run("label", "namespace", bed.team_a, f"{name}-", "--overwrite")


@attack("pool author: keep a cluster connection's Secrets once its namespace is not allowed")
async def test_a_namespace_the_cluster_connection_stops_allowing_loses_its_credentials(
    bed: Bed, cluster_connection: str
) -> None:
    name, grant = cluster_connection, f"{cluster_connection}=yes"
    key = f"{name}-key"
    # The admin's Secret in the operator's namespace, and the tenant's copy its pods mount.
    secret(bed, key, {"api-key": b"opted-in-key"}, opted_in=True)
    ops_secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": key, "namespace": bed.ops,
                               "labels": {"workerpools.io/temporal-credentials": "true"}},
                  "stringData": {"api-key": "admin-key"}}  # fmt: skip
    bed.kube.apply(ops_secret)
    ctc = {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "ClusterTemporalConnection",
        "metadata": {"name": name},
        "spec": {
            "address": TEMPORAL_IP,
            "tls": {},
            "apiKeySecretRef": {"name": key},
            "allowedNamespaces": {"matchLabels": {name: "yes"}},
        },
    }
    bed.kube.apply(ctc)
    bed.kube.kubectl("label", "namespace", bed.team_a, grant, "--overwrite")
    ref = {"kind": "ClusterTemporalConnection", "name": name}
    result = bed.pool_author().apply(pool(name, connectionRef=ref))
    assert result.returncode == 0, result.stderr
    await restored(bed, name, key)

    bed.kube.kubectl("label", "namespace", bed.team_a, f"{name}-")  # the admin says no
    await revoked(bed, name, "ConnectionNotAllowed", ("deployment",))
    assert f"ClusterTemporalConnection {name}" in ready(bed, name)["message"]

    bed.kube.kubectl("label", "namespace", bed.team_a, grant, "--overwrite")
    await restored(bed, name, key)
