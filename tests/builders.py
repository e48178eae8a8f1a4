"""Builders for the objects tests create and the readings tests take, in one place.

`pool()` and `connection()` return manifests as a user would apply them (a dict for
`kubectl apply`); `condition()` and `replicas_owners()` read what the operator wrote back.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from temporalio.client import Client

from testbed.temporal import TemporalDevServer
from tests.unit.conn_helper import resolved_pool
from workerpool_operator import kinds
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.versioning.execute import Backoff, observe
from workerpool_operator.versioning.model import DeploymentState

API_VERSION = "workerpools.io/v1alpha1"
# In-cluster Temporal: the address pods would dial (nothing needs to answer in most tests).
IN_CLUSTER = {"address": "temporal.temporal.svc:7233"}
# An address where nothing listens: the Builtin scaler holds replicas instead of scaling.
NOWHERE = {"address": "127.0.0.1:1"}


class Cluster(Protocol):
    """What the readers need of testbed.pytest_cluster.KubeCluster."""

    def get(self, kind: str, name: str | None = None, *, namespace: str | None = None) -> Any: ...

    def kubectl(self, *args: str) -> str: ...


def pool(
    name: str = "orders",
    namespace: str | None = None,
    *,
    connection: Mapping[str, Any] | None = None,
    connection_ref: Mapping[str, Any] | None = None,
    queue: str | None = None,
    workflows: tuple[str, ...] = ("app.workflows:Flow",),
    **spec: Any,
) -> dict[str, Any]:
    """A TemporalWorkerPool: workflows only on a queue named after it, unless told otherwise.

    `connection_ref` replaces the inline `connection` (IN_CLUSTER by default).
    """
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    where: dict[str, Any] = (
        {"connectionRef": dict(connection_ref)}
        if connection_ref is not None
        else {"connection": dict(connection if connection is not None else IN_CLUSTER)}
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "TemporalWorkerPool",
        "metadata": meta,
        "spec": {**where, "taskQueue": queue or name, "workflows": list(workflows), **spec},
    }


def pool_model(spec: dict[str, Any] | None = None, name: str = "p") -> TemporalWorkerPool:
    """The pool model the renderers see (its connection resolved as the planner does)."""
    base: dict[str, Any] = {
        "connection": {"address": "temporal:7233"},
        "taskQueue": "q",
        "workflows": ["app.wf:Flow"],
    }
    base.update(spec or {})
    return resolved_pool(
        {"metadata": {"name": name, "namespace": "ns", "uid": "uid-1"}, "spec": base}
    )


def connection(
    name: str = "prod", namespace: str | None = None, *, cluster: bool = False, **spec: Any
) -> dict[str, Any]:
    """A TemporalConnection (or, with cluster=True, a ClusterTemporalConnection)."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None and not cluster:
        meta["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterTemporalConnection" if cluster else "TemporalConnection",
        "metadata": meta,
        "spec": {**IN_CLUSTER, **spec},
    }


def patch_spec(kube: Cluster, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
    """Merge-patch a pool's spec as a user would (None removes a field)."""
    body = json.dumps({"spec": dict(spec)})
    kube.kubectl("patch", "twp", name, "-n", namespace, "--type=merge", "-p", body)


def condition_of(obj: Mapping[str, Any], ctype: str = "Ready") -> dict[str, Any]:
    """The status condition of type `ctype` of any object; {} while it is not set."""
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conds if c.get("type") == ctype), {})


def condition(
    kube: Cluster, namespace: str, name: str, ctype: str = "Ready", kind: str = "twp"
) -> dict[str, Any]:
    """A live pool's (or other object's) condition of type `ctype`; {} while it is not set."""
    return condition_of(kube.get(kind, name, namespace=namespace), ctype)


def replicas_owners(kube: Cluster, namespace: str, name: str) -> set[tuple[str, str]]:
    """(field manager, operation) pairs that own the Deployment's spec.replicas."""
    out = kube.kubectl(
        "get", "deployment", name, "-n", namespace, "-o", "json", "--show-managed-fields"
    )
    return {
        (m["manager"], m["operation"])
        for m in json.loads(out)["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1", {}).get("f:spec") or {})
    }


def deployment_replicas(kube: Cluster, namespace: str, name: str) -> int:
    """The Deployment's spec.replicas (Kubernetes' default of 1 when unset)."""
    return int(kube.get("deployment", name, namespace=namespace)["spec"].get("replicas", 1))


