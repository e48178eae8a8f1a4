"""What the cluster admin granted pools beyond what their authors could do themselves (pure).

The operator acts with more rights than a pool author has: it writes NetworkPolicies and
Deployments (whose pods run as a ServiceAccount) and dials Temporal addresses for them.
Anything that would give a pool more than its author could get alone needs a grant here, set
by the admin on the operator (flags/env, chart values `grants.*`), never by a pool
(docs/security.md). The defaults grant nothing that widens.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

# Network grants, by the name the admin writes in WORKERPOOL_NETWORK_GRANTS / the chart.
EXTRA_EGRESS = "extraEgress"
DNS_ANYWHERE = "dnsAnywhere"
HOST_EGRESS_ANYWHERE = "hostEgressAnywhere"
METRICS_FROM_ANY_NAMESPACE = "metricsFromAnyNamespace"
NETWORK_GRANTS = (EXTRA_EGRESS, DNS_ANYWHERE, HOST_EGRESS_ANYWHERE, METRICS_FROM_ANY_NAMESPACE)


class GrantError(ValueError):
    """A pool asks for something only an admin grant allows; the message names the grant."""


@dataclass(frozen=True)
class Grants:
    """The admin's grants (all off by default).

    - `network`: names from NETWORK_GRANTS that pool NetworkPolicies may use.
    - `metrics_namespaces`: namespaces that may always scrape pool metrics (besides the pool's
      own), e.g. the monitoring namespace; a pool's `metricsFromNamespaces` narrows this.
    - `dns_namespace` / `dns_pod_labels`: where the cluster DNS runs (egress on port 53 goes
      only there without `dnsAnywhere`).
    - `allowed_addresses`: shell patterns (`*.tmprl.cloud:7233`) of the Temporal addresses
      connections and inline pools may name; empty allows any.
    - `service_accounts`: shell patterns of `namespace/name` (`payments/gpu-runner`,
      `*/temporal-worker`) of the ServiceAccounts a pool's `template.serviceAccountName` may
      name besides the pool's own; empty allows none.
    """

    network: frozenset[str] = frozenset()
    metrics_namespaces: tuple[str, ...] = ()
    dns_namespace: str = "kube-system"
    dns_pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    allowed_addresses: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()

    def allows(self, grant: str) -> bool:
        return grant in self.network

    def address_allowed(self, address: str) -> bool:
        """Whether a connection or inline pool may name this `host:port`."""
        if not self.allowed_addresses:
            return True
        addr = address.strip().lower()
        return any(fnmatch.fnmatchcase(addr, p.strip().lower()) for p in self.allowed_addresses)

    def address_error(self, address: str, field_name: str) -> str | None:
        """None when allowed, else the message for the object's status."""
        if self.address_allowed(address):
            return None
        return (
            f"{field_name} {address!r} is not among the addresses the cluster admin allows "
            f"({', '.join(self.allowed_addresses)}): use one of those, or ask the admin to add "
            "it to the operator's allowed addresses (chart value grants.allowedAddresses)"
        )

    def service_account_error(self, namespace: str, name: str, pool: str) -> str | None:
        """None when a pool named `pool` may run its pods as ServiceAccount `name`, else the
        message for its status: only its own account, or one the admin granted."""
        if name == pool or any(
            fnmatch.fnmatchcase(f"{namespace}/{name}", p) for p in self.service_accounts
        ):
            return None
        return (
            f"spec.template.serviceAccountName {name!r} would run the pool's pods as a "
            "ServiceAccount the pool does not own (its API rights, its cloud identity): remove "
            "it to run as the pool's own account, or ask the cluster admin to grant "
            f"{namespace}/{name} (chart value grants.serviceAccounts)"
        )


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def grants_from_env(env: Mapping[str, str]) -> Grants:
    """Grants from the operator's environment (the chart sets these from `grants.*`).

    Unknown network grant names raise, so a typo does not silently grant nothing.
    """
    network = _split(env.get("WORKERPOOL_NETWORK_GRANTS"))
    unknown = [n for n in network if n not in NETWORK_GRANTS]
    if unknown:
        raise ValueError(
            f"WORKERPOOL_NETWORK_GRANTS: unknown grant(s) {', '.join(unknown)}; "
            f"known: {', '.join(NETWORK_GRANTS)}"
        )
    labels = tuple(
        (k, v)
        for k, _, v in (
            kv.partition("=")
            for kv in _split(env.get("WORKERPOOL_DNS_POD_LABELS", "k8s-app=kube-dns"))
        )
    )
    return Grants(
        network=frozenset(network),
        metrics_namespaces=tuple(_split(env.get("WORKERPOOL_METRICS_NAMESPACES"))),
        dns_namespace=env.get("WORKERPOOL_DNS_NAMESPACE") or "kube-system",
        dns_pod_labels=labels,
        allowed_addresses=tuple(_split(env.get("WORKERPOOL_ALLOWED_ADDRESSES"))),
        service_accounts=tuple(_split(env.get("WORKERPOOL_SERVICE_ACCOUNTS"))),
    )
