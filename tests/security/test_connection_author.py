"""Attacks by a connection author (may write TemporalConnections and pools in `team-a`, may not
read Secrets): sending Secrets nobody opted in, or opted-in ones to an address the admin did
not allow (issue 20, item 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import (
    TEMPORAL_IP,
    Listener,
    admission_policy,
    connection,
    get,
    pool,
    ready,
    secret,
    secrets_named,
    unique,
    wait_reason,
)


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@attack("connection author: make pods and KEDA read a Secret that never opted in")
async def test_a_connection_cannot_hand_out_a_secret_that_did_not_opt_in(bed: Bed) -> None:
    name = unique("conn")
    secret(bed, f"{name}-db", {"password": b"hunter2"}, opted_in=False)
    author = bed.connection_author()
    assert not author.can("get", "secrets")
    spec = {"tls": {}, "apiKeySecretRef": {"name": f"{name}-db", "key": "password"}}
    assert author.apply(connection(name, TEMPORAL_IP, **spec)).returncode == 0
    keda = {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 2}
    result = author.apply(pool(name, connectionRef={"name": name}, autoscaling=keda))
    assert result.returncode == 0, result.stderr
    await wait_reason(bed, name, "CredentialsUnavailable")
    assert "workerpools.io/temporal-credentials" in ready(bed, name)["message"]
    for kind in ("deployment", "triggerauthentication", "scaledobject"):
        assert f"{name}-db" not in secrets_named(get(bed, kind, name)), kind


@attack("connection author: send opted-in credentials to an address the admin did not allow")
async def test_connections_only_reach_allowed_addresses(bed: Bed, listener: Listener) -> None:
    name = unique("exfil")
    secret(bed, f"{name}-key", {"api-key": b"opted-in-key"}, opted_in=True)
    port = listener.address.rsplit(":", 1)[1]
    address = f"localhost:{port}"  # the session's allowlist has 127.0.0.1:*, not localhost
    spec = {"tls": {}, "apiKeySecretRef": {"name": f"{name}-key"}}
    assert bed.connection_author().apply(connection(name, address, **spec)).returncode == 0
    assert bed.connection_author().apply(pool(name, connectionRef={"name": name})).returncode == 0

    def status() -> dict[str, Any]:
        return (get(bed, "temporalconnection", name) or {}).get("status") or {}

    def refused() -> bool:
        return "allowed addresses" in json.dumps(status())

    await until(refused, "the connection's status saying the address is not allowed", status)
    await wait_reason(bed, name, "AddressNotAllowed")
    assert get(bed, "deployment", name) is None
    assert listener.received == [], "the operator dialled an address the admin did not allow"
    inline = unique("inline")
    assert bed.pool_author().apply(pool(inline, connection={"address": address})).returncode == 0
    await wait_reason(bed, inline, "AddressNotAllowed")
    assert get(bed, "deployment", inline) is None
    # A versioned pool: its Worker Deployment is read from Temporal before each plan; nothing
    # may dial the address for it either.
    versioned = unique("versioned")
    body = pool(
        versioned, connection={"address": address}, versioning={"defaultBehavior": "Pinned"}
    )
    assert bed.pool_author().apply(body).returncode == 0
    await wait_reason(bed, versioned, "AddressNotAllowed")
    assert listener.received == [], "a versioned pool's Temporal reads dialled the address"


@attack("pool author: use a connection and its Secrets when its allowedPools does not admit it")
async def test_a_connection_is_used_only_by_the_pools_it_admits(bed: Bed) -> None:
    """The connection author admits the pools labelled `team: payments`; a pool author's pool
    without that label references the connection anyway. A labelled pool shows the
    connection itself is usable (the guard is the selector, not a broken connection)."""
    name = unique("payments")
    secret(bed, f"{name}-key", {"api-key": b"opted-in-key"}, opted_in=True)
    spec = {
        "tls": {},
        "apiKeySecretRef": {"name": f"{name}-key"},
        "allowedPools": {"matchLabels": {"team": "payments"}},
    }
    assert bed.connection_author().apply(connection(name, TEMPORAL_IP, **spec)).returncode == 0
    intruder, admitted = unique("intruder"), unique("admitted")
    author = bed.pool_author()
    keda = {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 2}
    result = author.apply(pool(intruder, connectionRef={"name": name}, autoscaling=keda))
    assert result.returncode == 0, result.stderr
    await wait_reason(bed, intruder, "PoolNotAllowed")
    assert "spec.allowedPools" in ready(bed, intruder)["message"]
    for kind in ("deployment", "triggerauthentication", "scaledobject"):
        assert get(bed, kind, intruder) is None, f"{kind} written for a pool not admitted"
    labelled = pool(admitted, connectionRef={"name": name})
    labelled["metadata"]["labels"] = {"team": "payments"}
    assert author.apply(labelled).returncode == 0

    def written() -> bool:
        return f"{name}-key" in secrets_named(get(bed, "deployment", admitted))

    await until(written, "the admitted pool's Deployment with the connection's Secret")
    assert ready(bed, intruder).get("reason") == "PoolNotAllowed"


ACCESS = "access.workerpools.io/payments"


@attack("pool author: label a pool into a connection's allowedPools past the admission policy")
async def test_only_connection_owners_label_pools_into_a_connection(bed: Bed) -> None:
    """allowedPools selects pool labels, which pool authors write. With the optional admission
    policy (here bound to team-a for this test), labels under access.workerpools.io/ are set
    or changed only by those who may update TemporalConnections in the namespace: the pool
    author cannot admit their own pool, the connection author can, and the pool author may
    still edit an admitted pool."""
    name = unique("access")
    secret(bed, f"{name}-key", {"api-key": b"opted-in-key"}, opted_in=True)
    spec = {
        "tls": {},
        "apiKeySecretRef": {"name": f"{name}-key"},
        "allowedPools": {"matchLabels": {ACCESS: "true"}},
    }
    owner, author = bed.connection_author(), bed.pool_author()
    assert owner.apply(connection(name, TEMPORAL_IP, **spec)).returncode == 0
    labelled = pool(name, connectionRef={"name": name})
    labelled["metadata"]["labels"] = {ACCESS: "true"}
    with admission_policy(bed, bed.team_a):
        last: list[str] = []

        def refused() -> bool:
            if get(bed, "deployment", name) is not None:
                # An earlier try's pool was admitted and deleted; its Deployment goes with it,
                # and the pool below must start from none.
                return False
            result = author.apply(labelled)
            if result.returncode == 0:  # the policy is not enforced yet
                delete = ("delete", "twp", name, "-n", bed.team_a, "--cascade=foreground")
                bed.kube.run(*delete, "--wait=true")
                return False
            last[:] = [result.stderr]
            return "labels under access.workerpools.io/" in result.stderr

        await until(refused, "the policy refusing the pool author's access label", lambda: last)
        assert author.apply(pool(name, connectionRef={"name": name})).returncode == 0
        await wait_reason(bed, name, "PoolNotAllowed")
        label = (f"{ACCESS}=true", "--overwrite")
        assert author.run("label", "twp", name, *label).returncode != 0
        assert get(bed, "deployment", name) is None
        result = owner.run("label", "twp", name, *label)
        assert result.returncode == 0, result.stderr

        def written() -> bool:
            return f"{name}-key" in secrets_named(get(bed, "deployment", name))

        await until(written, "the admitted pool's Deployment")
        labelled["spec"]["replicas"] = 2  # the pool author edits the admitted pool
        result = author.apply(labelled)
        assert result.returncode == 0, result.stderr
