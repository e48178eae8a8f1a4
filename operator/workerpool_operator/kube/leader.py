"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's timing rules.

Every replica keeps its caches warm; only the holder of the Lease reconciles, scales and
writes. The holder renews every `retry` seconds and stops writing (the fence in kube/client.py) once
`renew_deadline` has passed without a successful renewal, before the lease can expire for
the others at `lease_duration`: two replicas never write at the same time. A standby takes
the lease once it has seen the same renewal for a whole `lease_duration` on its own clock (no
trust in the other replica's clock), so a SIGKILLed leader is replaced within
lease_duration + retry seconds. A leader that stops cleanly releases the lease at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workerpool_operator import metrics
from workerpool_operator.aio import sleep_or_stop
from workerpool_operator.kinds import LEASE
from workerpool_operator.kube.client import Kube, path
from workerpool_operator.kube.errors import ApiError, Conflict
from workerpool_operator.names import LEASE_NAME

log = logging.getLogger(__name__)


def _now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseNamespaceMissing(RuntimeError):
    """The Lease's namespace does not exist (the API server answers 404 to the create)."""


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    identity: str
    name: str = LEASE_NAME
    lease_duration: float = 8.0
    renew_deadline: float = 5.0
    retry: float = 1.5
    clock: Callable[[], float] = time.monotonic
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _renewed_at: float = -1e9
    _seen: tuple[str, str] | None = None  # (holder, renewTime) last observed
    _seen_at: float = 0.0

    def is_leader(self) -> bool:
        """The write fence: leading, and renewed recently enough that no one else can lead."""
        return self.leading.is_set() and self.clock() - self._renewed_at < self.renew_deadline

    def _spec(self, lease: dict[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        spec = dict((lease or {}).get("spec") or {})
        now = _now_micro()
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if lease is not None else 0
            )
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.lease_duration),
            renewTime=now,
        )
        return spec

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; True when we hold the lease afterwards."""
        lease = await self.kube.request("GET", path(LEASE, self.namespace, self.name), kind=LEASE)
        if lease is None:
            body = {
                "apiVersion": LEASE.api_version,
                "kind": LEASE.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(None, acquire=True),
            }
            created = await self.kube.request(
                "POST", path(LEASE, self.namespace), kind=LEASE, body=body
            )
            if created is None:  # 404: no Lease can exist there, so nobody may lead
                raise LeaseNamespaceMissing(
                    f"namespace {self.namespace!r} of the leader Lease does not exist: "
                    "create it or set --operator-namespace ($POD_NAMESPACE)"
                )
            return True
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        renew = str(spec.get("renewTime") or "")
        now = self.clock()
        if (holder, renew) != self._seen:
            self._seen, self._seen_at = (holder, renew), now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now - self._seen_at < duration:
            return False  # someone else holds a lease we saw renewed recently
        lease["spec"] = self._spec(lease, acquire=holder != self.identity)
        # PUT with the resourceVersion we read: of two candidates, exactly one wins. None
        # (404): the Lease was deleted meanwhile; the next round creates it.
        written = await self.kube.request(
            "PUT", path(LEASE, self.namespace, self.name), kind=LEASE, body=lease
        )
        return written is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire, renew, and on losing the lease clear `leading` and set `lost`."""
        try:
            while not stop.is_set():
                try:
                    held = await self._try()
                except Conflict:
                    held = False  # another replica won this round
                except ApiError as exc:
                    held = False
                    log.warning("leader election: %s", exc.sentence())
                except Exception as exc:
                    held = False
                    log.warning("leader election: %s", exc)
                if held:
                    self._renewed_at = self.clock()
                    if not self.leading.is_set():
                        log.info("became leader", extra={"identity": self.identity})
                        self.lost.clear()
                        self.leading.set()
                        metrics.LEADER.set(1)
                elif self.leading.is_set() and not self.is_leader():
                    log.warning("lost the leader lease", extra={"identity": self.identity})
                    self.leading.clear()
                    self.lost.set()
                    metrics.LEADER.set(0)
                await sleep_or_stop(stop, self.retry)
        finally:
            if self.leading.is_set():
                await self.release()

    async def release(self) -> None:
        """Hand the lease back on a clean stop, so the standby takes over without waiting."""
        self.leading.clear()
        metrics.LEADER.set(0)
        try:
            lease = await self.kube.request(
                "GET", path(LEASE, self.namespace, self.name), kind=LEASE
            )
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.kube.request(
                    "PUT", path(LEASE, self.namespace, self.name), kind=LEASE, body=lease
                )
        except Exception as exc:
            log.warning("could not release the leader lease: %s", exc)
