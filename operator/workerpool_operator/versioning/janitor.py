"""The leader's janitor: removes from Temporal what deleted versioned pools left there (I/O).

At start and every `period` (300 s by default), and soon after a versioned pool is deleted, the
janitor lists the Worker Deployments of every connection it knows (those of the pools and
connection objects in the cache, of versioned pools seen in the last hour, and of deleted pools
while something of this operator is left there), reads each one no pool uses, and carries
out `orphans.plan_removal`: routing unset, idle versions deleted, then the deployment.
Deciding is pure (`versioning/orphans.py`); here are only the reads and the calls.

Why 300 s: a stopped worker stays in Temporal's poller history for `matching.PollerHistoryTTL`
(5 min by default) and a version is never removed before that, so looking more often finds
nothing more to remove; at rest a sweep costs one ListWorkerDeployments per connection. While an
orphan waits only for its pollers to be forgotten, its connection is looked at again after
`RETRY_SECONDS`.

Each connection is swept in its own time-boxed task: one that hangs delays no other. Temporal's
failures are log lines (once per connection and kind of failure) and
`workerpool_temporal_calls_total` counts, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as ProtoVersion
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DeleteWorkerDeploymentRequest,
    DescribeTaskQueueRequest,
    DescribeWorkerDeploymentVersionRequest,
    ListWorkerDeploymentsRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workerpool_operator import metrics
from workerpool_operator.api import v1alpha1 as api
from workerpool_operator.kinds import CLUSTER_CONNECTION, CONNECTION, POOL, Kind
from workerpool_operator.reconcile.view import ClusterView
from workerpool_operator.temporal.clients import TemporalClients
from workerpool_operator.temporal.connections import (
    Connection,
    CredentialsError,
    Unresolved,
    connection_for,
    connection_from_spec,
    effective_connection_spec,
)
from workerpool_operator.versioning.driver import rpc_name
from workerpool_operator.versioning.execute import (
    Backoff,
    count_open_pinned,
    describe_call,
    execute,
    observe,
)
from workerpool_operator.versioning.orphans import (
    Orphan,
    Removal,
    Scope,
    VersionCheck,
    candidates,
    plan_removal,
    pool_deployment_names,
)

log = logging.getLogger(__name__)

JANITOR_PERIOD_SECONDS = 300.0
RETRY_SECONDS = 30.0
# One connection's sweep: past it that connection waits for the next one, the others never did.
SWEEP_TIMEOUT_SECONDS = 60.0
# A versioned pool's connection is swept this long after the pool was last seen (a deletion
# whose watch event was missed), and as long as something of this operator is left on it, at
# most REMEMBER_SECONDS (pinned work may keep a version for days).
LINGER_SECONDS = 3600.0
REMEMBER_SECONDS = 7 * 24 * 3600.0
# A deployment another identity manages is read again only this often.
FOREIGN_SECONDS = 3600.0
LIST_PAGE_SIZE = 1000
MAX_PAGES = 100

T = TypeVar("T")


async def _counted(method: str, call: Awaitable[T]) -> T:
    """One RPC, counted in workerpool_temporal_calls_total by its result."""
    try:
        out = await call
    except Exception:
        metrics.TEMPORAL_CALLS.labels(method, "error").inc()
        raise
    metrics.TEMPORAL_CALLS.labels(method, "ok").inc()
    return out


async def list_deployments(client: Client) -> list[str]:
    """Every Worker Deployment of the client's namespace (ListWorkerDeployments, paged)."""
    names: list[str] = []
    token = b""
    for _ in range(MAX_PAGES):
        resp = await _counted(
            "ListWorkerDeployments",
            client.workflow_service.list_worker_deployments(
                ListWorkerDeploymentsRequest(
                    namespace=client.namespace, page_size=LIST_PAGE_SIZE, next_page_token=token
                )
            ),
        )
        names.extend(d.name for d in resp.worker_deployments)
        token = resp.next_page_token
        if not token:
            break
    return names


async def version_pollers(client: Client, deployment: str, build: str) -> bool:
    """Whether a worker of the version still polls one of its task queues (as Temporal's poller
    history has it: a stopped worker stays there for matching.PollerHistoryTTL)."""
    svc = client.workflow_service
    try:
        described = await _counted(
            "DescribeWorkerDeploymentVersion",
            svc.describe_worker_deployment_version(
                DescribeWorkerDeploymentVersionRequest(
                    namespace=client.namespace,
                    deployment_version=ProtoVersion(deployment_name=deployment, build_id=build),
                )
            ),
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False  # gone already: nothing polls it
        raise
    for queue in described.version_task_queues:
        resp = await _counted(
            "DescribeTaskQueue",
            svc.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=queue.name),
                    task_queue_type=queue.type,
                )
            ),
        )
        for poller in resp.pollers:
            opts = poller.deployment_options
            if opts.deployment_name == deployment and opts.build_id == build:
                return True
    return False


