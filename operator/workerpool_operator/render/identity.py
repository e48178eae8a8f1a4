"""Render the pool's own ServiceAccount, and say which account its pods may run as (pure)."""

from __future__ import annotations

from workerpool_operator import grants as g
from workerpool_operator.api.v1alpha1 import TemporalWorkerPool
from workerpool_operator.render.common import Manifest, object_meta


def render_service_account(pool: TemporalWorkerPool) -> Manifest:
    """One ServiceAccount per pool, named after it, with no API token mounted: workers talk to
    Temporal, not to Kubernetes, and a pool's pods never share an identity with other
    workloads of the namespace (RoleBindings to `default` do not reach them)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(pool),
        "automountServiceAccountToken": False,
    }


def service_account_name(pool: TemporalWorkerPool) -> str:
    """The pods' ServiceAccount: `template.serviceAccountName` when set, else the pool's own."""
    template = pool.spec.template
    if template is not None and template.service_account_name:
        return str(template.service_account_name)
    return pool.name


def check_service_account(pool: TemporalWorkerPool, grants: g.Grants) -> None:
    """Refuse a `template.serviceAccountName` other than the pool's own unless the admin
    granted it: a pool author who may not create pods as another account must not get them
    through the operator (raises GrantError: the plan reports InvalidSpec, writing nothing)."""
    name = service_account_name(pool)
    problem = grants.service_account_error(pool.namespace, name, pool.name)
    if problem is not None:
        raise g.GrantError(problem)
