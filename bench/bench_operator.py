"""Operator benchmark on the local bed: burst, single, scale curve, idle, restart, failover.

The real operator runs as a subprocess (`python -m workerpool_operator -n NS ...`), scoped to the
benchmark's own namespaces and authenticated as a ServiceAccount of its own, so the API
server's audit log (testbed/audit.py) tells its writes from everyone else's. The benchmark talks
to the API server with the operator's own async client, under its own field manager. Every
figure is measured in this one run, ratios against a floor measured the same way:

- burst: 100 pools created at once (16 at a time, the operator's worker count); per pool, the
  time from its create call until a watch has seen every child the plan renders. Three
  operator rounds alternate with three floor rounds and each side's samples are pooled (one
  p95 of 100 samples moved with the machine's load from run to run).
  floor: the same pools created the same way (the same pacing), with nothing watching them;
  each pool is queued as its create answers, and 16 workers (the operator's count) each apply
  a queued pool's rendered children (owned by it, at once) and then its status: the objects
  the operator writes, the same queueing behind a burst, the same clock and the same watch.
  No operator runs meanwhile.
- single: 20 pools one after another, create -> all children.
- scale (100, 300, 1000 pools over 10 namespaces): pools created while the operator is down,
  then a cold start until every pool's status.observedGeneration is current and every child
  exists (converge), against the floor: the same pools in other namespaces, their children and
  status applied directly, 16 pools at a time, until the same probe says converged. Steady RSS;
  API requests per minute over an idle window (the operator's own request counter, WATCH
  included); writes in that window and after a restart, from the audit log, broken down by
  resource, verb and field manager; time until idle after a restart.
- foreign_writers: writes to the operator's kinds in the benchmark's namespaces by anyone but
  the operator under test, the benchmark and Kubernetes' own controllers (goal 0).
- failover: two replicas with --leader-elect; SIGKILL the leader; until the standby leads.

A wait that runs out is a failure: it is counted (`*_timed_out`), reported, and the exit
status is 1; a percentile that lands on a timed-out pool is null.

    python -m bench.bench_operator [--scale 100,300,1000] [--idle-seconds 300] [--quick]

Results: a table on stdout and bench-results/operator.json (stable key names).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from testbed.audit import AuditLog, Write, count, foreign_writers
from testbed.cluster import LocalCluster, install_crds, kubectl, wait_established
from testbed.operator import OperatorProcess, metric, pool_manifest, sa_kubeconfig
from workerpool_operator.kinds import (
    CRD,
    DEPLOYMENT,
    PDB,
    POOL,
    POOL_STATUS,
    SCALED_OBJECT,
    SERVICE,
    SERVICE_ACCOUNT,
    SERVICE_MONITOR,
    TRIGGER_AUTH,
    Kind,
)
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.reconcile.model import Observed, Outcome
from workerpool_operator.reconcile.plan import finish, plan
from workerpool_operator.render import Capabilities

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
POOL_CRD_FILE = ROOT / "crds" / "workerpools.io_temporalworkerpools.yaml"
# Every child a fixed-size pool's plan renders: the operator and the floor are timed to all.
CHILDREN: tuple[Kind, ...] = (DEPLOYMENT, SERVICE, PDB, SERVICE_ACCOUNT)
CONCURRENCY = 16
# Operator and floor bursts, alternated (bench_burst).
BURST_ROUNDS = 3
NAMESPACES = 10
# The benchmark's own writes (pool creates, the floor's applies) carry this field manager.
BENCH_MANAGER = "workerpool-bench"
OPERATOR_SA = "workerpool-operator"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def shown(x: float) -> float | None:
    """A figure for the JSON: a timed-out value (inf) is null."""
    return None if math.isinf(x) else x


async def bed_capabilities(kube: Kube) -> Capabilities:
    """The optional APIs the bed serves, as the operator under test sees them (its ServiceMonitor
    and KEDA kinds follow their CRDs): the floor renders what the operator renders."""
    crds, _ = await kube.list(CRD)
    served = {c["metadata"]["name"] for c in crds}
    return Capabilities(
        service_monitor=SERVICE_MONITOR.crd in served,
        keda=SCALED_OBJECT.crd in served and TRIGGER_AUTH.crd in served,
    )


def rendered(body: dict[str, Any], caps: Capabilities) -> list[dict[str, Any]]:
    """The children the operator would write for this (live) pool, owned by it."""
    return [w.manifest for w in plan(body, caps, Observed()).writes]


def floor_status(body: dict[str, Any], caps: Capabilities) -> dict[str, Any]:
    """The status the operator writes once the children exist (its conditions as they would
    be for a Deployment not rolled out yet: what the converge probe waits for is the same)."""
    p = plan(body, caps, Observed())
    gen = int(body["metadata"].get("generation") or 1)
    return finish(p, Outcome(), None, generation=gen, now=time.strftime("%Y-%m-%dT%H:%M:%SZ"))


class Operator(OperatorProcess):
    """The operator under test: scoped to the benchmark's namespaces, as its own user."""

    def __init__(
        self, kubeconfig: str, name: str, namespaces: list[str], *args: str, resync: float = 60.0
    ) -> None:
        scope = [a for ns in namespaces for a in ("-n", ns)]
        super().__init__(
            kubeconfig,
            name,
            *scope,
            *args,
            log_dir=RESULTS,
            env={"WORKERPOOL_RESYNC_SECONDS": str(resync)},
        )

    def ready(self) -> bool:
        """Serving metrics (not just "0 because nothing answered") with an empty queue."""
        if not self.alive():
            raise RuntimeError(f"operator {self.name} exited: see {self.log_path}")
        try:
            text = self.metrics()
        except OSError:
            return False
        return "workerpool_operator_queue_depth" in text and (
            metric(text, "workerpool_operator_queue_depth") == 0
        )


