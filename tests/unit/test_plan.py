"""The pure planner: what one reconcile does, given the pool and what the caches hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.grants import Grants
from workerpool_operator.kinds import (
    DEPLOYMENT,
    HPA,
    PDB,
    REPLICAS_OWNERS,
    SCALED_OBJECT,
    SERVICE,
    SERVICE_ACCOUNT,
    SERVICE_MONITOR,
    TRIGGER_AUTH,
    Kind,
)
from workerpool_operator.names import (
    ADOPT_ANNOTATION,
    CREDENTIALS_HASH_ANNOTATION,
    GPU_POD_LABEL,
    LEGACY_FINALIZER,
    MANAGERS,
)
from workerpool_operator.reasons import Reason
from workerpool_operator.reconcile.model import Observed, Outcome, Plan
from workerpool_operator.reconcile.plan import finish, plan
from workerpool_operator.render import Capabilities

UID = "0000-pool-uid"


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "orders", "namespace": "shop", "uid": UID, "generation": 3},
        "spec": {
            "connection": {"address": "temporal:7233"},
            "taskQueue": "orders",
            "workflows": ["app:Wf"],
            **spec,
        },
    }


def connection(cluster: bool = False, **spec: Any) -> dict[str, Any]:
    """A cached TemporalConnection (in the pool's namespace) or ClusterTemporalConnection."""
    meta = {"name": "prod"} if cluster else {"name": "prod", "namespace": "shop"}
    full = {"address": "prod.example:7233", "namespace": "payments", **spec}
    if cluster:
        full.setdefault("allowedNamespaces", {"matchLabels": {"tenant": "shop"}})
    return {"metadata": meta, "spec": full}


def ref_body(kind: str = "TemporalConnection", **spec: Any) -> dict[str, Any]:
    """A pool that references connection `prod`."""
    b = body(connectionRef={"kind": kind, "name": "prod"}, **spec)
    del b["spec"]["connection"]
    return b


def live_from(p: Plan) -> dict[Kind, dict[str, Any]]:
    """What the API server (and so the cache) holds after the plan's writes went through."""
    out = {}
    for w in p.writes:
        obj = copy.deepcopy(w.manifest)
        obj["metadata"]["uid"] = f"uid-{w.kind.kind}"
        if w.kind is DEPLOYMENT:
            obj["spec"].setdefault("replicas", 1)
            obj[REPLICAS_OWNERS] = (
                ["workerpool-operator/Apply"] if "replicas" in w.manifest["spec"] else []
            )
        out[w.kind] = obj
    return out


def test_new_pool_writes_every_child_checking_names_first() -> None:
    p = plan(body(replicas=2), Capabilities(), Observed())
    assert {w.kind for w in p.writes} == {DEPLOYMENT, SERVICE, PDB, SERVICE_ACCOUNT}
    assert all(not w.known for w in p.writes)  # absent from the cache: check for foreign objects
    assert p.conditions[api.CONDITION_READY].reason == Reason.REPLICAS_NOT_READY
    assert p.fields["desiredReplicas"] == 0  # no Deployment yet


def test_current_children_mean_no_writes() -> None:
    first = plan(body(replicas=2), Capabilities(), Observed())
    again = plan(body(replicas=2), Capabilities(), Observed(children=live_from(first)))
    assert again.writes == []
    assert again.prune == []
    assert again.handover is None


def test_drift_is_rewritten() -> None:
    first = plan(body(replicas=2), Capabilities(), Observed())
    live = live_from(first)
    live[DEPLOYMENT]["spec"]["replicas"] = 7  # someone scaled the Deployment by hand
    again = plan(body(replicas=2), Capabilities(), Observed(children=live))
    assert [w.kind for w in again.writes] == [DEPLOYMENT]
    assert again.writes[0].known


def test_foreign_object_with_the_pools_name_is_a_conflict_not_a_takeover() -> None:
    first = plan(body(replicas=2), Capabilities(), Observed())
    live = live_from(first)
    live[PDB]["metadata"]["ownerReferences"] = [{"controller": True, "uid": "someone-else"}]
    p = plan(body(replicas=2), Capabilities(), Observed(children=live))
    assert PDB not in {w.kind for w in p.writes}
    assert "PodDisruptionBudget shop/orders" in p.conflicts[PDB]
    status = finish(p, Outcome(), None, generation=3, now="t")
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "NameConflict")
    # adopting it takes an explicit annotation
    live[PDB]["metadata"]["annotations"] = {ADOPT_ANNOTATION: "true"}
    p = plan(body(replicas=2), Capabilities(), Observed(children=live))
    assert PDB in {w.kind for w in p.writes}
    assert not p.conflicts


