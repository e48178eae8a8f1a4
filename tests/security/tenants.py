"""What the attack tests share: pools and connections as a tenant writes them, a Secret
as a namespace owner creates it, a pool's Ready condition, and a TCP listener that records
what a worker or the operator sends it."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

from testbed import wait
from tests import builders
from tests.security.attacks import until
from tests.security.conftest import REPO_ROOT, Bed

# An address the network tests may use: an IP, so egress to Temporal is an exact ipBlock.
TEMPORAL_IP = "10.1.2.3:7233"


POLICY = REPO_ROOT / "manifests" / "admission" / "pool-template-policy.yaml"


@contextlib.contextmanager
def admission_policy(bed: Bed, namespace: str) -> Iterator[str]:
    """The shipped ValidatingAdmissionPolicy, bound under a name of this session's own to
    `namespace` only (other sessions on the bed install the shipped one), removed afterwards.
    Yields the name it is installed under (the API server takes a moment to enforce it)."""
    name = f"workerpools-pool-template-{namespace}"
    docs = [d for d in yaml.safe_load_all(POLICY.read_text()) if d]
    for d in docs:
        d["metadata"]["name"] = name
        if d["kind"] == "ValidatingAdmissionPolicyBinding":
            d["spec"]["policyName"] = name
            d["spec"]["matchResources"]["namespaceSelector"] = {
                "matchLabels": {"kubernetes.io/metadata.name": namespace}
            }
    bed.kube.apply(docs)
    try:
        yield name
    finally:
        for d in docs:
            bed.kube.run("delete", d["kind"], d["metadata"]["name"], "--ignore-not-found")
        # The API server stops enforcing a deleted policy a moment later, as it starts one: wait
        # until a pool it refuses (named after the reserved ServiceAccount) is admitted again
        # (a dry run: nothing is created), so the next test in `namespace` never meets it.
        probe = yaml.safe_dump(pool("default"))
        wait.until(
            lambda: bed.kube.run(
                "create", "--dry-run=server", "-n", namespace, "-f", "-", input=probe
            ).returncode == 0,
            f"the admission policy bound to {namespace} to be gone",
        )  # fmt: skip


def pool(name: str, **spec: Any) -> dict[str, Any]:
    """A pool as a tenant writes it: inline address unless it names a connection, one replica
    unless it autoscales."""
    if "autoscaling" not in spec:
        spec = {"replicas": 1, **spec}
    ref = spec.pop("connectionRef", None)
    inline = spec.pop("connection", {"address": TEMPORAL_IP})
    return builders.pool(name, connection=inline, connection_ref=ref, workflows=("a:W",), **spec)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def ready(bed: Bed, name: str) -> dict[str, Any]:
    """The pool's Ready condition ({} until the operator wrote one)."""
    got = bed.kube.run("get", "twp", name, "-n", bed.team_a, "-o", "json")
    if got.returncode != 0:
        return {}
    status = json.loads(got.stdout).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


async def wait_reason(bed: Bed, name: str, reason: str) -> None:
    """Until the pool's Ready condition has this reason."""
    await until(lambda: ready(bed, name).get("reason") == reason, reason, lambda: ready(bed, name))


def get(bed: Bed, kind: str, name: str) -> dict[str, Any] | None:
    got = bed.kube.run("get", kind, name, "-n", bed.team_a, "-o", "json")
    return json.loads(got.stdout) if got.returncode == 0 else None


def secrets_named(obj: dict[str, Any] | None) -> set[str]:
    """Every Secret name an object refers to (secretKeyRef, secret volumes, secretTargetRef)."""
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for key in ("secretKeyRef", "secret"):
                ref = x.get(key)
                if isinstance(ref, dict):
                    found.add(str(ref.get("name") or ref.get("secretName")))
            if "parameter" in x and "name" in x:  # KEDA secretTargetRef
                found.add(str(x["name"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(obj)
    return found


def connection(name: str, address: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "workerpools.io/v1alpha1",
        "kind": "TemporalConnection",
        "metadata": {"name": name},
        "spec": {"address": address, **spec},
    }


def secret(bed: Bed, name: str, data: dict[str, bytes], *, opted_in: bool) -> None:
    """A Secret the namespace owner (the admin here) created; the tenants cannot read it."""
    labels = {"workerpools.io/temporal-credentials": "true"} if opted_in else {}
    bed.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": bed.team_a, "labels": labels},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
    )


class TcpListener:
    """A TCP endpoint on loopback that hands every accepted connection to `handle`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        conn.close()

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        self.sock.close()


class Listener(TcpListener):
    """Keeps the first bytes each connection sends."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(4096))
            except OSError:
                self.received.append(b"")
