"""A real OpenTelemetry Collector on loopback, for the tracing test.

Built from its Go modules by hack/build-otelcol.sh (the upstream collector builder; cached,
`make tools` builds it). It receives OTLP over gRPC and HTTP on free loopback ports and writes
every trace batch it receives, as OTLP JSON lines, to a file the test reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.cluster import REPO_ROOT, cache_root, read_versions
from testbed.temporal import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-otelcol.sh"
BINARY_NAME = "otelcol-workerpools"


def bin_dir() -> Path:
    return cache_root() / "otelcol" / read_versions()["OTELCOL_VERSION"] / "bin"


def binary() -> Path:
    return bin_dir() / BINARY_NAME


def missing() -> bool:
    """True when hack/build-otelcol.sh has not built the collector yet."""
    return not os.access(binary(), os.X_OK)


def config(grpc_port: int, http_port: int, traces_file: Path) -> dict[str, Any]:
    """OTLP in (gRPC and HTTP, loopback only), the file exporter out; no telemetry port of its
    own, so several collectors (parallel test sessions) never collide."""
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "exporters": {
            "file": {"path": str(traces_file), "flush_interval": "100ms"},
            "debug": {"verbosity": "basic"},
        },
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file", "debug"]}},
        },
    }


@dataclass(frozen=True)
class Span:
    """One received span with its resource attributes (OTLP JSON, flattened)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    resource: dict[str, Any]


def _value(v: dict[str, Any]) -> Any:
    return next(iter(v.values())) if v else None


@dataclass
class Collector:
    """The running collector: its OTLP endpoints and what it wrote."""

    grpc_endpoint: str
    http_endpoint: str
    traces_file: Path
    log_path: Path

    def spans(self) -> list[Span]:
        """Every span the collector has exported to its file so far."""
        if not self.traces_file.exists():
            return []
        out: list[Span] = []
        for line in self.traces_file.read_text().splitlines():
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                resource = {
                    a["key"]: _value(a.get("value", {}))
                    for a in rs.get("resource", {}).get("attributes", [])
                }
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append(
                            Span(
                                name=s["name"],
                                trace_id=s["traceId"],
                                span_id=s["spanId"],
                                parent_span_id=s.get("parentSpanId", ""),
                                resource=resource,
                            )
                        )
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_collector(workdir: Path, wait_s: float = 60) -> Iterator[Collector]:
    """Start the collector, wait for both OTLP ports, stop it (SIGTERM, then kill) at exit."""
    grpc_port, http_port = free_port(), free_port()
    traces_file = workdir / "traces.jsonl"
    config_file = workdir / "otelcol.json"
    # The collector reads YAML, and JSON is YAML.
    config_file.write_text(json.dumps(config(grpc_port, http_port, traces_file), indent=2))
    log_path = workdir / "otelcol.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(binary()), "--config", f"file:{config_file}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    collector = Collector(
        f"http://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", traces_file, log_path
    )
    try:
        deadline = time.monotonic() + wait_s
        while not (_listening(grpc_port) and _listening(http_port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start:\n{collector.log()}")
            time.sleep(0.1)
        yield collector
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