def test_prune_only_what_the_pool_controls() -> None:
    spec = {"replicas": 1, "metrics": {"serviceMonitor": {"enabled": True}}}
    first = plan(body(**spec), Capabilities(service_monitor=True), Observed())
    assert SERVICE_MONITOR in {w.kind for w in first.writes}
    live = live_from(first)
    off = {"replicas": 1, "metrics": {"serviceMonitor": {"enabled": False}}}
    p = plan(body(**off), Capabilities(service_monitor=True), Observed(children=live))
    assert p.prune == [(SERVICE_MONITOR, "uid-ServiceMonitor")]
    live[SERVICE_MONITOR]["metadata"]["ownerReferences"] = [{"controller": True, "uid": "x"}]
    p = plan(body(**off), Capabilities(service_monitor=True), Observed(children=live))
    assert p.prune == []


@pytest.mark.parametrize(
    ("autoscaling", "manager"),
    [
        ({"engine": "Builtin", "minReplicas": 2, "maxReplicas": 20}, MANAGERS.scaler),
        ({"engine": "KEDA", "minReplicas": 1, "maxReplicas": 20}, MANAGERS.handover),
        (
            {"engine": "HPA", "minReplicas": 1, "maxReplicas": 20, "cpuUtilization": 70},
            MANAGERS.handover,
        ),
    ],
)
def test_fixed_to_autoscaled_hands_replicas_over_at_their_current_value(
    autoscaling: dict[str, Any], manager: str
) -> None:
    fixed = plan(body(replicas=10), Capabilities(keda=True), Observed())
    live = live_from(fixed)
    assert live[DEPLOYMENT]["spec"]["replicas"] == 10
    p = plan(body(autoscaling=autoscaling), Capabilities(keda=True), Observed(children=live))
    assert p.handover is not None
    assert (p.handover.replicas, p.handover.manager) == (10, manager)
    deployment = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    assert "replicas" not in deployment["spec"]  # the reconciler lets go of the field
    # once another manager holds the field, nothing more is handed over
    live[DEPLOYMENT][REPLICAS_OWNERS] = ["workerpool-operator/Apply", f"{manager}/Apply"]
    p = plan(body(autoscaling=autoscaling), Capabilities(keda=True), Observed(children=live))
    assert p.handover is None


def test_autoscaled_back_to_fixed_owns_replicas_again_and_prunes_the_hpa() -> None:
    hpa = {"engine": "HPA", "minReplicas": 1, "maxReplicas": 5, "cpuUtilization": 70}
    scaled = plan(body(autoscaling=hpa), Capabilities(), Observed())
    live = live_from(scaled)
    assert HPA in live
    p = plan(body(replicas=4), Capabilities(), Observed(children=live))
    deployment = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    assert deployment["spec"]["replicas"] == 4
    assert p.prune == [(HPA, "uid-HorizontalPodAutoscaler")]


def test_builtin_pools_leave_desired_replicas_to_the_scaler() -> None:
    p = plan(body(autoscaling={"minReplicas": 0, "maxReplicas": 3}), Capabilities(), Observed())
    assert "desiredReplicas" not in p.fields


def test_invalid_spec_is_reported_naming_the_field_and_touches_nothing() -> None:
    p = plan(body(replicas="many"), Capabilities(), Observed())
    assert p.writes == []
    assert p.prune == []
    assert p.invalid is not None
    assert "spec.replicas" in p.invalid
    status = finish(p, Outcome(), None, generation=3, now="t")
    assert status["observedGeneration"] == 3
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", Reason.INVALID_SPEC)