class Identity:
    """A ServiceAccount the operator under test authenticates as (cluster-admin: a bench),
    so its requests carry a user name of their own in the audit log."""

    def __init__(self, admin_kubeconfig: str, tag: str) -> None:
        self.namespace = f"bench-op-{tag}"
        self.user = f"system:serviceaccount:{self.namespace}:{OPERATOR_SA}"
        kubectl(admin_kubeconfig, "create", "namespace", self.namespace, check=False)
        kubectl(admin_kubeconfig, "create", "serviceaccount", OPERATOR_SA, "-n", self.namespace)
        self.binding = f"bench-op-{tag}"
        subject = f"--serviceaccount={self.namespace}:{OPERATOR_SA}"
        kubectl(admin_kubeconfig, "create", "clusterrolebinding", self.binding,
                "--clusterrole=cluster-admin", subject)  # fmt: skip
        admin = types.SimpleNamespace(
            kubeconfig=admin_kubeconfig,
            kubectl=lambda *a: kubectl(admin_kubeconfig, *a).stdout,
        )
        RESULTS.mkdir(exist_ok=True)
        self.kubeconfig = str(
            sa_kubeconfig(
                admin, OPERATOR_SA, self.namespace, RESULTS / f"operator-{tag}.kubeconfig"
            )
        )
        self.admin_kubeconfig = admin_kubeconfig

    def close(self) -> None:
        kubectl(self.admin_kubeconfig, "delete", "clusterrolebinding", self.binding, check=False)
        kubectl(self.admin_kubeconfig, "delete", "namespace", self.namespace, "--wait=false",
                check=False)  # fmt: skip
        Path(self.kubeconfig).unlink(missing_ok=True)


async def until(probe: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> float:
    """Seconds until `probe`; inf when `limit_s` ran out (a timeout the caller reports)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if await probe():
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    print(f"TIMED OUT after {limit_s:.0f}s waiting for {what}", file=sys.stderr, flush=True)
    return math.inf


class Seen:
    """First time a watch saw each (kind, namespace, name)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.at: dict[tuple[str, str, str], float] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, namespace: str) -> None:
        for kind in CHILDREN:
            _, rv = await self.kube.list(kind, namespace)
            self.tasks.append(asyncio.create_task(self._watch(kind, namespace, rv)))

    async def _watch(self, kind: Kind, namespace: str, rv: str) -> None:
        while True:
            async for ev in self.kube.watch(kind, namespace, rv, timeout_seconds=600):
                meta = ev.object.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                if ev.type == "ADDED":
                    key = (kind.kind, namespace, str(meta.get("name")))
                    self.at.setdefault(key, time.perf_counter())

    def complete(self, namespace: str, name: str) -> float | None:
        times = [self.at.get((k.kind, namespace, name)) for k in CHILDREN]
        return None if None in times else max(t for t in times if t is not None)

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()


