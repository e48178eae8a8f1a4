"""Render the pool's optional NetworkPolicy (pure)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

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


def temporal_egress(address: str) -> dict[str, Any]:
    """Egress to the Temporal frontend: an IP exactly, a cluster Service by its namespace, any
    other host name by port only (NetworkPolicies cannot match DNS names)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": int(port)}]}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        match = _SERVICE_HOST.match(host)
        if match:
            ns = match.group(1)
            rule["to"] = [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
            ]
        return rule
    rule["to"] = [{"ipBlock": {"cidr": f"{ip}/{ip.max_prefixlen}"}}]
    return rule


def render_network_policy(pool: TemporalWorkerPool) -> Manifest | None:
    """Ingress only to the metrics port from the selected namespaces; egress only to Temporal,
    DNS and the listed extras. None when the pool has no spec.networkPolicy."""
    spec = pool.spec.network_policy
    if spec is None:
        return None
    conn = pool.spec.effective_connection
    dns = {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(pool),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(pool)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": _selector(spec.metrics_from_namespaces)}],
                    "ports": [{"protocol": "TCP", "port": pool.spec.metrics.port}],
                }
            ],
            "egress": [temporal_egress(conn.address), dns, *(spec.extra_egress or [])],
        },
    }
