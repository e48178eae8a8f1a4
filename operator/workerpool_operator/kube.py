"""The one module that talks to the Kubernetes API server.

Server-side apply with one field manager per writer, and no request at all that would write
when the live object already matches: the applied manifest's hash (catches removed fields) and a
semantic subset check against the live object (catches edits by others) must both agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from kubernetes.utils.quantity import parse_quantity

from workerpool_operator import metrics

log = logging.getLogger(__name__)

FIELD_MANAGER = "workerpool-operator"
APPLIED_HASH_ANNOTATION = "workerpools.io/applied-hash"
_DISCOVERY_RETRY_SECONDS = 30.0


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of what we apply (without the hash annotation itself)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of `obj` carrying its own hash as an annotation."""
    digest = manifest_hash(obj)
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), APPLIED_HASH_ANNOTATION: digest}
    return {**obj, "metadata": meta}


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, int | str | float) and isinstance(have, int | str | float):
        try:  # the API server canonicalizes quantities: 1024Mi == 1Gi, 2 == "2"
            return Decimal(parse_quantity(want)) == Decimal(parse_quantity(have))
        except (ValueError, TypeError, ArithmeticError):
            return False
    return False


# The API server drops empty optional fields (`value: ""` in an EnvVar, say): missing == empty.
_OMITTED_WHEN_EMPTY: tuple[Any, ...] = ("", None, {}, [])


def _list_map_key(items: list[Any]) -> str | None:
    """The key of a Kubernetes map-list (`name` or `type`), if every entry carries it."""
    for key in ("name", "type"):
        if items and all(isinstance(i, Mapping) and key in i for i in items):
            return key
    return None


def is_subset(want: Any, have: Any) -> bool:
    """True when every field we set is present and equal in the live object (defaults ignored)."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return False
        return all(
            is_subset(v, have[k]) if k in have else v in _OMITTED_WHEN_EMPTY
            for k, v in want.items()
        )
    if isinstance(want, list):
        if not isinstance(have, list):
            return False
        key = _list_map_key(want)
        if key is not None and _list_map_key(have) == key:
            # map-lists (containers, env, conditions...) match by key; others may own entries
            by_key = {h[key]: h for h in have}
            return all(w[key] in by_key and is_subset(w, by_key[w[key]]) for w in want)
        if len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return _same_scalar(want, have)


def up_to_date(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `desired` (already carrying its hash) would change nothing."""
    if live is None:
        return False
    want_hash = desired.get("metadata", {}).get("annotations", {}).get(APPLIED_HASH_ANNOTATION)
    have_hash = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    return want_hash == have_hash and is_subset(desired, live)


def load_config() -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        # The library reads $KUBECONFIG at import time; honour the value at call time.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.ApiClient()


class Kube:
    """Thin, thread-safe wrapper over the dynamic client (kopf runs sync handlers in threads)."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or load_config()
        self.dyn = DynamicClient(self.api)
        self._lock = threading.Lock()
        self._missing: dict[tuple[str, str], float] = {}
        self.writes = 0  # write requests sent (apply, status, delete, event)

    def _wrote(self, namespace: str, kind: str, verb: str) -> None:
        with self._lock:
            self.writes += 1
        metrics.WRITES.labels(namespace, kind, verb).inc()

    def resource(self, api_version: str, kind: str) -> Any | None:
        """The API resource, or None when the cluster does not serve it (CRD not installed)."""
        key = (api_version, kind)
        with self._lock:
            missing_since = self._missing.get(key)
            if missing_since and time.monotonic() - missing_since < _DISCOVERY_RETRY_SECONDS:
                return None
        try:
            res = self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            if missing_since is not None:  # looked before: refresh discovery once per window
                self.dyn.resources.invalidate_cache()
                try:
                    res = self.dyn.resources.get(api_version=api_version, kind=kind)
                except ResourceNotFoundError:
                    res = None
            else:
                res = None
        with self._lock:
            if res is None:
                self._missing[key] = time.monotonic()
            else:
                self._missing.pop(key, None)
        return res

    def served(self, api_version: str, kind: str) -> bool:
        return self.resource(api_version, kind) is not None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        res = self.resource(api_version, kind)
        if res is None:
            return None
        try:
            obj = self.dyn.get(res, name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(obj.to_dict())

    def apply(self, obj: Mapping[str, Any], *, manager: str = FIELD_MANAGER) -> bool:
        """Server-side apply `obj` unless the live object already matches; True when written."""
        desired = with_hash(obj)
        meta = desired["metadata"]
        live = self.get(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
        if up_to_date(desired, live):
            return False
        res = self.resource(desired["apiVersion"], desired["kind"])
        if res is None:
            raise ResourceNotFoundError(f"{desired['apiVersion']}/{desired['kind']} not served")
        self.dyn.server_side_apply(
            res,
            body=desired,
            name=meta["name"],
            namespace=meta["namespace"],
            field_manager=manager,
            force_conflicts=True,
        )
        self._wrote(meta["namespace"], desired["kind"], "apply")
        log.info("applied %s %s/%s", desired["kind"], meta["namespace"], meta["name"])
        return True

    def patch_replicas(
        self, api_version: str, kind: str, namespace: str, name: str, replicas: int, manager: str
    ) -> None:
        """Apply only spec.replicas with the autoscaler's own field manager."""
        res = self.resource(api_version, kind)
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }
        self.dyn.server_side_apply(
            res,
            body=body,
            name=name,
            namespace=namespace,
            field_manager=manager,
            force_conflicts=True,
        )
        self._wrote(namespace, kind, "scale")

    def apply_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        live_status: Mapping[str, Any] | None,
        *,
        manager: str = FIELD_MANAGER,
    ) -> bool:
        """Server-side apply a status fragment (owned per manager) unless already current."""
        if live_status is not None and is_subset(status, live_status):
            return False
        res = self.resource(api_version, kind)
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        self.dyn.server_side_apply(
            res.status if res is not None else None,
            body=body,
            name=name,
            namespace=namespace,
            field_manager=manager,
            force_conflicts=True,
        )
        self._wrote(namespace, kind, "status")
        return True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete if present; True when something was deleted."""
        res = self.resource(api_version, kind)
        if res is None:
            return False
        try:
            self.dyn.delete(res, name=name, namespace=namespace)
        except NotFoundError:
            return False
        self._wrote(namespace, kind, "delete")
        return True

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        res = self.resource(api_version, kind)
        if res is None:
            return []
        items = self.dyn.get(res, namespace=namespace, label_selector=label_selector).items
        return [dict(i.to_dict()) for i in items]

    def event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
    ) -> None:
        """Record a core/v1 Event on the pool (why it scaled, what failed)."""
        meta = involved["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": FIELD_MANAGER,
        }
        res = self.resource("v1", "Event")
        self.dyn.create(res, body=body, namespace=meta["namespace"])
        self._wrote(meta["namespace"], "Event", "create")
