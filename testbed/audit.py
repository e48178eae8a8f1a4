"""Writes as the API server saw them: a reader of the bed's audit log (testbed/cluster.py).

The operator's own counters can lie (a metric that is not served reads as 0, a write path that
forgets to count); the audit log cannot. Each line is one request at ResponseComplete, at
Metadata level (who, what, when; no bodies): the field manager is taken from the request URI's
``fieldManager`` parameter, the writer's identity from the authenticated user.

    log = AuditLog(cluster.audit_log)
    t0 = log.now()
    ...  # act
    writes = log.writes(since=t0, namespaces={"ns"})
    counts = count(writes, "resource", "verb", "field_manager")
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# What the operator writes (and a user edits): a write to one of these in the operator's
# namespaces by anyone but the operator under test, the user or a Kubernetes controller is a
# foreign writer. Pods, ReplicaSets, Events, EndpointSlices belong to the cluster's own
# controllers and kwok.
OPERATOR_RESOURCES = frozenset(
    {
        "temporalworkerpools",
        "temporalworkerpools/status",
        "deployments",
        "deployments/scale",
        "services",
        "poddisruptionbudgets",
        "serviceaccounts",
        "networkpolicies",
        "scaledobjects",
        "triggerauthentications",
        "horizontalpodautoscalers",
        "servicemonitors",
        "leases",
    }
)


def parse_time(text: str) -> float:
    """An audit timestamp (RFC 3339, microseconds, UTC) as Unix seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Write:
    """One write request the API server answered."""

    at: float  # Unix seconds, when the response was complete
    verb: str
    resource: str  # plural, with "/subresource" when there is one
    namespace: str  # "" for cluster-scoped objects
    name: str
    user: str
    user_agent: str
    field_manager: str  # "" when the request named none (Update by a controller, delete)
    code: int

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def program(self) -> str:
        """The client's program name, from its user agent ("kubectl/v1.34 (...)": kubectl)."""
        return self.user_agent.split("/", 1)[0].split(" ", 1)[0]

    @property
    def writer(self) -> str:
        """Who wrote: the user, and the field manager (or the client's program name)."""
        return f"{self.user} ({self.field_manager or self.program})"

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Write | None:
        """The write in one audit event; None for reads, other stages and malformed lines."""
        verb = str(event.get("verb") or "")
        if verb not in WRITE_VERBS or event.get("stage") != "ResponseComplete":
            return None
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or "")
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        query = parse_qs(urlsplit(str(event.get("requestURI") or "")).query)
        stamp = event.get("stageTimestamp") or event.get("requestReceivedTimestamp")
        if not stamp:
            return None
        return cls(
            at=parse_time(str(stamp)),
            verb=verb,
            resource=resource,
            namespace=str(ref.get("namespace") or ""),
            name=str(ref.get("name") or ""),
            user=str((event.get("user") or {}).get("username") or ""),
            user_agent=str(event.get("userAgent") or ""),
            field_manager=(query.get("fieldManager") or [""])[0],
            code=int((event.get("responseStatus") or {}).get("code") or 0),
        )


def parse(lines: Iterable[str]) -> Iterator[Write]:
    """Writes in audit-log lines (JSON, one event a line); other lines are skipped."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(event, dict) and (w := Write.from_event(event)) is not None:
            yield w


class AuditLog:
    """The bed's audit log; reads only what was appended since this reader last looked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._writes: list[Write] = []

    def available(self) -> bool:
        """The bed writes an audit log (a bed started before audit logging has none)."""
        return self.path.is_file()

    @staticmethod
    def now() -> float:
        """A window boundary on the audit log's clock (the same host's wall clock)."""
        return time.time()

    def _read(self) -> list[Write]:
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no audit log at {self.path}: the bed predates audit logging; restart it "
                "(python -m testbed down && python -m testbed up)"
            )
        with self.path.open("rb") as handle:
            if handle.seek(0, 2) < self._offset:  # the file was recreated (a new bed)
                self._offset, self._writes = 0, []
            handle.seek(self._offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1  # a partial last line waits for the next read
        self._offset += complete
        self._writes.extend(parse(data[:complete].decode(errors="replace").splitlines()))
        return self._writes

    def writes(
        self,
        *,
        since: float = 0.0,
        until: float | None = None,
        namespaces: Collection[str] | None = None,
        settle_s: float = 1.0,
    ) -> list[Write]:
        """Writes completed in [since, until) in `namespaces` (None: anywhere).

        With `until` in the past, waits up to `settle_s` for the log to be written that far.
        """
        deadline = time.monotonic() + settle_s
        while True:
            writes = self._read()
            if until is None or (writes and writes[-1].at >= until):
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return [
            w
            for w in writes
            if w.at >= since
            and (until is None or w.at < until)
            and (namespaces is None or w.namespace in namespaces)
        ]


def count(writes: Iterable[Write], *by: str) -> Counter[tuple[str, ...]]:
    """Writes counted by the given attributes (e.g. "resource", "verb", "field_manager")."""
    return Counter(tuple(str(getattr(w, attr)) for attr in by) for w in writes)


# Kubernetes' own writers by client program: on the kwok bed they all authenticate with the
# bed's admin certificate, so only the user agent tells them apart.
CLUSTER_PROGRAMS = frozenset(
    {"kube-controller-manager", "kube-scheduler", "kube-apiserver", "kwok-controller", "kubelet"}
)


def is_cluster_component(w: Write) -> bool:
    """Kubernetes' own controllers, scheduler and kwok (by user, or by client program)."""
    return (
        (w.user.startswith("system:") and not w.user.startswith("system:serviceaccount:"))
        or w.user.startswith("system:serviceaccount:kube-system:")
        or w.program in CLUSTER_PROGRAMS
    )


def foreign_writers(
    writes: Iterable[Write], *, operator_user: str, own_managers: Collection[str] = ()
) -> Counter[str]:
    """Writers of the operator's kinds other than the operator under test (its user), the
    caller itself (writes under one of `own_managers`) and Kubernetes' own components."""
    out: Counter[str] = Counter()
    for w in writes:
        if w.resource not in OPERATOR_RESOURCES or not w.ok:
            continue
        if w.user == operator_user or is_cluster_component(w):
            continue
        if w.field_manager and w.field_manager in own_managers:
            continue
        out[w.writer] += 1
    return out
