"""The one HTTP port: /healthz, /readyz and a single /metrics.

/metrics concatenates the SDK's Prometheus text (Core serves it on an internal 127.0.0.1 port)
with the runtime's own registry, so a pod needs one scrape target and one port.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import ClientSession, ClientTimeout, web

from worker_runtime import metrics
from worker_runtime.contract import HEALTHZ_PATH, METRICS_PATH, READYZ_PATH

log = logging.getLogger("worker_runtime.http")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    """Shared state behind the probes; the runtime flips `ready`, the loop ticks `heartbeat`."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "starting"
        self.heartbeat = time.monotonic()

    def set_ready(self, ready: bool, reason: str) -> None:
        self.ready, self.reason = ready, reason
        metrics.READY.set(1 if ready else 0)


class HttpServer:
    """aiohttp app on 0.0.0.0:<metrics_port>; `sdk_metrics_url` is Core's internal endpoint."""

    def __init__(self, health: Health, port: int, sdk_metrics_url: str | None) -> None:
        self.health = health
        self.port = port
        self.sdk_metrics_url = sdk_metrics_url
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, host: str = "0.0.0.0") -> None:
        """Listen on all interfaces: kubelet probes and Prometheus come from outside the pod."""
        app = web.Application()
        app.router.add_get(HEALTHZ_PATH, self._healthz)
        app.router.add_get(READYZ_PATH, self._readyz)
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, self.port, reuse_address=True).start()
        self._session = ClientSession(timeout=ClientTimeout(total=5))
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def _tick(self) -> None:
        # A blocked event loop stops ticking, which /healthz reports as a failure.
        while True:
            self.health.heartbeat = time.monotonic()
            await asyncio.sleep(1)

    async def _healthz(self, _: web.Request) -> web.Response:
        stalled = time.monotonic() - self.health.heartbeat
        if stalled > 30:
            return web.Response(status=503, text=f"event loop stalled for {stalled:.0f}s\n")
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.health.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {self.health.reason}\n")

    async def _metrics(self, _: web.Request) -> web.Response:
        parts: list[bytes] = []
        if self.sdk_metrics_url and self._session is not None:
            try:
                async with self._session.get(self.sdk_metrics_url) as resp:
                    body = await resp.read()
                    parts.append(body if body.endswith(b"\n") or not body else body + b"\n")
            except Exception as err:  # Core's endpoint gone should not hide our own metrics.
                parts.append(f"# SDK metrics unavailable: {type(err).__name__}\n".encode())
        parts.append(metrics.render())
        return web.Response(body=b"".join(parts), headers={"Content-Type": CONTENT_TYPE})