async def never_below(
    kube: Cluster, namespace: str, name: str, floor: int, seconds: float
) -> list[int]:
    """Sample the Deployment's replicas for `seconds`; fail at once if they drop below floor."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = await asyncio.to_thread(deployment_replicas, kube, namespace, name)
        seen.append(r)
        assert r >= floor, f"replicas dropped to {r} (history {seen})"
        await asyncio.sleep(0.3)
    return seen


# --- RBAC: what the kind registry needs, as (group, resource, verb) triples ---------------------

Triple = tuple[str, str, str]


def triples(rules: Iterable[dict[str, Any]]) -> set[Triple]:
    """Every (group, resource, verb) a list of PolicyRules grants."""
    out: set[Triple] = set()
    for rule in rules:
        assert not rule.get("resourceNames"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def needed(kind_list: Iterable[kinds.Kind]) -> set[Triple]:
    return {(k.group, k.plural, v) for k in kind_list for v in k.verbs}


CLUSTER_NEEDS = needed((*kinds.CLUSTER_RULE_KINDS, *kinds.CLUSTER_ONLY_KINDS))
LEASE_NEEDS = needed(kinds.OWN_NAMESPACE_KINDS)


# --- admission: a valid pool document and variations of it ------------------------------------

VALID: dict[str, Any] = {
    "apiVersion": "workerpools.io/v1alpha1",
    "kind": "TemporalWorkerPool",
    "metadata": {"name": "pool"},
    "spec": {
        "connection": {"address": "temporal:7233"},
        "taskQueue": "q",
        "workflows": ["app.workflows:Flow"],
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    doc["spec"].update(changes)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}  # None: remove it
    return doc


def assert_rejected(kube: Any, namespace: str, case: str, doc: dict[str, Any], msg: str) -> None:
    """Admission refuses `doc` with a message containing `msg`, and nothing is stored."""
    result = kube.apply(doc, namespace=namespace, check=False)
    assert result.returncode != 0, f"{case} was admitted"
    assert msg in result.stderr, result.stderr
    name = doc["metadata"]["name"]
    assert not kube.exists("temporalworkerpools", name, namespace=namespace)


# --- versioned pools (the e2e tests of tests/e2e/test_versioning*.py) -------------------------


def versioned_pool(name: str, queue: str, server: TemporalDevServer, app: str,
                   **versioning: Any) -> dict[str, Any]:  # fmt: skip
    """A versioned pool on `server` running the test app `app` (tests/runtime/versioned_v*.py)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "TemporalWorkerPool",
        "metadata": {"name": name},
        "spec": {
            "connection": {"address": server.address, "namespace": server.namespace},
            "taskQueue": queue,
            "replicas": 1,
            "workflows": [f"{app}:OrderFlow", f"{app}:Smoke"],
            "activities": [f"{app}:ACTIVITIES"],
            "versioning": {"defaultBehavior": "Pinned", **versioning},
        },
    }


def autoscaled_versioned_pool(
    name: str,
    queue: str,
    server: TemporalDevServer,
    app: str,
    autoscaling: dict[str, Any],
    **versioning: Any,
) -> dict[str, Any]:
    """`versioned_pool` whose builds KEDA or an HPA scales (no spec.replicas), rolled out all
    at once and retired as soon as a build drains (sunset delays 0)."""
    sunset = {"scaleDownDelaySeconds": 0, "deleteDelaySeconds": 0}
    body = versioned_pool(name, queue, server, app, **{"strategy": "AllAtOnce", "sunset": sunset,
                                                       **versioning})  # fmt: skip
    del body["spec"]["replicas"]
    body["spec"]["autoscaling"] = autoscaling
    return body


def pool_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.get("temporalworkerpool", name, namespace=ns).get("status") or {})


def event_reasons(cluster: Cluster, ns: str, name: str) -> list[str]:
    """The reasons of the Events about the object `name` in `ns`."""
    listed = cluster.get("events", namespace=ns)
    return [e["reason"] for e in listed["items"]
            if e["involvedObject"].get("name") == name]  # fmt: skip


async def describe_deployment(client: Client, deployment: str) -> DeploymentState:
    """DescribeWorkerDeployment from the test's side; Temporal rate-limits reads per deployment
    ("too many requests issued to Worker Deployment"), which only means "ask again"."""
    for _ in range(60):
        try:
            return await observe(client, deployment)
        except Backoff:
            await asyncio.sleep(0.5)
    return await observe(client, deployment)
