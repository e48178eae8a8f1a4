"""The hostile-input bed: the generated CRD, one namespace and the real operator watching it.

The operator runs as a process (`python -m workerpool_operator -n NS`), as in production, with
its log in a file so the suite can count tracebacks. Pools are created through the API directly
(threads, one client each) so hundreds of specs cost seconds, and every rejection comes back as a
structured Status with the fields the API server names.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import wait_established
from testbed.operator import OperatorProcess
from testbed.pytest_cluster import KubeCluster
from testbed.wait import poll

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
GROUP, VERSION, PLURAL = "workerpools.io", "v1alpha1", "temporalworkerpools"
CREATE_THREADS = 8


@dataclass
class Outcome:
    """What became of one spec: rejected (with the API's causes) or admitted."""

    name: str
    spec: Any
    admitted: bool = False
    status_code: int = 0
    message: str = ""
    causes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HostileBed:
    kube: KubeCluster
    namespace: str
    operator: OperatorProcess
    _local: threading.local = field(default_factory=threading.local)

    @property
    def log(self) -> Path:
        return self.operator.log_path

    def _api(self) -> Any:
        from kubernetes import client

        if not hasattr(self._local, "api"):
            self._local.api = client.CustomObjectsApi(self.kube.api_client())
        return self._local.api

    def create(self, name: str, spec: Any) -> Outcome:
        from kubernetes.client.exceptions import ApiException

        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TemporalWorkerPool",
            "metadata": {"name": name},
            "spec": spec,
        }
        outcome = Outcome(name, spec)
        try:
            self._api().create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, field_validation="Strict"
            )
            outcome.admitted = True
        except ApiException as exc:
            outcome.status_code = int(exc.status or 0)
            try:
                status = json.loads(exc.body or "{}")
            except ValueError:
                status = {"message": str(exc.body)}
            outcome.message = str(status.get("message", ""))
            outcome.causes = list((status.get("details") or {}).get("causes") or [])
        return outcome

    def create_all(self, specs: list[tuple[str, Any]]) -> list[Outcome]:
        """Create every pool, CREATE_THREADS at a time; results in input order."""
        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            return list(pool.map(lambda item: self.create(*item), specs))

    def pools(self) -> dict[str, dict[str, Any]]:
        listing = self._api().list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        return {p["metadata"]["name"]: p for p in listing["items"]}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.kube.get(kind, name, namespace=self.namespace)

    def wait_observed(self, names: set[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Poll until every named pool is observed (see `observed`) or the timeout passes;
        the pools as last listed either way (the caller asserts on what is missing)."""

        def all_observed() -> dict[str, dict[str, Any]] | None:
            pools = self.pools()
            return pools if all(n in pools and observed(pools[n]) for n in names) else None

        last = poll(all_observed, wait_s=timeout, interval=2, not_yet=None)
        return last.value if last.ok else self.pools()

    def deployments(self) -> dict[str, dict[str, Any]]:
        listing = self.kube.get("deployments", namespace=self.namespace)
        return {d["metadata"]["name"]: d for d in listing["items"]}

    def tracebacks(self) -> list[str]:
        """Each traceback in the operator's log, with a little context."""
        text = self.log.read_text(errors="replace")
        out = []
        start = text.find("Traceback")
        while start != -1:
            out.append(text[max(0, start - 300) : start + 1200])
            start = text.find("Traceback", start + 1)
        return out


def ready_condition(pool: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (pool.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def observed(pool: dict[str, Any]) -> bool:
    """status.observedGeneration is current and Ready carries a reason."""
    status = pool.get("status") or {}
    ready = ready_condition(pool)
    return (
        status.get("observedGeneration") == pool["metadata"].get("generation")
        and ready is not None
        and bool(ready.get("reason"))
    )


def names_a_field(outcome: Outcome) -> bool:
    """The rejection names the offending field (a cause under spec or metadata, or in text)."""
    if outcome.status_code not in (400, 422):
        return False
    for cause in outcome.causes:
        where = str(cause.get("field") or "")
        text = str(cause.get("message") or "")
        if where.startswith(("spec.", "metadata.")):
            return True
        if where == "spec" and ("spec" in text or "." in text):
            return True
    # strict decoding errors (unknown fields) name the field in the message only
    return 'unknown field "spec.' in outcome.message


@pytest.fixture(scope="module")
def bed(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileBed]:
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kube_cluster.kubeconfig, "temporalworkerpools.workerpools.io")
    namespace = f"hostile-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    log_dir = tmp_path_factory.mktemp("hostile")
    op = OperatorProcess(kube_cluster.kubeconfig, "hostile", "-n", namespace, log_dir=log_dir)
    try:
        yield HostileBed(kube_cluster, namespace, op)
    finally:
        op.stop()
        kube_cluster.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def field_named(message: str) -> bool:
    """A status message names the field it is about (spec.x or metadata.x)."""
    return re.search(r"\b(spec|metadata)\.[A-Za-z]", message) is not None


def deployment_mismatch(
    pool: dict[str, Any], deployments: dict[str, dict[str, Any]]
) -> list[str] | None:
    """Where the live Deployment differs from what the operator's pure planner renders for the
    pool as stored, field by field (replicas only when the spec fixes them); [] when it matches,
    None when the planner renders no Deployment for it (its status must then say why). The
    Deployment is the one the planner names: the pool's, or a versioned pool's target build."""
    from workerpool_operator.kinds import DEPLOYMENT
    from workerpool_operator.reconcile.diff import is_subset
    from workerpool_operator.reconcile.model import Observed
    from workerpool_operator.reconcile.plan import plan
    from workerpool_operator.render import Capabilities

    want = next(
        (w.manifest for w in plan(pool, Capabilities(True, True), Observed()).writes
         if w.kind is DEPLOYMENT),
        None,
    )  # fmt: skip
    if want is None:
        return None
    live = deployments.get(want["metadata"]["name"])
    if live is None:
        return ["no Deployment"]
    out = []
    if "replicas" in want["spec"] and want["spec"]["replicas"] != live["spec"].get("replicas"):
        out.append(f"spec.replicas: want {want['spec']['replicas']}, live "
                   f"{live['spec'].get('replicas')}")  # fmt: skip
    # Each field alone through is_subset, as the operator compares: a field the API server
    # drops when empty (an empty list) matches its absence.
    template, have = want["spec"]["template"], live["spec"]["template"]
    for key, value in template["metadata"].items():
        if not is_subset({key: value}, have["metadata"]):
            out.append(f"spec.template.metadata.{key}")
    for key, value in template["spec"].items():
        if key == "containers":
            for i, container in enumerate(value):
                live_c: dict[str, Any] = next((c for c in have["spec"]["containers"]
                                               if c["name"] == container["name"]), {})  # fmt: skip
                out += [f"spec.template.spec.containers[{i}].{k}" for k, v in container.items()
                        if not is_subset({k: v}, live_c)]  # fmt: skip
        elif not is_subset({key: value}, have["spec"]):
            out.append(f"spec.template.spec.{key}")
    return out


Check = Callable[[HostileBed, dict[str, Any]], None]