def test_deleted_pool_or_terminating_namespace_is_left_alone_but_loses_the_old_finalizer() -> None:
    b = body(replicas=1)
    b["metadata"]["finalizers"] = ["other/keep", LEGACY_FINALIZER]
    p = plan(b, Capabilities(), Observed(), namespace_terminating=True)
    assert not p.act
    assert p.writes == []
    assert p.drop_finalizer == 1
    b["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p = plan(b, Capabilities(), Observed())
    assert not p.act
    assert p.drop_finalizer == 1
    # a live pool of an older version also loses it, and is reconciled as usual
    del b["metadata"]["deletionTimestamp"]
    p = plan(b, Capabilities(), Observed())
    assert p.act
    assert p.drop_finalizer == 1
    assert p.writes


def test_rotated_credentials_change_the_pod_template() -> None:
    spec = {"replicas": 1, "connectionRef": {"name": "prod"}}

    def annotation(data: dict[str, str]) -> str:
        secrets = {"mtls": {"metadata": {"name": "mtls"}, "data": data}}
        p = plan(
            {
                **body(**spec),
                "spec": {k: v for k, v in body(**spec)["spec"].items() if k != "connection"},
            },
            Capabilities(),
            Observed(secrets=secrets, connection=connection(tls={"secretName": "mtls"})),
        )
        dep = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
        return str(dep["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_HASH_ANNOTATION])

    assert annotation({"tls.crt": "b2xk"}) != annotation({"tls.crt": "bmV3"})


def test_gpu_pods_carry_the_label_the_pod_cache_selects() -> None:
    p = plan(body(replicas=1, gpu={"count": 1}), Capabilities(), Observed())
    dep = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    assert dep["spec"]["template"]["metadata"]["labels"][GPU_POD_LABEL] == "true"
    p = plan(body(replicas=1), Capabilities(), Observed())
    dep = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    assert GPU_POD_LABEL not in dep["spec"]["template"]["metadata"]["labels"]


def test_refused_write_becomes_apply_failed_with_the_api_servers_sentence() -> None:
    p = plan(body(replicas=1), Capabilities(), Observed())
    outcome = Outcome(failures={PDB: "PodDisruptionBudget shop/orders: Invalid: spec.x: bad"})
    status = finish(p, outcome, None, generation=3, now="t")
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["reason"] == Reason.APPLY_FAILED
    assert by_type["Degraded"]["status"] == "True"
    assert "spec.x: bad" in by_type["Ready"]["message"]


def test_the_design_docs_table_is_the_kind_registry() -> None:
    from pathlib import Path

    from workerpool_operator.kinds import docs_table

    text = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    start = text.index("<!-- kinds-table")
    section = text[text.index("\n", start) + 1 : text.index("<!-- /kinds-table -->")]
    assert section.strip() == docs_table().strip(), "regenerate with kinds.docs_table()"


# --- connections ------------------------------------------------------------------------------


def _deployment_env(p: Plan) -> dict[str, Any]:
    dep = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_referenced_connection_renders_like_the_inline_one_did() -> None:
    """TemporalConnection fields reach the pods exactly as spec.connection's did in 0.2."""
    conn = connection(
        tls={"secretName": "mtls", "serverName": "sni"},
        apiKeySecretRef={"name": "key", "key": "token"},
    )
    opted_in: dict[str, dict[str, Any]] = {"mtls": {"data": {}}, "key": {"data": {}}}
    p = plan(ref_body(replicas=1), Capabilities(), Observed(connection=conn, secrets=opted_in))
    env = _deployment_env(p)
    assert env["TWP_TEMPORAL_ADDRESS"] == "prod.example:7233"
    assert env["TWP_TEMPORAL_NAMESPACE"] == "payments"
    assert env["TWP_TLS_SERVER_NAME"] == "sni"
    assert env["TWP_API_KEY"] == {"secretKeyRef": {"name": "key", "key": "token"}}
    dep = next(w.manifest for w in p.writes if w.kind is DEPLOYMENT)
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["temporal-tls"]["secret"]["secretName"] == "mtls"
    assert p.conditions[api.CONDITION_READY].reason != Reason.CONNECTION_NOT_FOUND


@pytest.mark.parametrize(
    ("kind", "conn", "labels", "reason"),
    [
        ("TemporalConnection", None, {}, Reason.CONNECTION_NOT_FOUND),
        ("ClusterTemporalConnection", None, {}, Reason.CONNECTION_NOT_FOUND),
        ("ClusterTemporalConnection", connection(cluster=True), {}, Reason.CONNECTION_NOT_ALLOWED),
        (
            "ClusterTemporalConnection",
            connection(cluster=True),
            {"tenant": "other"},
            Reason.CONNECTION_NOT_ALLOWED,
        ),
        (
            "TemporalConnection",
            {"metadata": {"name": "prod"}, "spec": {}},
            {},
            Reason.CONNECTION_INVALID,
        ),
        (
            "TemporalConnection",
            connection(allowedPools={"matchLabels": {"team": "payments"}}),
            {},
            Reason.POOL_NOT_ALLOWED,
        ),
        (
            "ClusterTemporalConnection",
            connection(
                cluster=True,
                allowedPools={"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            ),
            {"tenant": "shop"},
            Reason.POOL_NOT_ALLOWED,
        ),
    ],
)
def test_an_unusable_connection_writes_nothing_and_says_why(
    kind: str, conn: dict[str, Any] | None, labels: dict[str, str], reason: Reason
) -> None:
    """A connection the planner cannot use writes nothing. One that refuses the pool (its
    allowedNamespaces or allowedPools) revokes the Deployment, which carries its credentials;
    one it cannot tell about (missing, unreadable) keeps the running children. (An address with
    a scheme is admission's to reject: tests/integration/test_connection_admission.py.)"""
    first = plan(body(replicas=1), Capabilities(), Observed())
    live = live_from(first)  # the pool ran before
    p = plan(
        ref_body(kind),
        Capabilities(),
        Observed(children=live, connection=conn, namespace_labels=labels),
    )
    assert p.writes == []
    assert p.prune == []
    assert p.handover is None
    ready = p.conditions[api.CONDITION_READY]
    assert (ready.status, ready.reason) == ("False", reason)
    assert p.conditions[api.CONDITION_DEGRADED].status == "True"
    assert kind in ready.message
    assert "prod" in ready.message
    status = finish(p, Outcome(), None, generation=3, now="t")
    if reason in (Reason.CONNECTION_NOT_ALLOWED, Reason.POOL_NOT_ALLOWED):
        assert [(r.kind, r.uid) for r in p.revoke] == [(DEPLOYMENT, "uid-Deployment")]
        assert "runs no workers" in ready.message
        assert status["replicas"] == 0
        return
    assert p.revoke == []  # running workers keep what they have
    assert "replicas" in status  # the workload is still reported


def test_a_cluster_connection_allowed_by_namespace_labels() -> None:
    p = plan(
        ref_body("ClusterTemporalConnection", replicas=1),
        Capabilities(),
        Observed(
            connection=connection(cluster=True, apiKeySecretRef={"name": "k"}, tls={}),
            namespace_labels={"tenant": "shop"},
            credentials_namespace="ops",
            secrets={"k": {"data": {}}},  # the copy in the pool's namespace, opted in
        ),
    )
    assert _deployment_env(p)["TWP_TEMPORAL_ADDRESS"] == "prod.example:7233"
    from workerpool_operator.temporal.connections import Resolved, resolve_connection

    pool = api.TemporalWorkerPool.from_body(ref_body("ClusterTemporalConnection"))
    resolved = resolve_connection(
        pool,
        connection=connection(cluster=True),
        namespace_labels={"tenant": "shop"},
        credentials_namespace="ops",
    )
    assert isinstance(resolved, Resolved)
    assert resolved.secrets_namespace == "ops"  # the admin's namespace, not the tenant's
    assert resolved.source == "ClusterTemporalConnection prod"


@pytest.mark.parametrize(
    ("allowed_pools", "pool_labels", "allowed"),
    [
        (None, {}, True),  # absent: every pool of the namespace
        ({}, {}, True),
        ({"matchLabels": {"team": "payments"}}, {"team": "payments"}, True),
        ({"matchLabels": {"team": "payments"}}, {"team": "orders"}, False),
        ({"matchLabels": {"team": "payments"}}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "a"}, False),
    ],
)
@pytest.mark.parametrize("cluster", [False, True], ids=["namespaced", "cluster"])
def test_a_connection_is_used_only_by_the_pools_its_allowed_pools_selects(
    allowed_pools: dict[str, Any] | None,
    pool_labels: dict[str, str],
    allowed: bool,
    cluster: bool,
) -> None:
    """spec.allowedPools, on both kinds: a pool it does not select gets PoolNotAllowed, naming
    the field and the fix, and nothing is written (its Secrets reach no pod, no KEDA object);
    the scaler resolves through the same function, so it dials nothing for the pool either."""
    from workerpool_operator.temporal.connections import Resolved, Unresolved, resolve_connection

    spec: dict[str, Any] = {"apiKeySecretRef": {"name": "k"}, "tls": {}}
    if allowed_pools is not None:
        spec["allowedPools"] = allowed_pools
    conn = connection(cluster=cluster, **spec)
    kind = "ClusterTemporalConnection" if cluster else "TemporalConnection"
    pool_body = ref_body(kind, replicas=1, autoscaling={"engine": "KEDA", "maxReplicas": 3})
    pool_body["metadata"]["labels"] = pool_labels
    observed = Observed(
        connection=conn,
        namespace_labels={"tenant": "shop"},
        credentials_namespace="ops",
        secrets={"k": {"data": {}}},
    )
    p = plan(pool_body, Capabilities(keda=True), observed)
    resolved = resolve_connection(
        api.TemporalWorkerPool.from_body(pool_body),
        connection=conn,
        namespace_labels={"tenant": "shop"},
        credentials_namespace="ops",
    )
    ready = p.conditions[api.CONDITION_READY]
    if allowed:
        assert isinstance(resolved, Resolved)
        assert {w.kind for w in p.writes} >= {DEPLOYMENT, TRIGGER_AUTH, SCALED_OBJECT}
        assert ready.reason != Reason.POOL_NOT_ALLOWED
        return
    assert isinstance(resolved, Unresolved)
    assert p.writes == []
    assert (ready.status, ready.reason) == ("False", Reason.POOL_NOT_ALLOWED)
    assert "spec.allowedPools" in ready.message
    assert "shop/orders" in ready.message
    assert "metadata.labels" in ready.message


@pytest.mark.parametrize(
    ("connection_spec", "message"),
    [
        ({"address": "t:7233", "tls": {"secretName": "mtls"}}, "tls.secretName is no longer"),
        (
            {"address": "t:7233", "tls": {}, "apiKeySecretRef": {"name": "k"}},
            "apiKeySecretRef is no longer",
        ),
    ],
)
def test_a_pool_stored_with_inline_secrets_is_invalid_and_keeps_its_children(
    connection_spec: dict[str, Any], message: str
) -> None:
    live = live_from(plan(body(replicas=1), Capabilities(), Observed()))
    p = plan(body(connection=connection_spec), Capabilities(), Observed(children=live))
    assert p.writes == []
    assert p.prune == []
    ready = p.conditions[api.CONDITION_READY]
    assert ready.reason == Reason.INVALID_SPEC
    assert message in ready.message
    assert "TemporalConnection" in ready.message


def test_exactly_one_of_connection_and_connection_ref() -> None:
    both = body(connectionRef={"name": "prod"})
    neither = body()
    del neither["spec"]["connection"]
    for b in (both, neither):
        p = plan(b, Capabilities(), Observed(connection=connection()))
        assert p.conditions[api.CONDITION_READY].reason == Reason.INVALID_SPEC
        assert "exactly one of spec.connection" in p.conditions[api.CONDITION_READY].message


def test_children_without_delete_are_never_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    """RBAC grants delete only on kinds a pool can stop wanting; the planner agrees: even a plan
    whose renderer wants no child at all prunes only the kinds it may delete."""
    from workerpool_operator.kinds import CHILDREN
    from workerpool_operator.reconcile import plan as planner

    p = plan(body(replicas=1), Capabilities(service_monitor=True), Observed())
    live = live_from(p)
    always = {k for k in CHILDREN if "delete" not in k.verbs}
    assert always <= set(live)
    assert SERVICE_MONITOR in live  # a prunable child lives beside them
    monkeypatch.setattr(planner, "desired_children", lambda pool, caps: [])
    p = plan(body(replicas=1), Capabilities(service_monitor=True), Observed(children=live))
    # Deployments may be deleted (a versioned pool's retired builds), the others never.
    assert {k for k, _ in p.prune} == {SERVICE_MONITOR, DEPLOYMENT}


# --- issue 20: what a pool may make the operator use ------------------------------------------


def test_a_secret_that_did_not_opt_in_is_handed_to_nobody() -> None:
    conn = connection(tls={}, apiKeySecretRef={"name": "db", "key": "password"})
    keda = {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 2}
    p = plan(ref_body(autoscaling=keda), Capabilities(keda=True), Observed(connection=conn))
    assert p.writes == []
    ready = p.conditions[api.CONDITION_READY]
    assert ready.reason == Reason.CREDENTIALS_UNAVAILABLE
    assert "Secret db in namespace" in ready.message
    assert "workerpools.io/temporal-credentials=true" in ready.message


def test_an_address_the_admin_does_not_allow_writes_nothing() -> None:
    caps = Capabilities(grants=Grants(allowed_addresses=("*.svc:7233",)))
    p = plan(body(replicas=1), caps, Observed())
    assert p.writes == []
    assert p.conditions[api.CONDITION_READY].reason == Reason.ADDRESS_NOT_ALLOWED
    assert "spec.connection.address" in p.conditions[api.CONDITION_READY].message


def _foreign(kind_name: str) -> dict[str, Any]:
    return {"metadata": {"name": "orders", "namespace": "shop", "uid": "someone-else",
                         "ownerReferences": []}, "kind": kind_name}  # fmt: skip


def test_a_foreign_service_account_keeps_the_deployment_from_being_written() -> None:
    p = plan(body(replicas=1), Capabilities(), Observed(children={SERVICE_ACCOUNT: _foreign("x")}))
    kinds = {w.kind for w in p.writes}
    assert SERVICE_ACCOUNT in p.conflicts
    assert DEPLOYMENT not in kinds
    assert PDB not in kinds
    assert "The Deployment is not written" in p.conflicts[SERVICE_ACCOUNT]


@pytest.mark.parametrize(
    "autoscaling",
    [{"engine": "HPA", "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilization": 50},
     {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 3}],
    ids=["HPA", "KEDA"],
)  # fmt: skip
def test_a_foreign_deployment_is_never_scaled_by_the_pool(autoscaling: dict[str, Any]) -> None:
    p = plan(
        body(autoscaling=autoscaling, resources={"requests": {"cpu": "100m"}}),
        Capabilities(keda=True),
        Observed(children={DEPLOYMENT: _foreign("Deployment")}),
    )
    kinds = {w.kind for w in p.writes}
    assert DEPLOYMENT in p.conflicts
    assert not kinds & {HPA, SCALED_OBJECT, TRIGGER_AUTH, PDB}


def test_a_cluster_connections_secrets_are_checked_where_the_operator_reads_them() -> None:
    """A ClusterTemporalConnection is the cluster admin's, its Secrets live in the operator's
    namespace: the pool's own namespace holding no opted-in copy does not stop the pool."""
    conn = connection(cluster=True, tls={}, apiKeySecretRef={"name": "shared", "key": "k"})
    observed = Observed(connection=conn, namespace_labels={"tenant": "shop"})
    p = plan(ref_body("ClusterTemporalConnection", replicas=1), Capabilities(), observed)
    assert p.conditions[api.CONDITION_READY].reason != Reason.CREDENTIALS_UNAVAILABLE
    assert DEPLOYMENT in {w.kind for w in p.writes}


def test_a_pool_its_connection_stops_admitting_loses_what_carries_the_credentials() -> None:
    """Revocation: a KEDA pool that ran with a connection's API key; the connection's owner
    narrows allowedPools. The Deployment (pods mount the Secret), the TriggerAuthentication
    (KEDA reads it) and the ScaledObject (KEDA dials with it) are deleted, by UID, what carries
    nothing stays; re-admitting the pool writes them all again."""
    keda = {"engine": "KEDA", "minReplicas": 0, "maxReplicas": 2}
    pool_body = ref_body(autoscaling=keda)
    pool_body["metadata"]["labels"] = {"team": "payments"}
    admits = connection(tls={}, apiKeySecretRef={"name": "k"})
    observed = Observed(connection=admits, secrets={"k": {"data": {}}})
    live = live_from(plan(pool_body, Capabilities(keda=True), observed))
    assert {DEPLOYMENT, TRIGGER_AUTH, SCALED_OBJECT} <= set(live)
    refuses = copy.deepcopy(admits)
    refuses["spec"]["allowedPools"] = {"matchLabels": {"team": "orders"}}
    revoked = plan(
        pool_body,
        Capabilities(keda=True),
        Observed(children=live, connection=refuses, secrets={"k": {"data": {}}}),
    )
    assert revoked.writes == []
    deleted = [(r.kind, r.name, r.uid) for r in revoked.revoke]
    assert deleted == [
        (SCALED_OBJECT, "orders", "uid-ScaledObject"),
        (TRIGGER_AUTH, "orders", "uid-TriggerAuthentication"),
        (DEPLOYMENT, "orders", "uid-Deployment"),
    ]
    ready = revoked.conditions[api.CONDITION_READY]
    assert (ready.status, ready.reason) == ("False", Reason.POOL_NOT_ALLOWED)
    assert "TemporalConnection shop/prod" in ready.message  # which connection
    assert "spec.allowedPools" in ready.message  # and the fix
    gone = {k: v for k, v in live.items() if k not in {DEPLOYMENT, TRIGGER_AUTH, SCALED_OBJECT}}
    again = plan(pool_body, Capabilities(keda=True), Observed(children=gone, connection=admits,
                 secrets={"k": {"data": {}}}))  # fmt: skip
    assert again.revoke == []
    assert {w.kind for w in again.writes} == {DEPLOYMENT, TRIGGER_AUTH, SCALED_OBJECT}


def test_revocation_takes_only_what_the_pool_controls_and_a_versioned_pools_builds() -> None:
    """A foreign Deployment under the pool's name is never deleted; a versioned pool's build
    Deployments mount the Secrets too, so they go; an address the admin stopped allowing
    revokes as well (the workers would keep dialling it)."""
    own_build = {"metadata": {"name": "orders-abc", "uid": "b1",
                              "ownerReferences": [{"controller": True, "uid": UID}]}}  # fmt: skip
    other_build = {"metadata": {"name": "x-abc", "uid": "b2", "ownerReferences": []}}
    refuses = connection(allowedPools={"matchLabels": {"team": "none"}})
    p = plan(
        ref_body(replicas=1),
        Capabilities(),
        Observed(
            children={DEPLOYMENT: _foreign("Deployment")},
            connection=refuses,
            builds=(own_build, other_build),
        ),
    )
    assert [(r.kind, r.name, r.uid) for r in p.revoke] == [(DEPLOYMENT, "orders-abc", "b1")]
    live = live_from(plan(body(replicas=1), Capabilities(), Observed()))
    caps = Capabilities(grants=Grants(allowed_addresses=("*.svc:7233",)))
    p = plan(body(replicas=1), caps, Observed(children=live))
    assert p.conditions[api.CONDITION_READY].reason == Reason.ADDRESS_NOT_ALLOWED
    assert [r.kind for r in p.revoke] == [DEPLOYMENT]
