"""Renderers: golden output for the samples, and table-driven checks of what users rely on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import golden as golden_file
from tests.builders import pool_model as pool
from worker_runtime.contract import TLS_MOUNT_PATH, RuntimeSettings, env_var
from workerpool_operator import grants
from workerpool_operator.api.v1alpha1 import (
    DEFAULT_IMAGE_TAG,
    RESERVED_ENV_NAMES,
    TemporalWorkerPool,
)
from workerpool_operator.grants import GrantError, Grants
from workerpool_operator.render import Capabilities, desired_children, render_deployment
from workerpool_operator.render.common import label_value, selector_labels
from workerpool_operator.render.deployment import TERMINATION_GRACE_MARGIN_SECONDS

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*-pool.yaml"))


def container(p: TemporalWorkerPool) -> dict[str, Any]:
    dep = render_deployment(p, replicas=1)
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def env_of(p: TemporalWorkerPool) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(p)["env"]}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_golden(sample: Path) -> None:
    doc = yaml.safe_load(sample.read_text())
    doc["metadata"].update(namespace="default", uid="00000000-0000-0000-0000-000000000001")
    rendered = desired_children(TemporalWorkerPool.from_body(doc), Capabilities(True, True))
    text = yaml.safe_dump_all(rendered, sort_keys=True)
    golden = GOLDEN / f"{sample.stem}.yaml"
    golden_file.compare(golden, text)


def test_env_round_trips_through_the_runtime_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the renderer writes is exactly what the runtime's settings model reads."""
    p = pool(
        {
            "activities": ["app.acts:a", "app.acts:b"],
            "connection": {"address": "t:7233", "namespace": "prod", "tls": {"serverName": "t"}},
            "worker": {"maxConcurrentActivities": 7, "maxActivitiesPerSecond": 2.5},
            "metrics": {"port": 9191},
        }
    )
    for name, value in env_of(p).items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    settings = RuntimeSettings()
    assert settings.temporal_namespace == "prod"
    assert settings.task_queue == "q"
    assert settings.workflows == ["app.wf:Flow"]
    assert settings.activities == ["app.acts:a", "app.acts:b"]
    assert settings.tls_enabled is True
    assert settings.tls_server_name == "t"
    assert settings.max_concurrent_activities == 7
    assert settings.max_activities_per_second == 2.5
    assert settings.metrics_port == 9191
    assert settings.graceful_shutdown_seconds == 30


def test_api_key_comes_from_secret_and_tls_is_mounted_read_only() -> None:
    p = pool(
        {
            "connection": {
                "address": "ns.tmprl.cloud:7233",
                "tls": {"secretName": "temporal-mtls"},
                "apiKeySecretRef": {"name": "temporal-key", "key": "token"},
            }
        }
    )
    env = env_of(p)
    assert env[env_var("api_key")] == {"secretKeyRef": {"name": "temporal-key", "key": "token"}}
    assert env[env_var("tls_enabled")] == "true"
    # No explicit file paths: the runtime uses what the mounted Secret holds, so a Secret
    # without ca.crt (a public CA, e.g. Temporal Cloud) falls back to the system roots.
    assert not {env_var(f) for f in ("tls_ca_path", "tls_cert_path", "tls_key_path")} & set(env)
    mounts = {m["name"]: m for m in container(p)["volumeMounts"]}
    assert mounts["temporal-tls"]["readOnly"] is True
    assert mounts["temporal-tls"]["mountPath"] == TLS_MOUNT_PATH
    assert all("apiKey" not in str(v) or "secretKeyRef" in str(v) for v in env.values())


def test_user_env_sets_runtime_settings_the_operator_does_not_write() -> None:
    p = pool(
        {"env": [{"name": env_var("log_level"), "value": "DEBUG"}, {"name": "A", "value": "1"}]}
    )
    assert env_of(p)[env_var("log_level")] == "DEBUG"
    assert env_of(p)["A"] == "1"


def test_reserved_env_from_a_pool_stored_before_the_rule_is_ignored() -> None:
    """Admission refuses spec.env TWP_TASK_QUEUE; an older stored pool still polls its queue."""
    p = pool({"env": [{"name": env_var("task_queue"), "value": "override"}]})
    names = [e["name"] for e in container(p)["env"]]
    assert names.count(env_var("task_queue")) == 1
    assert env_of(p)[env_var("task_queue")] == "q"