async def create_pool(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    done = await kube.request(
        "POST", path(POOL, ns), kind=POOL, body=pool_manifest(name, ns),
        params={"fieldManager": BENCH_MANAGER}, write_verb="create",
    )  # fmt: skip
    assert done is not None
    return done


async def create_pools(
    kube: Kube,
    pools: list[tuple[str, str]],
    then: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[tuple[str, str], float]:
    """Create pools CONCURRENCY at a time (each followed by `then`, the floor's own work);
    when each create call started."""
    sem = asyncio.Semaphore(CONCURRENCY)
    started: dict[tuple[str, str], float] = {}

    async def one(ns: str, name: str) -> None:
        async with sem:
            started[(ns, name)] = time.perf_counter()
            body = await create_pool(kube, ns, name)
            if then is not None:
                await then(body)

    await asyncio.gather(*(one(ns, n) for ns, n in pools))
    return started


async def apply_children(kube: Kube, body: dict[str, Any], caps: Capabilities) -> None:
    """The floor's reconcile: the pool's rendered children, applied at once."""
    await asyncio.gather(*(kube.apply(c, manager=BENCH_MANAGER) for c in rendered(body, caps)))


async def apply_children_and_status(kube: Kube, body: dict[str, Any], caps: Capabilities) -> None:
    await apply_children(kube, body, caps)
    meta = body["metadata"]
    await kube.apply_status(
        POOL_STATUS,
        meta["namespace"],
        meta["name"],
        floor_status(body, caps),
        manager=BENCH_MANAGER,
    )


async def floor_worker(
    kube: Kube, queue: asyncio.Queue[dict[str, Any]], caps: Capabilities
) -> None:
    """One of the burst floor's CONCURRENCY workers: what the operator writes for a new pool
    (its children, then its status), without planning, from a queue filled as creates answer."""
    while True:
        body = await queue.get()
        try:
            await apply_children_and_status(kube, body, caps)
        finally:
            queue.task_done()


async def latencies(
    seen: Seen, started: dict[tuple[str, str], float], limit_s: float, what: str
) -> list[float]:
    """Per pool: its create call -> all its children seen (inf: not within `limit_s`)."""

    async def all_seen() -> bool:
        return all(seen.complete(*k) is not None for k in started)

    await until(all_seen, limit_s, what)
    out = []
    for key, t0 in started.items():
        done = seen.complete(*key)
        out.append(math.inf if done is None else done - t0)
    return out


def create_namespaces(kubeconfig: str, names: list[str]) -> None:
    for ns in names:
        kubectl(kubeconfig, "create", "namespace", ns, check=False)


def delete_namespaces(kubeconfig: str, names: list[str]) -> None:
    if names:
        kubectl(kubeconfig, "delete", "namespace", *names, "--wait=true", timeout=900, check=False)


async def converged(kube: Kube, pools: set[tuple[str, str]], namespaces: list[str]) -> bool:
    """Every pool's status describes its spec and every child exists (one list per kind and
    namespace: the same probe for the operator and the floor)."""
    current: set[tuple[str, str]] = set()
    have: dict[Kind, set[tuple[str, str]]] = {kind: set() for kind in CHILDREN}
    for ns in namespaces:
        items, _ = await kube.list(POOL, ns)
        for it in items:
            meta, status = it["metadata"], it.get("status") or {}
            if status.get("observedGeneration") == meta.get("generation"):
                current.add((meta["namespace"], meta["name"]))
        for kind in CHILDREN:
            objs, _ = await kube.list(kind, ns)
            have[kind] |= {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs}
    return pools <= current and all(pools <= names for names in have.values())


async def idle(op: Operator, pools: int) -> float:
    """Restart -> idle: every pool looked at once and the queue empty (seconds; inf: never)."""

    async def probe() -> bool:
        try:
            text = await asyncio.to_thread(op.metrics)
        except OSError:
            return False  # not serving metrics yet
        looked = metric(text, "workerpool_operator_reconciles_total")
        depth = metric(text, "workerpool_operator_queue_depth")
        return looked >= pools and depth == 0 and "workerpool_operator_queue_depth" in text

    waited = await until(probe, 600, "the restarted operator to go idle")
    return math.inf if math.isinf(waited) else time.monotonic() - op.started


def status_changes(
    before: dict[tuple[str, str], dict[str, Any]],
    after: dict[tuple[str, str], dict[str, Any]],
    examples: int = 3,
) -> dict[str, Any]:
    """Which status fields a restart changed, counted, with a few before -> after examples
    (what to look at when restart_writes is not 0)."""
    fields: Counter[str] = Counter()
    shown: list[str] = []
    for key, old in before.items():
        new = after.get(key)
        if new is None or new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]:
            continue
        a, z = old.get("status") or {}, new.get("status") or {}
        conds = {c["type"]: c for c in a.get("conditions") or []}
        for k in sorted(set(a) | set(z)):
            if k == "conditions":
                for c in z.get(k) or []:
                    if c != conds.get(c["type"]):
                        fields[f"conditions[{c['type']}]"] += 1
                        if len(shown) < examples:
                            shown.append(f"{key[1]}: {conds.get(c['type'])} -> {c}")
            elif a.get(k) != z.get(k):
                fields[k] += 1
                if len(shown) < examples:
                    shown.append(f"{key[1]}: {k} {a.get(k)!r} -> {z.get(k)!r}")
        if old.get("status") == new.get("status"):
            fields["(no status change)"] += 1
    return {"fields": dict(fields), "examples": shown}


def breakdown(writes: list[Write]) -> dict[str, int]:
    """Writes by "resource verb field-manager" (what to look at when a figure is not 0)."""
    return {" ".join(k): v for k, v in count(writes, "resource", "verb", "field_manager").items()}


class Bench:
    """What every part of one run shares."""

    def __init__(self, kube: Kube, kubeconfig: str, audit: AuditLog, who: Identity, tag: str):
        self.kube, self.kubeconfig, self.audit, self.who, self.tag = (
            kube, kubeconfig, audit, who, tag,
        )  # fmt: skip
        self.namespaces: set[str] = set()  # every namespace the run created pools in
        self.caps = Capabilities()  # the bed's, once its CRDs are installed (bed_capabilities)
        self.timed_out: Counter[str] = Counter()

    def namespaces_for(self, names: list[str]) -> list[str]:
        create_namespaces(self.kubeconfig, names)
        self.namespaces.update(names)
        return names

    def operator(self, name: str, namespaces: list[str], *args: str) -> Operator:
        return Operator(self.who.kubeconfig, name, namespaces, *args)

    async def quiet(self, nss: list[str], quiet_s: float = 10.0, limit_s: float = 180.0) -> float:
        """Wait until nobody has changed an object in `nss` for `quiet_s` (at most `limit_s`);
        the seconds waited (inf: never quiet)."""
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            now = self.audit.now()
            writes = self.audit.writes(since=now - quiet_s, until=now, namespaces=set(nss))
            if not [w for w in writes if w.resource != "events"]:  # the scheduler's retries
                return time.monotonic() - start
            await asyncio.sleep(2)
        return math.inf

    async def pools(self, nss: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p
            for ns in nss
            for p in (await self.kube.list(POOL, ns))[0]
        }

    def operator_writes(self, since: float, until: float | None, nss: list[str]) -> list[Write]:
        writes = self.audit.writes(since=since, until=until, namespaces=set(nss))
        return [w for w in writes if w.user == self.who.user]


async def burst_operator(b: Bench, ns: str, pools: int) -> list[float]:
    """One operator round: `pools` created at once while the operator runs; per pool, create
    call -> every child seen."""
    op = b.operator(f"burst-{ns}", [ns])
    try:
        await until(lambda: asyncio.to_thread(op.ready), 120, "the operator to start")
        seen = Seen(b.kube)
        await seen.start(ns)
        started = await create_pools(b.kube, [(ns, f"pool-{i:03d}") for i in range(pools)])
        lat = await latencies(seen, started, 600, "burst pools' children")
        seen.close()
    finally:
        op.stop()
    return lat


async def burst_floor(b: Bench, ns: str, pools: int) -> list[float]:
    """One floor round: the same creates at the same pace, the same watch, no operator running;
    the pools queue for 16 workers as they queue for the operator's (like for like: a floor
    applied inside each create's slot would pace the creates and never queue)."""
    seen = Seen(b.kube)
    await seen.start(ns)
    keys = [(ns, f"pool-{i:03d}") for i in range(pools)]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    workers = [asyncio.create_task(floor_worker(b.kube, queue, b.caps)) for _ in range(CONCURRENCY)]
    started = await create_pools(b.kube, keys, then=queue.put)
    lat = await latencies(seen, started, 600, "the floor's children")
    await queue.join()
    for w in workers:
        w.cancel()
    seen.close()
    return lat


async def bench_burst(b: Bench, pools: int, rounds: int = BURST_ROUNDS) -> dict[str, Any]:
    """`rounds` operator bursts alternating with as many floor bursts, each in a namespace of
    its own: a p95 of 100 samples moves with the machine's load, so both sides get the same
    moments and their samples are pooled (the per-round figures show the spread)."""
    lat: list[float] = []
    fl: list[float] = []
    per_round = []
    for r in range(rounds):
        ns, floor_ns = b.namespaces_for([f"burst-{b.tag}-{r}", f"burst-floor-{b.tag}-{r}"])
        if r % 2:  # the floor first every other round: neither side always goes second
            floor = await burst_floor(b, floor_ns, pools)
            one = await burst_operator(b, ns, pools)
        else:
            one = await burst_operator(b, ns, pools)
            floor = await burst_floor(b, floor_ns, pools)
        lat += one
        fl += floor
        per_round.append(
            {"p95_s": shown(percentile(one, 0.95)), "floor_p95_s": shown(percentile(floor, 0.95))}
        )
        delete_namespaces(b.kubeconfig, [ns, floor_ns])
    (single_ns,) = b.namespaces_for([f"single-{b.tag}"])
    op = b.operator("single", [single_ns])
    try:
        await until(lambda: asyncio.to_thread(op.ready), 120, "the operator to start")
        seen = Seen(b.kube)
        await seen.start(single_ns)
        singles = []
        for i in range(20):
            key = (single_ns, f"one-{i:02d}")
            singles += await latencies(seen, await create_pools(b.kube, [key]), 120, str(key))
        seen.close()
    finally:
        op.stop()
    delete_namespaces(b.kubeconfig, [single_ns])
    b.timed_out["burst"] += sum(1 for x in lat if math.isinf(x))
    b.timed_out["single"] += sum(1 for x in singles if math.isinf(x))
    b.timed_out["burst_floor"] += sum(1 for x in fl if math.isinf(x))
    return {
        "burst_pools": pools,
        "burst_rounds": per_round,
        "burst_p50_s": shown(statistics.median(lat)),
        "burst_p95_s": shown(percentile(lat, 0.95)),
        "floor_p95_s": shown(percentile(fl, 0.95)),
        "burst_p95_ratio": shown(percentile(lat, 0.95) / percentile(fl, 0.95)),
        "single_p50_s": shown(statistics.median(singles)),
        "single_p95_s": shown(percentile(singles, 0.95)),
    }


async def bench_floor(b: Bench, n: int) -> float:
    """Seconds to converge `n` existing pools by applying what the plan wants, 16 at a time."""
    nss = b.namespaces_for([f"scale-floor-{b.tag}-{n}-{i}" for i in range(NAMESPACES)])
    keys = [(nss[i % NAMESPACES], f"pool-{i:04d}") for i in range(n)]
    await create_pools(b.kube, keys)
    t0 = time.monotonic()
    bodies = [it for ns in nss for it in (await b.kube.list(POOL, ns))[0]]
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            await apply_children_and_status(b.kube, body, b.caps)

    await asyncio.gather(*(one(body) for body in bodies))
    waited = await until(lambda: converged(b.kube, set(keys), nss), 900, f"floor of {n} pools")
    floor_s = math.inf if math.isinf(waited) else time.monotonic() - t0
    delete_namespaces(b.kubeconfig, nss)
    return floor_s


async def bench_scale(b: Bench, n: int, idle_seconds: float) -> dict[str, Any]:
    floor_s = await bench_floor(b, n)
    nss = b.namespaces_for([f"scale-{b.tag}-{n}-{i}" for i in range(NAMESPACES)])
    keys = [(nss[i % NAMESPACES], f"pool-{i:04d}") for i in range(n)]
    await create_pools(b.kube, keys)

    op = b.operator(f"scale-{n}", nss)
    try:
        waited = await until(lambda: converged(b.kube, set(keys), nss), 900, f"{n} pools")
        converge_s = math.inf if math.isinf(waited) else time.monotonic() - op.started
        b.timed_out[f"scale_{n}_converge"] += math.isinf(converge_s)
        # Idle means nothing changes: a status that follows a Deployment's is no idle write, and
        # the bed's controller-manager (its client's default 20 requests/s) takes minutes after
        # convergence to create 1000 pools' ReplicaSets and pods and settle their statuses.
        settle_s = await b.quiet(nss, limit_s=600.0)
        # idle writes on a bed that never settled would measure the bed, not the operator
        b.timed_out[f"scale_{n}_settle"] += math.isinf(settle_s)
        rss = op.rss_mib()
        text0, cpu0, t0 = op.metrics(), op.cpu_seconds(), b.audit.now()
        pools0 = await b.pools(nss)
        await asyncio.sleep(idle_seconds)
        text1, t1 = op.metrics(), b.audit.now()
        idle_changed = status_changes(pools0, await b.pools(nss))
        requests = "workerpool_operator_api_requests_total"
        # the operator's own request counter (reads included: the audit log holds writes only)
        idle_requests = metric(text1, requests) - metric(text0, requests)
        idle_requests /= idle_seconds / 60
        idle_cpu = (op.cpu_seconds() - cpu0) / idle_seconds
        rss_idle = op.rss_mib()
    finally:
        op.stop()
    idle_writes = b.operator_writes(t0, t1, nss)
    idle_others = [w for w in b.audit.writes(since=t0, until=t1, namespaces=set(nss))
                   if w.user != b.who.user]  # fmt: skip

    before = await b.pools(nss)
    t_restart = b.audit.now()
    op2 = b.operator(f"scale-{n}-restart", nss)
    try:
        restart_idle_s = await idle(op2, n)
        b.timed_out[f"scale_{n}_restart_idle"] += math.isinf(restart_idle_s)
        await asyncio.sleep(5)
        looks = op2.value("workerpool_operator_reconciles_total") / n
    finally:
        op2.stop()
    restart_writes = b.operator_writes(t_restart, b.audit.now(), nss)
    changed = status_changes(before, await b.pools(nss))
    delete_namespaces(b.kubeconfig, nss)
    return {
        "scale_pools": n,
        "scale_converge_s": shown(converge_s),
        "scale_floor_s": shown(floor_s),
        "scale_converge_ratio": shown(converge_s / floor_s),
        "scale_rss_mib": max(rss, rss_idle),
        "idle_seconds": idle_seconds,
        "idle_requests_per_min": idle_requests,
        "idle_writes": len(idle_writes),
        "idle_writes_by": breakdown(idle_writes),
        "idle_settle_s": shown(settle_s),
        "idle_writes_by_others": len(idle_others),
        "idle_writes_by_others_by": {
            " ".join(k): v for k, v in count(idle_others, "resource", "verb", "program").items()
        },
        "idle_status_changes": idle_changed,
        "idle_cpu_cores": idle_cpu,
        "restart_writes": len(restart_writes),
        "restart_writes_by": breakdown(restart_writes),
        "restart_status_changes": changed,
        "restart_idle_s": shown(restart_idle_s),
        "restart_reconciles_per_pool": looks,
    }


async def bench_failover(b: Bench, trials: int = 5) -> dict[str, Any]:
    """SIGKILL the leader `trials` times; each time the killed replica comes back as standby."""
    (ns,) = b.namespaces_for([f"bench-ha-{b.tag}"])
    # The Lease lives in the bench's own namespace (a flag: OperatorProcess passes no
    # POD_NAMESPACE from this process's environment).
    elect = ("--leader-elect", "--operator-namespace", ns)
    replicas = [b.operator(f"ha-{i}", [ns], *elect) for i in range(2)]
    times = []
    try:
        for trial in range(trials):
            one = await until(
                lambda: asyncio.to_thread(lambda: sum(r.leads() for r in replicas) == 1),
                120,
                "exactly one leader",
            )
            if math.isinf(one):
                b.timed_out["failover_one_leader"] += 1
                break
            await asyncio.sleep(5)  # the standby's caches are warm
            leader = next(r for r in replicas if r.leads())
            standby = next(r for r in replicas if r is not leader)
            if standby.leads():
                raise RuntimeError("two leaders")
            leader.kill()
            killed = time.monotonic()
            took = await until(partial(asyncio.to_thread, standby.leads), 60, "the takeover")
            times.append(math.inf if math.isinf(took) else time.monotonic() - killed)
            b.timed_out["failover"] += math.isinf(took)
            print(f"failover {trial + 1}: {times[-1]:.1f}s", file=sys.stderr, flush=True)
            leader.restart()
    finally:
        for r in replicas:
            r.stop()
        kubectl(b.kubeconfig, "delete", "namespace", ns, "--wait=false", check=False)
    if not times:
        return {"failover_s": None, "failover_max_s": None}
    return {"failover_s": shown(statistics.median(times)), "failover_max_s": shown(max(times))}


def checkpoint(result: dict[str, Any]) -> None:
    """The figures so far (bench-results/operator.partial.json): a run that fails late keeps
    what it measured."""
    (RESULTS / "operator.partial.json").write_text(json.dumps(result, indent=2) + "\n")


async def run(scale: list[int], idle_seconds: float, burst: int, parts: set[str]) -> dict[str, Any]:
    cluster = LocalCluster()
    kubeconfig = str(cluster.acquire())
    os.environ["KUBECONFIG"] = kubeconfig
    tag = uuid.uuid4().hex[:4]
    kube = Kube()
    audit = AuditLog(cluster.audit_log)
    start = audit.now()
    result: dict[str, Any] = {}
    who = Identity(kubeconfig, tag)
    b = Bench(kube, kubeconfig, audit, who, tag)
    try:
        install_crds(kubeconfig)
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(POOL_CRD_FILE))
        wait_established(kubeconfig, "temporalworkerpools.workerpools.io")
        b.caps = await bed_capabilities(kube)
        result["floor_capabilities"] = {"service_monitor": b.caps.service_monitor,
                                        "keda": b.caps.keda}  # fmt: skip
        if "burst" in parts:
            result.update(await bench_burst(b, burst))
            checkpoint(result)
        curve = []
        for n in scale if "scale" in parts else []:
            print(f"scale {n} pools...", file=sys.stderr, flush=True)
            # the full idle window for the largest size; a minute for the smaller ones
            idle_s = idle_seconds if n == max(scale) else min(idle_seconds, 60.0)
            curve.append(await bench_scale(b, n, idle_s))
            checkpoint({**result, "scale_curve": curve})
        result["scale_curve"] = curve
        if curve:
            result.update(curve[-1])  # the headline figures are the largest size
        if "failover" in parts:
            result.update(await bench_failover(b))
        # Read before the bed is released: a bed this run started goes down with its audit log.
        foreign = foreign_writers(
            audit.writes(since=start, namespaces=b.namespaces),
            operator_user=who.user,
            own_managers={BENCH_MANAGER},
        )
    finally:
        await kube.close()
        who.close()
        cluster.release()
    result["foreign_writers"] = sum(foreign.values())
    result["foreign_writers_by"] = dict(foreign)
    result["timed_out"] = {k: v for k, v in b.timed_out.items() if v}
    return result


