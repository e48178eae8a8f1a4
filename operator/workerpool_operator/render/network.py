"""Render the pool's optional NetworkPolicy (pure)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from workerpool_operator import grants as g
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.common import Manifest, object_meta, selector_labels

# <service>.<namespace>.svc[.<cluster domain>]
_SERVICE_HOST = re.compile(r"^[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.[a-z0-9.-]+)?$")
DNS_PORT = 53


def _selector(sel: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [e.dump() for e in sel.match_expressions]
    return out


def temporal_egress(address: str, grants: g.Grants) -> dict[str, Any]:
    """Egress to the Temporal frontend: an IP exactly, a cluster Service by its namespace, any
    other host name by port only (NetworkPolicies cannot match DNS names).

    "Port only" opens that port to every address, which widens an admin's default-deny: it
    needs the admin's `hostEgressAnywhere` grant.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": int(port)}]}
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None:
        match = _SERVICE_HOST.match(host)
        if match:
            ns = match.group(1)
            rule["to"] = [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
            ]
        elif not grants.allows(g.HOST_EGRESS_ANYWHERE):
            raise g.GrantError(
                f"spec.networkPolicy: the Temporal address {address!r} is a host name outside "
                f"the cluster, which a NetworkPolicy can only allow as port {port} to every "
                "address; use an IP or a <service>.<namespace>.svc address, or ask the cluster "
                f"admin for the {g.HOST_EGRESS_ANYWHERE!r} network grant"
            )
        return rule
    rule["to"] = [{"ipBlock": {"cidr": f"{ip}/{ip.max_prefixlen}"}}]
    return rule


def _dns_egress(grants: g.Grants) -> dict[str, Any]:
    """Port 53 to the cluster DNS pods only, or to any address with `dnsAnywhere`."""
    rule: dict[str, Any] = {
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]
    }
    if not grants.allows(g.DNS_ANYWHERE):
        rule["to"] = [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": grants.dns_namespace}
                },
                "podSelector": {"matchLabels": dict(grants.dns_pod_labels)},
            }
        ]
    return rule


def _metrics_from(pool: TemporalWorkerPool, sel: Any, grants: g.Grants) -> dict[str, Any]:
    """The pool's namespace selector, narrowed to its own namespace and the admin's metrics
    namespaces unless the admin granted `metricsFromAnyNamespace`."""
    out = _selector(sel)
    if grants.allows(g.METRICS_FROM_ANY_NAMESPACE):
        return out
    allowed = sorted({pool.namespace, *grants.metrics_namespaces})
    out["matchExpressions"] = [
        *out.get("matchExpressions", []),
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed},
    ]
    return out


def render_network_policy(pool: TemporalWorkerPool, grants: g.Grants) -> Manifest | None:
    """Ingress only to the metrics port from the selected namespaces; egress only to Temporal,
    DNS and the listed extras. None when the pool has no spec.networkPolicy.

    Allow rules add up across NetworkPolicies, so every rule here can widen what an admin's
    default-deny allows; the parts a pool author could not justify alone need `grants`
    (raises GrantError, which the plan reports as the pool's InvalidSpec, writing nothing).
    """
    spec = pool.spec.network_policy
    if spec is None:
        return None
    if spec.extra_egress and not grants.allows(g.EXTRA_EGRESS):
        raise g.GrantError(
            "spec.networkPolicy.extraEgress adds egress rules that can widen the cluster "
            f"admin's network policies: remove it, or ask the admin for the {g.EXTRA_EGRESS!r} "
            "network grant"
        )
    conn = pool.spec.effective_connection
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(pool),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(pool)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": _metrics_from(
                                pool, spec.metrics_from_namespaces, grants
                            )
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": pool.spec.metrics.port}],
                }
            ],
            "egress": [
                temporal_egress(conn.address, grants),
                _dns_egress(grants),
                *(spec.extra_egress or []),
            ],
        },
    }