def test_every_env_var_the_operator_writes_is_reserved() -> None:
    """RESERVED_ENV_NAMES (what admission refuses in spec.env) covers the renderer's output."""
    p = pool(
        {
            "connection": {
                "address": "t:7233",
                "tls": {"secretName": "s", "serverName": "t"},
                "apiKeySecretRef": {"name": "k"},
            },
            "worker": {
                "maxConcurrentActivities": 1,
                "maxConcurrentWorkflowTasks": 2,
                "maxActivitiesPerSecond": 1.0,
                "maxTaskQueueActivitiesPerSecond": 1.0,
                "maxCachedWorkflows": 0,
            },
        }
    )
    written = set(env_of(p))
    assert written <= set(RESERVED_ENV_NAMES)
    assert all(name[len("TWP_") :].lower() in RuntimeSettings.model_fields for name in written)


@pytest.mark.parametrize(
    ("spec", "replicas"),
    [
        ({}, 1),
        ({"replicas": 3}, 3),
        ({"replicas": 0}, 0),
        ({"autoscaling": {"engine": "Builtin"}}, None),
        ({"autoscaling": {"engine": "KEDA"}}, None),
    ],
)
def test_replicas_left_to_autoscaler(spec: dict[str, Any], replicas: int | None) -> None:
    dep = desired_children(pool(spec), Capabilities())[0]
    assert dep["spec"].get("replicas") == replicas


def test_gpu_pool_gets_limits_tolerations_and_shm() -> None:
    p = pool({"gpu": {"count": 2, "resourceName": "nvidia.com/mig-1g.10gb", "shmSize": "4Gi"}})
    dep = render_deployment(p, replicas=1)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in pod["tolerations"]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_cpu_pool_has_no_gpu_bits() -> None:
    pod = render_deployment(pool(), replicas=1)["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    assert "resources" not in pod["containers"][0]
    assert all(v["name"] != "dshm" for v in pod["volumes"])


def test_restricted_security_context_and_probes() -> None:
    dep = render_deployment(pool({"worker": {"gracefulShutdownSeconds": 120}}), replicas=1)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] == 120 + TERMINATION_GRACE_MARGIN_SECONDS
    assert pod["terminationGracePeriodSeconds"] > 120


