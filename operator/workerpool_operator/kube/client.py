"""The one module that talks to the Kubernetes API server: an async REST client on aiohttp.

Why our own thin client: the operator sends few shapes of request (list, watch, server-side
apply, a status apply, delete, an Event), all as plain dicts like the renderers produce, and
all with paths that follow from the kind registry (`kinds.py`). aiohttp is already kopf's HTTP
stack, credentials come from kopf's public login functions (the same ones kopf uses), and there
is no thread pool, no model layer and no discovery round trip. See docs/design.md.

The HTTP side (credentials, TLS, the session, counting and the leader fence) is
`kube/transport.py`; this module has the verbs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from workerpool_operator.kinds import BY_KEY, DEPLOYMENT, EVENT, Kind
from workerpool_operator.kube.errors import Conflict
from workerpool_operator.kube.transport import Transport
from workerpool_operator.names import OPERATOR

log = logging.getLogger(__name__)

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is valid YAML


def path(
    kind: Kind,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """REST path of a collection or object of `kind` (namespace None: all namespaces)."""
    base = f"/apis/{kind.api_version}" if "/" in kind.api_version else f"/api/{kind.api_version}"
    plural = kind.plural.split("/")[0]
    if kind.namespaced and namespace is not None:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name)}"
    if subresource:
        base += f"/{subresource}"
    return base


def kind_of(obj: Mapping[str, Any]) -> Kind:
    found = BY_KEY.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if found is None:
        raise KeyError(f"{obj.get('apiVersion')} {obj.get('kind')} is not a registered kind")
    return found


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


class Kube(Transport):
    """Async client for the kinds in the registry; one per process, shared by every task."""

    async def get(
        self, kind: Kind, namespace: str | None, name: str, *, cached: bool = False
    ) -> dict[str, Any] | None:
        """One object; `cached` reads the API server's watch cache (resourceVersion=0), which
        costs no etcd round trip and may lag a write by a moment."""
        params = {"resourceVersion": "0"} if cached else None
        return await self.request(
            "GET", path(kind, namespace, name), kind=kind, params=params, namespace=namespace
        )

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        selector: str | None = None,
        *,
        each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        page_size: int = 500,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (paginated; `each` applied page by page, so only the results of earlier
        pages are held), and the list's resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(page_size)}
        if selector:
            params["labelSelector"] = selector
        while True:
            page = await self.request(
                "GET", path(kind, namespace), kind=kind, params=params, namespace=namespace
            )
            if page is None:
                return [], ""
            got = page.get("items") or []
            items += got if each is None else [each(i) for i in got]
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            params["continue"] = meta["continue"]

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch; Gone on 410."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if selector:
            params["labelSelector"] = selector
        async for event in self.stream(
            path(kind, namespace),
            params,
            kind=kind,
            namespace=namespace,
            read_timeout=timeout_seconds,
        ):
            yield WatchEvent(str(event.get("type")), event.get("object") or {})

    async def apply(
        self, obj: Mapping[str, Any], *, manager: str | None = None, force: bool = True
    ) -> dict[str, Any] | None:
        """Server-side apply of a whole object under `manager`."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        params = {
            "fieldManager": manager or self.field_manager,
            "force": "true" if force else "false",
        }
        return await self.request(
            "PATCH",
            path(kind, meta.get("namespace"), meta["name"]),
            kind=kind,
            params=params,
            body=obj,
            content_type=APPLY_CONTENT_TYPE,
            namespace=meta.get("namespace"),
            write_verb="apply",
        )

    async def apply_status(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        manager: str | None = None,
    ) -> dict[str, Any] | None:
        """Server-side apply of a status fragment: each manager owns its own fields."""
        body = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        return await self.request(
            "PATCH",
            path(kind, namespace, name, "status"),
            kind=kind,
            params={"fieldManager": manager or self.field_manager, "force": "true"},
            body=body,
            content_type=APPLY_CONTENT_TYPE,
            namespace=namespace,
            write_verb="status",
        )

    async def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = "application/merge-patch+json",
        manager: str | None = None,
        verb: str = "patch",
    ) -> dict[str, Any] | None:
        """A merge or JSON patch (an Update operation in managedFields, unlike apply)."""
        return await self.request(
            "PATCH",
            path(kind, namespace, name),
            kind=kind,
            params={"fieldManager": manager or self.field_manager},
            body=patch,
            content_type=content_type,
            namespace=namespace,
            write_verb=verb,
        )

    async def delete(self, kind: Kind, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete if present (and, with `uid`, only that incarnation); True when deleted."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}  # type: ignore[assignment]
        try:
            done = await self.request(
                "DELETE",
                path(kind, namespace, name),
                kind=kind,
                body=body,
                namespace=namespace,
                write_verb="delete",
            )
        except Conflict:  # the uid precondition failed: not ours any more
            return False
        return done is not None

    async def apply_replicas(self, namespace: str, name: str, replicas: int, manager: str) -> None:
        """Own a Deployment's spec.replicas at `replicas` under `manager` (server-side apply
        of that one field: the scaler's writes and the engine handover)."""
        await self.apply(
            {
                "apiVersion": DEPLOYMENT.api_version,
                "kind": DEPLOYMENT.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas},
            },
            manager=manager,
        )

    async def try_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, type_: str = "Normal"
    ) -> None:
        """An Event that may fail: it tells a user what happened, it never blocks the work."""
        try:
            await self.event(involved, reason=reason, message=message, type_=type_)
        except Exception as exc:
            log.debug("event %s on %s not recorded: %s", reason, involved.get("kind"), exc)

    async def event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = OPERATOR,
    ) -> None:
        """Record a core/v1 Event on an object (why it scaled, what failed)."""
        namespace = involved["metadata"]["namespace"]
        await self.request(
            "POST",
            path(EVENT, namespace),
            kind=EVENT,
            body=event_body(involved, reason, message, type_, component),
            namespace=namespace,
            write_verb="create",
        )


def event_body(
    involved: Mapping[str, Any], reason: str, message: str, type_: str, component: str
) -> dict[str, Any]:
    meta = involved["metadata"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
    }
