"""A Temporal front that requires an API key (hack/apikeyfront/main.go), for tests.

The dev server accepts anything and has no TLS; Temporal Cloud requires TLS and a key. This
front terminates TLS, lets through only gRPC calls whose `authorization` header is
`Bearer <the key>`, answers the others UNAUTHENTICATED, and logs every call (method, key
presented, key accepted), so a test proves what a client sent on the wire.

It is built from its one Go file on first use (standard library only, seconds) into the tool
cache, named by the file's hash so an edit rebuilds it.

    with api_key_front(dev_server.address, server_pair, "k-123", tmp_path) as front:
        ...  # connect to front.address with TLS (the pair's CA) and the key
        assert all(c["accepted"] for c in front.calls())
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.certs import Pair
from testbed.forward import free_port_on
from testbed.proc import stop as stop_process
from testbed.tools import tools_dir

SOURCE = Path(__file__).resolve().parents[1] / "hack" / "apikeyfront" / "main.go"


def binary() -> Path:
    """The front's binary, built into the tool cache when missing (needs `go`)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    target = tools_dir() / f"apikeyfront-{digest}"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("apikeyfront needs the Go toolchain to build (the bed's tools do too)")
    work = tools_dir().parent / "build" / f"apikeyfront-{digest}"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE, work / "main.go")
    (work / "go.mod").write_text("module workerpools.io/apikeyfront\n\ngo 1.24\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."],
        cwd=work, env={**os.environ, "CGO_ENABLED": "0"}, check=True, timeout=600,
    )  # fmt: skip
    partial.replace(target)  # atomic: a parallel session sees all of it or none
    return target


@dataclass
class ApiKeyFront:
    """A running front: clients connect to `address` (TLS, the server pair's names)."""

    address: str
    log: Path
    proc: subprocess.Popen[bytes]

    def calls(self) -> list[dict[str, Any]]:
        """Every gRPC call so far: method, presented (a Bearer key), accepted (the right one)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextlib.contextmanager
def api_key_front(to: str, server: Pair, api_key: str, folder: Path) -> Iterator[ApiKeyFront]:
    """Run the front in front of the dev server at `to` until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{free_port_on('127.0.0.1')}"
    log, out = folder / "apikeyfront.calls.jsonl", folder / "apikeyfront.log"
    with out.open("wb") as stream:
        proc = subprocess.Popen(
            [str(binary()), "--listen", address, "--to", to, "--cert", str(server.cert),
             "--key", str(server.key), "--api-key", api_key, "--log", str(log)],
            stdout=stream, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "serving TLS" not in out.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"apikeyfront did not start:\n{out.read_text()}")
            time.sleep(0.1)
        yield ApiKeyFront(address, log, proc)
    finally:
        stop_process(proc)