def test_user_labels_annotations_and_template_fields_are_kept() -> None:
    p = pool(
        {
            "template": {
                "metadata": {"labels": {"team": "ml"}, "annotations": {"a": "b"}},
                "serviceAccountName": "workers",
                "priorityClassName": "high",
                "nodeSelector": {"pool": "x"},
            }
        }
    )
    tmpl = render_deployment(p, replicas=1)["spec"]["template"]
    assert tmpl["metadata"]["labels"]["team"] == "ml"
    assert tmpl["metadata"]["labels"]["workerpools.io/pool"] == "p"
    assert tmpl["metadata"]["annotations"]["a"] == "b"
    assert tmpl["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert tmpl["spec"]["serviceAccountName"] == "workers"
    assert tmpl["spec"]["priorityClassName"] == "high"
    assert tmpl["spec"]["nodeSelector"] == {"pool": "x"}


@pytest.mark.parametrize(
    ("caps", "enabled", "has_sm"),
    [
        (Capabilities(service_monitor=True), None, True),
        (Capabilities(service_monitor=False), None, False),
        (Capabilities(service_monitor=True), False, False),
        (Capabilities(service_monitor=True), True, True),
    ],
)
def test_service_monitor_only_when_crd_present(
    caps: Capabilities, enabled: Any, has_sm: bool
) -> None:
    kinds = [
        c["kind"]
        for c in desired_children(pool({"metrics": {"serviceMonitor": {"enabled": enabled}}}), caps)
    ]
    assert ("ServiceMonitor" in kinds) is has_sm
    assert kinds[:3] == ["Deployment", "Service", "PodDisruptionBudget"]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (None, {"maxUnavailable": 1}),
        ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
        ({"maxUnavailable": 2}, {"maxUnavailable": 2}),
    ],
)
def test_pdb(budget: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    spec = {"disruptionBudget": budget} if budget else {}
    pdb = desired_children(pool(spec), Capabilities())[2]
    expected = {**expected, "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == expected


def test_pdb_lets_unready_workers_be_evicted() -> None:
    """issue 9: with Temporal down every worker is unready; drains must not hang on the PDB."""
    pdb = desired_children(pool(), Capabilities())[2]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {"maxSurge": "25%", "maxUnavailable": 0}),
        ({"gpu": {"count": 1}}, {"maxSurge": 0, "maxUnavailable": 1}),
        ({"gpu": {"count": 1}, "rollout": {"maxSurge": 1}}, {"maxSurge": 1, "maxUnavailable": 1}),
        (
            {"gpu": {"count": 1}, "rollout": {"maxSurge": 1, "maxUnavailable": 0}},
            {"maxSurge": 1, "maxUnavailable": 0},
        ),
        ({"rollout": {"maxUnavailable": "50%"}}, {"maxSurge": "25%", "maxUnavailable": "50%"}),
    ],
    ids=["cpu-default", "gpu-default", "gpu-surge", "gpu-explicit", "cpu-unavailable"],
)
def test_rollout_defaults_gpu_pools_roll_in_place(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    """issue 9: a GPU surge pod on a full GPU node pool stays Pending forever."""
    dep = render_deployment(pool(spec), replicas=1)
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": expected}


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ({}, f"workerpools/worker-runtime:{DEFAULT_IMAGE_TAG}"),
        ({"repository": "r.example.com:5000/w", "tag": "v2"}, "r.example.com:5000/w:v2"),
        ({"repository": "w", "digest": DIGEST}, f"w@{DIGEST}"),
        ({"repository": "w", "tag": "v2", "digest": DIGEST}, f"w@{DIGEST}"),
    ],
)
def test_image_reference_tag_or_digest(image: dict[str, Any], reference: str) -> None:
    """issue 9: a digest renders as repository@digest, never repository@digest:tag."""
    assert container(pool({"image": image}))["image"] == reference


