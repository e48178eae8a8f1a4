"""The one module that talks to the Kubernetes API server: an async REST client on aiohttp.

Why our own thin client: the operator sends few shapes of request (list, watch, server-side
apply, a status apply, delete, an Event), all as plain dicts like the renderers produce, and
all with paths that follow from the kind registry (`kinds.py`). aiohttp is already kopf's HTTP
stack, credentials come from kopf's public login functions (the same ones kopf uses), and there
is no thread pool, no model layer and no discovery round trip. See docs/design.md.

Every request is counted by verb and kind (`workerpool_operator_api_requests_total`), every
write also by namespace (`workerpool_operator_writes_total`), and every write first asks the
fence (leader election) whether this replica may write at all.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

from workerpool_operator import metrics
from workerpool_operator.kinds import BY_KEY, DEPLOYMENT, EVENT, Kind
from workerpool_operator.kube.errors import Conflict, Gone, NotLeader, Unauthorized, api_error
from workerpool_operator.names import MANAGERS, OPERATOR

log = logging.getLogger(__name__)

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is valid YAML
REQUEST_TIMEOUT_SECONDS = 30.0


def _materialize(data: Any, path: Any, folder: str, name: str) -> str | None:
    """A file path for PEM material given inline (base64, as kubeconfigs carry it) or by path."""
    if data:
        raw = data.encode() if isinstance(data, str) else data
        try:
            pem = base64.b64decode(raw, validate=True)
        except ValueError:
            pem = raw  # already PEM
        target = os.path.join(folder, name)
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(pem)
        return target
    return None if path is None else str(path)


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    """TLS settings for the API server from kopf's ConnectionInfo."""
    if info.insecure:
        return False
    folder = tempfile.mkdtemp(prefix="workerpool-operator-")
    ca = _materialize(info.ca_data, info.ca_path, folder, "ca.crt")
    ctx = ssl.create_default_context(cafile=ca)
    cert = _materialize(info.certificate_data, info.certificate_path, folder, "tls.crt")
    key = _materialize(info.private_key_data, info.private_key_path, folder, "tls.key")
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def login() -> kopf.ConnectionInfo:
    """In-cluster ServiceAccount first, else $KUBECONFIG (kopf's own login functions)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise RuntimeError("no Kubernetes credentials: not in a pod and no $KUBECONFIG")
    return info


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


class Kube:
    """Async client for the kinds in the registry; one per process, shared by every task."""

    def __init__(
        self,
        info: kopf.ConnectionInfo | None = None,
        *,
        may_write: Callable[[], bool] | None = None,
        field_manager: str = MANAGERS.operator,
    ) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None
        self.may_write: Callable[[], bool] = may_write or (lambda: True)
        # The manager of writes that name none (the reconciler's children and status).
        self.field_manager = field_manager

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._info is None:
                self._info = login()
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._info), limit=0)
            self._session = aiohttp.ClientSession(
                base_url=self._info.server,
                connector=connector,
                headers={"User-Agent": OPERATOR},
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        info = self._info
        assert info is not None
        if info.token:
            return {"Authorization": f"Bearer {info.token}"}
        if info.username and info.password:
            raw = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _relogin(self) -> None:
        """A 401: the ServiceAccount token rotated; read credentials again."""
        self._info = login()

    async def request(
        self,
        method: str,
        url: str,
        *,
        kind: Kind,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        namespace: str | None = None,
        write_verb: str | None = None,
    ) -> dict[str, Any] | None:
        """One request; None on 404. Counted by verb, kind and `namespace`; writes are fenced."""
        if write_verb is not None and not self.may_write():
            raise NotLeader(f"not the leader: refusing {write_verb} {kind.kind}")
        session = await self._open()
        # UTF-8 as is: the API server's YAML decoder (apply patches) refuses \\u surrogate escapes.
        data = (
            None
            if body is None
            else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        )
        for attempt in (1, 2):
            metrics.API_REQUESTS.labels(method, kind.kind, namespace or "").inc()
            async with session.request(
                method,
                url,
                params=params,
                data=data,
                headers={**self._headers(), "Content-Type": content_type},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as resp:
                if resp.status == 401 and attempt == 1:
                    await self._relogin()
                    continue
                if resp.status == 404:
                    return None
                text = await resp.text()
                if resp.status >= 400:
                    raise api_error(resp.status, text)
                if write_verb is not None:
                    metrics.WRITES.labels(namespace or "", kind.kind, write_verb).inc()
                return json.loads(text) if text else {}
        raise Unauthorized(401, "Unauthorized", "credentials rejected twice", [])

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
        self, kind: Kind, namespace: str | None = None, selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (paginated), and the list's resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if selector:
            params["labelSelector"] = selector
        while True:
            page = await self.request(
                "GET", path(kind, namespace), kind=kind, params=params, namespace=namespace
            )
            if page is None:
                return [], ""
            items += page.get("items") or []
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
        session = await self._open()
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if selector:
            params["labelSelector"] = selector
        metrics.API_REQUESTS.labels("WATCH", kind.kind, namespace or "").inc()
        async with session.get(
            path(kind, namespace),
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
        ) as resp:
            if resp.status == 410:
                raise Gone()
            if resp.status == 401:
                await self._relogin()
            if resp.status >= 400:
                raise api_error(resp.status, await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise Gone()
                    raise api_error(int(status.get("code") or 500), json.dumps(status))
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
        meta = involved["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
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
        await self.request(
            "POST",
            path(EVENT, meta["namespace"]),
            kind=EVENT,
            body=body,
            namespace=meta["namespace"],
            write_verb="create",
        )