async def observe_orphan(client: Client, deployment: str, identity: str) -> Orphan:
    """DescribeWorkerDeployment and, only when this operator manages the deployment, each
    version's exact open-workflow count and (when that is 0) its pollers."""
    state = await _counted("DescribeWorkerDeployment", observe(client, deployment))
    checks: dict[str, VersionCheck] = {}
    if state.exists and state.manager_identity == identity:
        for v in state.versions:
            count = await count_open_pinned(client, deployment, v.build_id)
            metrics.TEMPORAL_CALLS.labels(
                "CountWorkflowExecutions", "ok" if count is not None else "error"
            ).inc()
            pollers: bool | None = None
            if count == 0:
                pollers = await version_pollers(client, deployment, v.build_id)
            checks[v.build_id] = VersionCheck(open_workflows=count, pollers=pollers)
    return Orphan(deployment=deployment, state=state, checks=checks)


@dataclass(eq=False)
class Janitor:
    """Sweeps the Temporal side of every connection it knows, each in its own task."""

    view: ClusterView
    clients: TemporalClients
    identity: str
    _: KW_ONLY
    period: float = JANITOR_PERIOD_SECONDS
    clock: Callable[[], float] = time.monotonic
    # Connections of deleted versioned pools, or with leftovers of ours -> since when.
    _remembered: dict[Connection, float] = field(default_factory=dict, init=False)
    # Connections of versioned pools in the cache -> when one was last seen using it.
    _in_use: dict[Connection, float] = field(default_factory=dict, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _said: dict[str, str] = field(default_factory=dict, init=False)  # connection -> last problem
    # (connection, deployment) -> when it was last seen managed by someone else
    _foreign: dict[tuple[str, str], float] = field(default_factory=dict, init=False)

    def cache_event(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        """Cache callback: a deleted versioned pool's connection is remembered and swept soon
        (its Deployments go through ownerReferences; what Temporal holds goes here)."""
        if kind is not POOL or type_ != "DELETED":
            return
        if not isinstance((obj.get("spec") or {}).get("versioning"), Mapping):
            return
        conn = self._pool_connection(obj)
        if conn is not None:
            self._remembered[conn] = self.clock()
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (run only while leading): a sweep at once, then every period."""
        if self.period <= 0:
            return
        while not stop.is_set():
            self._wake.clear()
            try:
                retry = await self.sweep()
            except Exception:  # a bug: say so, and keep the loop for the next period
                log.exception("Worker Deployment clean-up sweep failed")
                retry = False
            wait = min(self.period, RETRY_SECONDS) if retry else self.period
            await _first_of(stop.wait(), self._wake.wait(), seconds=wait)

    def scope(self) -> Scope:
        namespaces = self.view.namespaces
        return Scope(
            identity=self.identity,
            protected=pool_deployment_names(self.view.store(POOL).values()),
            namespaces=None if namespaces is None else frozenset(namespaces),
        )

    async def sweep(self) -> bool:
        """One sweep of every known connection; True when one should be looked at again soon."""
        now = self.clock()
        self._remembered = {
            c: at for c, at in self._remembered.items() if now - at < REMEMBER_SECONDS
        }
        conns = self.connections()
        results = await asyncio.gather(*(self._isolated(conn) for conn in conns))
        retry = False
        for conn, (soon, ours_left) in zip(conns, results, strict=True):
            retry |= soon
            if ours_left:
                self._remembered.setdefault(conn, now)
            else:
                self._remembered.pop(conn, None)
        return retry

    def connections(self) -> list[Connection]:
        """The connections of the pools and connection objects in the cache, of versioned pools
        seen in the last hour, and of deleted pools with something of ours left (a connection
        that failed counts as such), that the cluster admin allows dialling."""
        found: dict[Connection, None] = {}
        now = self.clock()
        for body in self.view.store(POOL).values():
            conn = self._pool_connection(body)
            if conn is not None:
                found[conn] = None
                if isinstance((body.get("spec") or {}).get("versioning"), Mapping):
                    self._in_use[conn] = now
        self._in_use = {c: at for c, at in self._in_use.items() if now - at < LINGER_SECONDS}
        for conn in self._in_use:
            found[conn] = None
        for kind in (CONNECTION, CLUSTER_CONNECTION):
            if not self.view.has(kind):
                continue
            for body in self.view.store(kind).values():
                conn = self._object_connection(kind, body)
                if conn is not None:
                    found[conn] = None
        for conn in self._remembered:
            found[conn] = None
        grants = self.view.caps.grants
        return [c for c in found if grants.address_error(c.address, "address") is None]

    def _pool_connection(self, body: Mapping[str, Any]) -> Connection | None:
        try:
            pool = api.TemporalWorkerPool.from_body(body)
            resolved = self.view.resolve(pool, body)
            if isinstance(resolved, Unresolved):
                return None
            where = resolved.secrets_namespace
            return connection_for(resolved.pool, self.view.secrets_in(where), where)
        except (ValidationError, CredentialsError):
            return None

    def _object_connection(self, kind: Kind, body: Mapping[str, Any]) -> Connection | None:
        cluster = kind is CLUSTER_CONNECTION
        try:
            model = api.ClusterTemporalConnection if cluster else api.TemporalConnection
            spec = model.from_body(body).spec
            where = (
                self.view.credentials_namespace
                if cluster
                else str((body.get("metadata") or {}).get("namespace") or "")
            )
            return connection_from_spec(
                effective_connection_spec(spec), self.view.secrets_in(where), where
            )
        except (ValidationError, CredentialsError):
            return None

    async def _isolated(self, conn: Connection) -> tuple[bool, bool]:
        """One connection's sweep, time-boxed, its failures its own: (look again soon, this
        operator may still have something there)."""
        where = f"{conn.address} namespace {conn.namespace}"
        try:
            out = await asyncio.wait_for(self.sweep_connection(conn), SWEEP_TIMEOUT_SECONDS)
        except TimeoutError:
            self._say(conn, f"no answer within {SWEEP_TIMEOUT_SECONDS:g}s", where)
            return True, True
        except Backoff as exc:
            self._say(conn, str(exc), where)
            return False, True
        except (RPCError, CredentialsError, OSError, RuntimeError) as exc:
            words = f"{exc.status.name}: {exc.message}" if isinstance(exc, RPCError) else str(exc)
            self._say(conn, words, where)
            return False, True
        self._said.pop(conn.fingerprint(), None)
        return out

    def _say(self, conn: Connection, problem: str, where: str) -> None:
        """A connection's problem, logged once until it changes (no line every sweep)."""
        key = conn.fingerprint()
        if self._said.get(key) != problem:
            self._said[key] = problem
            log.warning("Worker Deployment clean-up on %s skipped: %s", where, problem)

    async def sweep_connection(self, conn: Connection) -> tuple[bool, bool]:
        """List, read each candidate, remove what is idle of this operator's orphans."""
        client = await self.clients.get(conn)
        names = await list_deployments(client)
        retry = ours = False
        now = self.clock()
        for name in candidates(names, self.scope()):
            key = (conn.fingerprint(), name)
            if now - self._foreign.get(key, -FOREIGN_SECONDS) < FOREIGN_SECONDS:
                continue
            orphan = await observe_orphan(client, name, self.identity)
            removal = plan_removal(orphan, self.identity)
            if removal is None:
                if orphan.state.exists:
                    self._foreign[key] = now  # another manager's (or nobody's): read it less
                continue
            ours = True
            if name in self.scope().protected:
                continue  # a pool took the name meanwhile: it is that pool's now
            if not await self._remove(client, conn, orphan, removal):
                # Waiting for pollers to be forgotten is short; open workflows take their time.
                retry |= not removal.waits_for_work
        return retry, ours

    async def _remove(
        self, client: Client, conn: Connection, orphan: Orphan, removal: Removal
    ) -> bool:
        """Carry a removal out; True once the Worker Deployment itself is gone."""
        dep = removal.deployment
        where = f"{conn.address} namespace {conn.namespace}"
        if removal.calls:
            token = orphan.state.conflict_token
            out = await execute(client, dep, self.identity, token, removal.calls)
            for call in out.done:
                metrics.TEMPORAL_CALLS.labels(rpc_name(call), "ok").inc()
            for call, why in out.refused:
                metrics.TEMPORAL_CALLS.labels(rpc_name(call), "error").inc()
                log.info("deleted pool's Worker Deployment %s on %s: %s not made: %s",
                         dep, where, describe_call(call), why)  # fmt: skip
            if out.done:
                log.info(
                    "deleted pool's Worker Deployment %s on %s: %s",
                    dep, where, ", ".join(describe_call(c) for c in out.done),
                )  # fmt: skip
            if out.refused:
                return False
        if removal.kept:
            kept = "; ".join(f"{build}: {why}" for build, why in removal.kept)
            log.info("deleted pool's Worker Deployment %s on %s kept for now (%s)",
                     dep, where, kept)  # fmt: skip
            return False
        await _counted(
            "DeleteWorkerDeployment",
            client.workflow_service.delete_worker_deployment(
                DeleteWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=dep, identity=self.identity
                )
            ),
        )
        log.info("deleted pool's Worker Deployment %s removed from %s", dep, where)
        return True


async def _first_of(*aws: Awaitable[Any], seconds: float) -> None:
    """Wait until the first awaitable finishes or `seconds` pass; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
