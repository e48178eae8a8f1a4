"""The pure checks behind issue 20 (workerpool_operator.trust); the attacks that try them
against the running operator are in tests/security/."""

from __future__ import annotations

import base64

from tests.unit.conn_helper import resolved_pool
from workerpool_operator import trust
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.grants import Grants
from workerpool_operator.kinds import (
    DEPLOYMENT,
    HPA,
    PDB,
    SCALED_OBJECT,
    SERVICE,
    SERVICE_ACCOUNT,
    TRIGGER_AUTH,
)


def pool(connection: dict[str, object]) -> TemporalWorkerPool:
    return resolved_pool({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"connection": connection, "taskQueue": "q", "workflows": ["a:W"]},
    })  # fmt: skip


def test_a_connection_secret_must_have_opted_in() -> None:
    p = pool({"address": "t:7233", "tls": {"secretName": "tls"},
              "apiKeySecretRef": {"name": "key"}})  # fmt: skip
    assert trust.secret_names(p.spec.effective_connection) == ["tls", "key"]
    assert trust.secrets_not_opted_in(p, {"tls": {}, "key": {}}, "ns") is None
    message = trust.secrets_not_opted_in(p, {"tls": {}}, "ns")
    assert message is not None
    assert "Secret key in namespace ns did not opt in" in message
    assert "`kubectl label secret -n ns key workerpools.io/temporal-credentials=true`" in message
    assert "workerpools.io/temporal-credentials=true" in message
    assert trust.secrets_not_opted_in(pool({"address": "t:7233"}), {}, "ns") is None


def test_addresses_outside_the_admins_list_are_refused() -> None:
    p = pool({"address": "evil.example:7233"})
    assert trust.address_not_allowed(p, Grants(), "spec.connection") is None
    grants = Grants(allowed_addresses=("*.tmprl.cloud:7233",))
    message = trust.address_not_allowed(p, grants, "spec.connection")
    assert message is not None
    assert message.startswith("spec.connection.address 'evil.example:7233' is not among")
    ok = pool({"address": "ns.acct.tmprl.cloud:7233"})
    assert trust.address_not_allowed(ok, grants, "spec.connection") is None


def test_what_a_name_conflict_blocks() -> None:
    assert trust.blocked_by_conflicts([]) == set()
    assert trust.blocked_by_conflicts([SERVICE]) == set()
    assert trust.blocked_by_conflicts([SERVICE_ACCOUNT]) == {
        DEPLOYMENT, HPA, SCALED_OBJECT, TRIGGER_AUTH, PDB,
    }  # fmt: skip
    assert trust.blocked_by_conflicts([DEPLOYMENT]) == {HPA, SCALED_OBJECT, TRIGGER_AUTH, PDB}


def test_the_secret_cache_keeps_only_the_keys_used() -> None:
    big = base64.b64encode(b"x" * (1 << 20)).decode()
    body = {
        "metadata": {"name": "s", "namespace": "ns", "labels": {"a": "b"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": big},
                     "managedFields": [{"manager": "kubectl"}]},
        "data": {"api-key": "a2V5", "tls.crt": "Y2VydA==", "blob": big, "other": "eA=="},
    }  # fmt: skip
    slim = trust.bounded_secret(body, {"api-key"})
    assert slim["data"] == {"api-key": "a2V5", "tls.crt": "Y2VydA=="}
    assert slim["metadata"] == {"name": "s", "namespace": "ns", "labels": {"a": "b"}}
    assert trust.bounded_secret({**body, "data": {"api-key": big}}, {"api-key"})["data"] == {}


def test_a_non_utf8_api_key_is_that_connections_error() -> None:
    """It raised UnicodeDecodeError, which ended the health task for every tenant."""
    import pytest

    from workerpool_operator.api.v1alpha1 import ConnectionSpec, SecretKeyRef, TLSSpec
    from workerpool_operator.temporal.connections import CredentialsError, connection_from_spec

    conn = ConnectionSpec.model_construct(
        address="t:7233", namespace="default", tls=TLSSpec.model_construct(),
        api_key_secret_ref=SecretKeyRef.model_construct(name="bad", key="api-key"),
    )  # fmt: skip
    secrets = {"bad": {"data": {"api-key": base64.b64encode(b"\xff\xfe\xfd").decode()}}}
    with pytest.raises(CredentialsError, match="not UTF-8"):
        connection_from_spec(conn, secrets, "ns")


def test_status_messages_are_sanitised_and_bounded() -> None:
    from workerpool_operator.reconcile.status import MESSAGE_LIMIT, sanitized

    evil = "GetSystemInfo: \x1b[31mfake\x1b[0m\nERROR admin\x00" + "x" * 5000
    clean = sanitized(evil)
    assert len(clean) == MESSAGE_LIMIT
    assert all(ch.isprintable() for ch in clean)
    assert clean.startswith("GetSystemInfo:  [31mfake [0m ERROR admin ")
