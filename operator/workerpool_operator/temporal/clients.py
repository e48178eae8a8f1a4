"""One Temporal client per connection (address, namespace and credentials), shared by the
scaler, the zero guard and the connection health check: the pool of clients, as
temporal-worker-controller's `clientpool`, with an injectable dialer for tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.client import Client, TLSConfig

from workerpool_operator.temporal.connections import Connection

# A Temporal client nobody asked through for this long is dropped.
CLIENT_IDLE_SECONDS = 600.0
CLIENT_IDENTITY = "workerpool-operator-autoscaler"
CONNECT_TIMEOUT_SECONDS = 10.0

ConnectFn = Callable[..., Awaitable[Client]]


def tls_config(conn: Connection) -> bool | TLSConfig:
    """The SDK's TLS setting for a connection: off, system roots, or the given material."""
    if not conn.tls:
        return False
    if not (conn.server_root_ca or conn.client_cert or conn.server_name):
        return True  # system roots
    return TLSConfig(
        server_root_ca_cert=conn.server_root_ca,
        client_cert=conn.client_cert,
        client_private_key=conn.client_key,
        domain=conn.server_name,
    )


class TemporalClients:
    def __init__(
        self, *, connect: ConnectFn = Client.connect, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._clients: dict[Connection, Client] = {}
        self._used: dict[Connection, float] = {}
        self._lock = asyncio.Lock()

    async def get(self, conn: Connection) -> Client:
        """The client for `conn`, connecting lazily: an unreachable server surfaces as a call
        error (with the caller's back-off) instead of blocking anyone here."""
        self._used[conn] = self._clock()
        async with self._lock:
            found = self._clients.get(conn)
            if found is None:
                found = await self._connect(
                    conn.address,
                    namespace=conn.namespace,
                    tls=tls_config(conn),
                    api_key=conn.api_key,
                    lazy=True,
                    # A silent endpoint (accepts TCP, never answers TLS) fails the call after
                    # this instead of holding it: the SDK's default is no limit at all.
                    connect_timeout=timedelta(seconds=CONNECT_TIMEOUT_SECONDS),
                    identity=CLIENT_IDENTITY,
                )
                self._clients[conn] = found
            return found

    def touch(self, conn: Connection) -> None:
        """`conn` is still wanted (a caller served from its own cache keeps it alive)."""
        self._used[conn] = self._clock()

    def connections(self) -> list[Connection]:
        """The connections that have a client now."""
        return list(self._clients)

    def evict_idle(self, idle_seconds: float = CLIENT_IDLE_SECONDS) -> list[Connection]:
        """Drop clients unused for `idle_seconds` (rotated credentials, deleted pools leave
        them behind); the SDK closes a dropped client's connection. Returns those dropped."""
        now = self._clock()
        stale = [c for c, used in self._used.items() if now - used > idle_seconds]
        for conn in stale:
            self._used.pop(conn, None)
            self._clients.pop(conn, None)
        return stale

    def close(self) -> None:
        self._clients.clear()
        self._used.clear()
