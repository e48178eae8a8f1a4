"""TemporalConnection / ClusterTemporalConnection: generated CRDs, registry, selector semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from workerpool_operator import kinds, rbac
from workerpool_operator.api import crdgen
from workerpool_operator.api import v1alpha1 as api

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_crd_is_committed_and_in_the_kustomization() -> None:
    listed = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())["resources"]
    for name, text in crdgen.render_all().items():
        assert (ROOT / "crds" / name).read_text() == text, f"{name} is stale: run `make crds`"
        assert name in listed


@pytest.mark.parametrize("cluster", [False, True])
def test_connection_crd_shape(cluster: bool) -> None:
    doc = crdgen.connection_crd(cluster)
    assert doc["spec"]["scope"] == ("Cluster" if cluster else "Namespaced")
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Address", "Namespace", "Ready", "Version", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["description"]
    assert all(v.get("description") for v in spec["properties"].values()), "kubectl explain"
    rules = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert any("apiKeySecretRef requires spec.tls" in m for m in rules)
    assert ("allowedNamespaces" in spec.get("required", [])) is cluster
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"serverVersion", "namespaceExists", "capabilities", "lastError"} <= set(status)


def test_connection_kinds_are_registered_watched_and_granted() -> None:
    assert kinds.CONNECTION in kinds.WATCHED
    assert kinds.CLUSTER_CONNECTION in kinds.WATCHED
    assert not kinds.CLUSTER_CONNECTION.namespaced
    granted = {
        (g, r, v)
        for rule in rbac.cluster_rules()
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    for plural in (api.CONNECTION_PLURAL, api.CLUSTER_CONNECTION_PLURAL):
        assert {(api.GROUP, plural, "list"), (api.GROUP, plural, "watch")} <= granted
        assert (api.GROUP, f"{plural}/status", "patch") in granted
        assert (api.GROUP, plural, "patch") not in granted  # the operator never edits a spec
    ns_only = {r for rule in rbac.namespaced_rules() for r in rule["resources"]}
    assert api.CLUSTER_CONNECTION_PLURAL not in ns_only  # a Role cannot grant it


def _sel(**kw: Any) -> api.NamespaceSelector:
    return api.NamespaceSelector.model_validate(kw)


@pytest.mark.parametrize(
    ("selector", "labels", "allowed"),
    [
        (_sel(), {}, True),
        (_sel(matchLabels={"tenant": "a"}), {"tenant": "a", "x": "y"}, True),
        (_sel(matchLabels={"tenant": "a"}), {"tenant": "b"}, False),
        (_sel(matchLabels={"tenant": "a"}), {}, False),
        (
            _sel(matchExpressions=[{"key": "t", "operator": "In", "values": ["a", "b"]}]),
            {"t": "b"},
            True,
        ),
        (_sel(matchExpressions=[{"key": "t", "operator": "In", "values": ["a"]}]), {}, False),
        (_sel(matchExpressions=[{"key": "t", "operator": "NotIn", "values": ["a"]}]), {}, True),
        (
            _sel(matchExpressions=[{"key": "t", "operator": "NotIn", "values": ["a"]}]),
            {"t": "a"},
            False,
        ),
        (_sel(matchExpressions=[{"key": "t", "operator": "Exists"}]), {"t": ""}, True),
        (_sel(matchExpressions=[{"key": "t", "operator": "DoesNotExist"}]), {"t": ""}, False),
    ],
)
def test_allowed_namespaces_selector(
    selector: api.NamespaceSelector, labels: dict[str, str], allowed: bool
) -> None:
    assert api.selector_matches(selector, labels) is allowed


def test_connection_objects_parse() -> None:
    body = {
        "metadata": {"name": "prod"},
        "spec": {
            "address": "temporal.example:7233",
            "namespace": "payments",
            "tls": {"secretName": "temporal-mtls", "serverName": "temporal.example"},
            "apiKeySecretRef": {"name": "temporal-key"},
            "allowedNamespaces": {"matchLabels": {"tenant": "payments"}},
        },
    }
    c = api.ClusterTemporalConnection.from_body(body)
    assert c.spec.api_key_secret_ref is not None
    assert c.spec.api_key_secret_ref.key == "api-key"
    assert c.name == "prod"
    assert c.namespace == ""
    n = api.TemporalConnection.from_body({**body, "metadata": {"name": "p", "namespace": "t"}})
    assert n.namespace == "t"
    assert n.spec.tls is not None


def test_a_pool_resolves_to_the_connection_type_its_inline_form_has() -> None:
    """One set of connection types: a ClusterTemporalConnection's Secrets reach the pool's
    effective connection, a validated ConnectionSpec without the cluster-only fields."""
    from workerpool_operator.temporal.connections import effective_connection_spec

    spec = api.ClusterTemporalConnectionSpec.model_validate(
        {
            "address": "temporal.example:7233",
            "tls": {"secretName": "temporal-mtls", "serverName": "temporal.example"},
            "apiKeySecretRef": {"name": "temporal-key", "key": "token"},
            "allowedNamespaces": {},
        }
    )
    conn = effective_connection_spec(spec)
    assert type(conn) is api.ConnectionSpec
    assert conn.dump() == {
        "address": "temporal.example:7233",
        "namespace": "default",
        "tls": {"secretName": "temporal-mtls", "serverName": "temporal.example"},
        "apiKeySecretRef": {"name": "temporal-key", "key": "token"},
    }


def test_a_pool_refuses_and_explains_secrets_in_its_inline_connection() -> None:
    """The shared type, documented for the pool (api/legacy.py): kubectl explain says the
    Secret fields are refused, admission refuses them, and connections keep their own texts."""
    pool = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    inline = pool["properties"]["spec"]["properties"]["connection"]
    assert inline["properties"]["tls"]["properties"]["secretName"]["description"].startswith(
        "Refused since 0.3"
    )
    assert inline["properties"]["apiKeySecretRef"]["description"].startswith("Refused since 0.3")
    rules = [r["message"] for r in inline["x-kubernetes-validations"]]
    assert rules[0].startswith("connection.address must be host:port")
    assert sum("no longer accepted in a pool" in m for m in rules) == 2
    conn = crdgen.connection_crd(cluster=False)["spec"]["versions"][0]["schema"]
    tls = conn["openAPIV3Schema"]["properties"]["spec"]["properties"]["tls"]
    assert api.CREDENTIALS_LABEL in tls["properties"]["secretName"]["description"]
    with pytest.raises(ValueError, match="apiKeySecretRef is no longer accepted in a pool"):
        api.TemporalWorkerPoolSpec.model_validate(
            {
                "connection": {"address": "t:7233", "apiKeySecretRef": {"name": "k"}},
                "taskQueue": "q",
                "workflows": ["m:W"],
            }
        )


# --- status from the health check (pure) ---------------------------------------------------


def _status(live: dict[str, Any] | None = None, **found: Any) -> dict[str, Any]:
    from workerpool_operator.reconcile.status import connection_status

    args: dict[str, Any] = {
        "server_version": "1.32.0",
        "namespace_exists": True,
        "task_queue_stats": True,
        "worker_deployments": None,
        "error": None,
        "temporal_namespace": "payments",
        "live_status": live,
        "generation": 2,
        "now": "t1",
        **found,
    }
    return connection_status(**args)


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_connection_ready_with_version_and_capabilities() -> None:
    s = _status()
    assert (_ready(s)["status"], _ready(s)["reason"]) == ("True", "Connected")
    assert s["serverVersion"] == "1.32.0"
    assert s["capabilities"] == {"taskQueueStats": True}  # unknown is left out, not null
    assert s["observedGeneration"] == 2
    assert "lastError" not in s


def test_connection_errors_keep_what_was_found_and_the_last_error_survives_recovery() -> None:
    ok = _status()
    down = _status(
        ok, server_version=None, namespace_exists=None, error="GetSystemInfo: refused", now="t2"
    )
    assert (_ready(down)["status"], _ready(down)["reason"]) == ("False", "TemporalUnavailable")
    assert down["lastError"] == {"message": "GetSystemInfo: refused", "time": "t2"}
    assert down["serverVersion"] == "1.32.0"  # as last seen
    again = _status(down, error="GetSystemInfo: refused", now="t3")
    assert again["lastError"]["time"] == "t2"  # the same error keeps its first time
    back = _status(again, now="t4")
    assert _ready(back)["status"] == "True"
    assert back["lastError"]["time"] == "t2"  # the last error, with its time
    assert _ready(back)["lastTransitionTime"] == "t4"


def test_connection_namespace_not_found() -> None:
    s = _status(namespace_exists=False)
    assert (_ready(s)["status"], _ready(s)["reason"]) == ("False", "NamespaceNotFound")
    assert "payments" in _ready(s)["message"]


@pytest.mark.parametrize(
    ("version", "new_enough"),
    [("1.32.0", True), ("1.25.0", True), ("1.24.2", False), ("v1.26", True), ("dev", True)],
)
def test_task_queue_stats_by_server_version(version: str, new_enough: bool) -> None:
    from workerpool_operator.temporal.health import version_at_least

    assert version_at_least(version, (1, 25)) is new_enough


def test_the_connection_samples_parse_and_the_pool_renders_through_them() -> None:
    from workerpool_operator.render import Capabilities, desired_children
    from workerpool_operator.temporal.connections import Resolved, resolve_connection

    docs = list(
        yaml.safe_load_all((ROOT / "manifests" / "samples" / "connections.yaml").read_text())
    )
    by_kind = {d["kind"]: d for d in docs if d}
    api.TemporalConnection.from_body(by_kind["TemporalConnection"])
    cluster = by_kind["ClusterTemporalConnection"]
    api.ClusterTemporalConnection.from_body(cluster)
    pool_body = {**by_kind["TemporalWorkerPool"]}
    pool_body["metadata"] = {**pool_body["metadata"], "namespace": "payments", "uid": "u"}
    pool = api.TemporalWorkerPool.from_body(pool_body)
    resolved = resolve_connection(
        pool,
        connection=cluster,
        namespace_labels={"temporal-tenant": "payments"},
        credentials_namespace="workerpools-system",
    )
    assert isinstance(resolved, Resolved)
    kinds_rendered = {c["kind"] for c in desired_children(resolved.pool, Capabilities())}
    assert {"Deployment", "ServiceAccount", "NetworkPolicy"} <= kinds_rendered