def test_unpinned_runtime_follows_the_operators_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 22: the tag is resolved at render time, not stored by the CRD at creation, so an
    operator upgrade rolls unpinned pools to its own runtime and leaves pinned ones alone."""
    from workerpool_operator.api import crdgen
    from workerpool_operator.api import v1alpha1 as api

    unpinned, pinned = pool({}), pool({"image": {"tag": "2024.1"}})
    before = container(unpinned)["image"]
    assert before == f"{api.DEFAULT_IMAGE_REPOSITORY}:{api.DEFAULT_IMAGE_TAG}"
    from workerpool_operator.api import workload

    monkeypatch.setattr(workload, "DEFAULT_IMAGE_TAG", "9.9.9")  # the next operator release
    after = render_deployment(unpinned, replicas=1)
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{api.DEFAULT_IMAGE_REPOSITORY}:9.9.9"
    )
    assert after["metadata"]["labels"]["app.kubernetes.io/version"] == "9.9.9"
    assert container(pinned)["image"] == f"{api.DEFAULT_IMAGE_REPOSITORY}:2024.1"
    # The API server must not store a tag either: the CRD defaults the repository only.
    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    image = schema["properties"]["spec"]["properties"]["image"]
    assert "tag" not in image["default"]
    assert "default" not in image["properties"]["tag"]


LABEL = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    "value",
    ["0.1.0", "v" * 63, "v" * 64, "x" * 128, "_private", "__", "v1_", DIGEST, "-", ".a.", ""],
)
def test_label_value_is_always_valid(value: str) -> None:
    out = label_value(value)
    assert len(out) <= 63
    assert LABEL.match(out), out
    if len(value) <= 63 and LABEL.match(value):
        assert out == value  # valid values are kept as they are
    else:
        assert out != value


def test_label_value_keeps_distinct_inputs_distinct() -> None:
    assert label_value("x" * 64) != label_value("x" * 65)
    assert label_value("_a") != label_value("-a")
    assert label_value("x" * 100) == label_value("x" * 100)


@pytest.mark.parametrize(
    "image",
    [{"tag": "t" * 128}, {"tag": "_dev"}, {"repository": "w", "digest": DIGEST}],
    ids=["tag-128", "tag-underscore", "digest"],
)
def test_version_label_is_a_valid_label_value(image: dict[str, Any]) -> None:
    """issue 9: the image tag went into app.kubernetes.io/version and broke the Deployment."""
    dep = render_deployment(pool({"image": image}), replicas=1)
    version = dep["metadata"]["labels"]["app.kubernetes.io/version"]
    assert len(version) <= 63
    assert LABEL.match(version)


def test_children_are_owned_by_the_pool() -> None:
    for child in desired_children(pool(), Capabilities(service_monitor=True)):
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-1"
        assert ref["controller"] is True
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "workerpool-operator"


def test_user_volumes_are_added_after_the_operators_own() -> None:
    """Model weights come from a user volume; tmp, TLS and /dev/shm stay where they were."""
    p = pool(
        {
            "connection": {"address": "t:7233", "tls": {"secretName": "mtls"}},
            "gpu": {"count": 1},
            "template": {
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "w"}}],
                "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            },
        }
    )
    pod = render_deployment(p, replicas=1)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "temporal-tls", "dshm", "models"]
    assert pod["volumes"][-1]["persistentVolumeClaim"] == {"claimName": "w"}
    mounts = {m["name"]: m for m in container(p)["volumeMounts"]}
    assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}


def test_each_pool_runs_as_its_own_service_account_without_a_token() -> None:
    from workerpool_operator.render import desired_children

    p = pool()
    (sa,) = [c for c in desired_children(p, Capabilities()) if c["kind"] == "ServiceAccount"]
    assert sa["metadata"]["name"] == "p"
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["ownerReferences"][0]["uid"] == "uid-1"  # goes with the pool
    pod = render_deployment(p, replicas=1)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "p"
    assert pod["automountServiceAccountToken"] is False
    # an explicit template.serviceAccountName wins where the admin granted it (below)
    custom = pool({"template": {"serviceAccountName": "team-sa"}})
    assert (
        render_deployment(custom, replicas=1)["spec"]["template"]["spec"]["serviceAccountName"]
        == "team-sa"
    )


@pytest.mark.parametrize(
    ("account", "granted", "allowed"),
    [
        ("p", (), True),  # the pool's own account, spelled out
        ("team-sa", (), False),  # the default: no other account
        ("default", (), False),
        ("team-sa", ("ns/team-sa",), True),
        ("team-sa", ("*/team-*",), True),
        ("team-sa", ("other/team-sa",), False),  # granted in another namespace only
        ("ci-deployer", ("*/team-*",), False),
    ],
)
def test_another_service_account_needs_an_admin_grant(
    account: str, granted: tuple[str, ...], allowed: bool
) -> None:
    """A pool's pods run as another ServiceAccount of the namespace (its API rights, its cloud
    identity) only when the admin granted `namespace/name` (grants.serviceAccounts): the
    operator would otherwise create pods as an account the pool author cannot use."""
    p = pool({"template": {"serviceAccountName": account}})
    caps = Capabilities(grants=Grants(service_accounts=granted))
    if allowed:
        (dep,) = [c for c in desired_children(p, caps) if c["kind"] == "Deployment"]
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == account
        return
    with pytest.raises(
        GrantError, match=rf"serviceAccountName '{account}'.*grants.serviceAccounts"
    ):
        desired_children(p, caps)


ALL_NETWORK_GRANTS = Capabilities(grants=Grants(network=frozenset(grants.NETWORK_GRANTS)))


@pytest.mark.parametrize(
    ("address", "to"),
    [
        ("10.0.0.7:7233", [{"ipBlock": {"cidr": "10.0.0.7/32"}}]),
        ("[fd00::1]:7233", [{"ipBlock": {"cidr": "fd00::1/128"}}]),
        (
            "temporal-frontend.temporal.svc:7233",
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "temporal"}}}],
        ),
        (
            "frontend.temporal.svc.cluster.local:7233",
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "temporal"}}}],
        ),
        ("ns.a1b2c.tmprl.cloud:7233", None),  # a DNS name: by port only (granted)
    ],
)
def test_network_policy_egress_to_temporal(address: str, to: list[dict[str, Any]] | None) -> None:
    """With every network grant: the pool's rules as written."""
    from workerpool_operator.render import desired_children

    extra = {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443}]}
    p = pool(
        {
            "connection": {"address": address},
            "networkPolicy": {
                "metricsFromNamespaces": {"matchLabels": {"team": "obs"}},
                "extraEgress": [extra],
            },
        }
    )
    (np,) = [c for c in desired_children(p, ALL_NETWORK_GRANTS) if c["kind"] == "NetworkPolicy"]
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == selector_labels(p)
    (ingress,) = spec["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": p.spec.metrics.port}]  # metrics only
    temporal, dns, more = spec["egress"]
    assert temporal["ports"] == [{"protocol": "TCP", "port": 7233}]
    assert temporal.get("to") == to
    assert {p["port"] for p in dns["ports"]} == {53}
    assert "to" not in dns
    assert more == extra
    assert not [c for c in desired_children(pool(), Capabilities()) if c["kind"] == "NetworkPolicy"]