# The figures issue 21 asks of every run, with their goals (checked in the table's last lines).
HEADLINE: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
    ("idle_writes", "== 0 (audit log)", lambda x: x == 0),
    ("restart_writes", "== 0 (audit log)", lambda x: x == 0),
    ("scale_converge_ratio", "<= 2", lambda x: x <= 2),
    ("burst_p95_ratio", "<= 1.5", lambda x: x <= 1.5),
    ("foreign_writers", "== 0 (audit log)", lambda x: x == 0),
)


def headline(result: dict[str, Any]) -> list[str]:
    """One line per headline key: its value, its goal, and whether it is met."""
    lines = []
    for key, goal, ok in HEADLINE:
        if key not in result:
            lines.append(f"  {key:<22} {'not run':>10}  goal {goal}")
            continue
        value = result[key]
        verdict = "TIMED OUT" if value is None else ("met" if ok(value) else "MISSED")
        shown_value = "t/o" if value is None else f"{value:g}"
        lines.append(f"  {key:<22} {shown_value:>10}  goal {goal:<18} {verdict}")
    return lines


def report(result: dict[str, Any]) -> None:
    """The table on stdout (also `--show`: the table of the last run's JSON)."""
    rows = [
        (f"burst ({result.get('burst_pools')} pools) p50 / p95", "burst_p50_s", "burst_p95_s", ""),
        ("floor (direct SSA) p95", "floor_p95_s", None, ""),
        ("burst p95 / floor p95", "burst_p95_ratio", None, "goal <= 1.5"),
        ("single p50 / p95", "single_p50_s", "single_p95_s", "goal p95 <= 1 s"),
        ("failover after SIGKILL, median / max", "failover_s", "failover_max_s", "goal <= 15 s"),
    ]

    def fmt(x: float | None) -> str:
        return "timed out" if x is None else f"{x:.2f}"

    print("\noperator benchmark")
    for label, k1, k2, goal in rows:
        if k1 not in result:
            continue
        v = fmt(result[k1]) + (f" / {fmt(result[k2])}" if k2 else "")
        print(f"  {label:<34} {v:>16}  {goal}")
    for i, r in enumerate(result.get("burst_rounds") or []):
        print(f"    round {i + 1}: burst p95 {fmt(r['p95_s'])}, floor p95 {fmt(r['floor_p95_s'])}")
    print(
        f"\n  {'pools':>6} {'converge s':>11} {'floor s':>8} {'ratio':>6} {'RSS MiB':>8} "
        f"{'idle req/min':>13} {'idle writes':>12} {'restart writes':>15} {'restart idle s':>15} "
        f"{'looks/pool':>11}"
    )

    def col(x: float | None, width: int, digits: int) -> str:
        return f"{'t/o' if x is None else f'{x:.{digits}f}':>{width}}"

    for r in result.get("scale_curve", []):
        print(
            f"  {r['scale_pools']:>6} {col(r['scale_converge_s'], 11, 1)} "
            f"{col(r['scale_floor_s'], 8, 1)} {col(r['scale_converge_ratio'], 6, 2)} "
            f"{r['scale_rss_mib']:>8.0f} {r['idle_requests_per_min']:>13.1f} "
            f"{r['idle_writes']:>12} {r['restart_writes']:>15} "
            f"{col(r['restart_idle_s'], 15, 1)} {r['restart_reconciles_per_pool']:>11.2f}"
        )
        for what in ("idle_writes_by", "restart_writes_by", "idle_writes_by_others_by"):
            if r.get(what):
                print(f"         {what}: {r[what]}")
        if (r.get("idle_status_changes") or {}).get("fields"):
            print(f"         idle_status_changes: {r['idle_status_changes']}")
    print("  goals at 1000: converge <= 60 s and ratio <= 2; RSS <= 200 MiB; idle and restart")
    print("  writes 0 (from the audit log); restart idle <= 30 s; idle requests: none per pool")
    if result.get("foreign_writers_by"):
        print(f"  foreign writers in the bench's namespaces: {result['foreign_writers_by']}")
    print(f"\n  headline ({result.get('scale_pools', '?')} pools; bench-results/operator.json)")
    for line in headline(result):
        print(line)
    if result.get("timed_out"):
        print(f"  TIMED OUT (failures, counted in the figures): {result['timed_out']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="100,300,1000", help="pool counts for the scale curve")
    p.add_argument("--idle-seconds", type=float, default=300.0)
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="--scale 100 --idle-seconds 60")
    p.add_argument(
        "--parts", default="burst,scale,failover", help="which parts to run (while iterating)"
    )
    p.add_argument("--show", action="store_true", help="print the table of the last run's JSON")
    args = p.parse_args(argv)
    out = RESULTS / "operator.json"
    if args.show:
        result = json.loads(out.read_text())
        report(result)
        return 0
    if args.quick:
        args.scale, args.idle_seconds = "100", 60.0
    RESULTS.mkdir(exist_ok=True)
    scale = [int(s) for s in args.scale.split(",") if s]
    parts = set(args.parts.split(","))
    result = asyncio.run(run(scale, args.idle_seconds, args.burst, parts))
    out.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    print(f"  -> {out}")
    return 1 if result["timed_out"] or result["foreign_writers"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
