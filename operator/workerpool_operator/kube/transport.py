"""The HTTP side of the Kubernetes client: credentials (kopf's login functions), TLS, one
aiohttp session, and `request`/`stream` with a fresh login after a 401, the leader fence
before every write, and a count of every request (`workerpool_operator_api_requests_total`)
and write (`workerpool_operator_writes_total`)."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import kopf

from workerpool_operator import metrics
from workerpool_operator.kinds import Kind
from workerpool_operator.kube.errors import Gone, NotLeader, Unauthorized, api_error
from workerpool_operator.names import MANAGERS, OPERATOR

# What YAML may not hold raw but reads from a \u escape: C1 controls and DEL, U+FFFE/FFFF
# (outside its printable set), and NEL, U+2028/2029 (line breaks to YAML: a double-quoted
# scalar would fold them into spaces). JSON text can carry them raw, and the API server decodes
# apply patches as YAML, so a pool with such a character in a field it copies (an env value, a
# resource name) failed with "control characters are not allowed", naming no field.
_YAML_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def encode_body(body: Any) -> bytes:
    """A request body as JSON that is also YAML the API server reads back unchanged: UTF-8 as
    is (its YAML decoder refuses the \\u surrogate pairs of ensure_ascii for characters beyond
    the BMP), with only what YAML would refuse or fold escaped."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return _YAML_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


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


# aiohttp's line limit is twice this: 4 MiB, above any object the API server stores.
READ_BUFSIZE = 2 * 1024 * 1024


class Transport:
    """Requests to the API server; `Kube` adds the verbs the operator uses."""

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
                # A watch event is one line, as large as the object (a Secret holds up to
                # 1 MiB, ~1.4 MB as JSON): aiohttp's default line limit (512 KiB) made one
                # tenant's large opted-in Secret end the Secret watch for every tenant.
                read_bufsize=READ_BUFSIZE,
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
        data = None if body is None else encode_body(body)
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

    async def stream(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        kind: Kind,
        namespace: str | None,
        read_timeout: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The decoded lines of a watch until the server ends it; Gone on 410."""
        session = await self._open()
        metrics.API_REQUESTS.labels("WATCH", kind.kind, namespace or "").inc()
        async with session.get(
            url,
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=read_timeout + 30),
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
                yield event