def test_network_policy_without_grants_widens_nothing() -> None:
    """Without admin grants: DNS only to the cluster DNS, metrics only from the pool's own and
    the admin's namespaces, and the widening parts refused with the grant's name."""
    from workerpool_operator.render import desired_children

    caps = Capabilities(grants=Grants(metrics_namespaces=("monitoring",)))
    p = pool({"connection": {"address": "10.0.0.7:7233"}, "networkPolicy": {}})
    (np,) = [c for c in desired_children(p, caps) if c["kind"] == "NetworkPolicy"]
    (ingress,) = np["spec"]["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In",
             "values": sorted(["monitoring", p.namespace])},
        ]}}
    ]  # fmt: skip
    _, dns = np["spec"]["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]  # fmt: skip
    extra = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    with pytest.raises(GrantError, match=r"extraEgress.*'extraEgress' network grant"):
        desired_children(pool({"networkPolicy": {"extraEgress": [extra]}}), caps)
    host = pool({"connection": {"address": "evil.example.com:443"}, "networkPolicy": {}})
    with pytest.raises(GrantError, match=r"port 443 to every address.*'hostEgressAnywhere'"):
        desired_children(host, caps)


def test_grants_from_env_refuse_unknown_names() -> None:
    got = grants.grants_from_env({
        "WORKERPOOL_NETWORK_GRANTS": "extraEgress, dnsAnywhere",
        "WORKERPOOL_METRICS_NAMESPACES": "monitoring,obs",
        "WORKERPOOL_ALLOWED_ADDRESSES": "*.tmprl.cloud:7233",
        "WORKERPOOL_SERVICE_ACCOUNTS": "payments/gpu-runner, */temporal-worker",
    })  # fmt: skip
    assert got.service_accounts == ("payments/gpu-runner", "*/temporal-worker")
    assert got.network == {"extraEgress", "dnsAnywhere"}
    assert got.metrics_namespaces == ("monitoring", "obs")
    assert got.address_allowed("ns.abc.TMPRL.cloud:7233")
    assert not got.address_allowed("evil.example.com:7233")
    assert Grants().address_allowed("anything:1")
    with pytest.raises(ValueError, match=r"unknown grant.*extraegress"):
        grants.grants_from_env({"WORKERPOOL_NETWORK_GRANTS": "extraegress"})


def test_service_monitor_labels_cannot_override_the_operators_own() -> None:
    """A pool's ServiceMonitor labels that collide with the operator's are ignored: the
    object stays in the operator's cache (pruned with the pool) and names its own pool."""
    p = pool(
        {"metrics": {"serviceMonitor": {"enabled": True, "labels": {
            "app.kubernetes.io/managed-by": "someone-else", "workerpools.io/pool": "other",
            "release": "prometheus"}}}}
    )  # fmt: skip
    (sm,) = [c for c in desired_children(p, Capabilities(service_monitor=True))
             if c["kind"] == "ServiceMonitor"]  # fmt: skip
    got = sm["metadata"]["labels"]
    assert got["app.kubernetes.io/managed-by"] == "workerpool-operator"
    assert got["workerpools.io/pool"] == "p"
    assert got["release"] == "prometheus"
