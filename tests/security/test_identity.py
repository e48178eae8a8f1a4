"""Attacks on identity: a pool author trying to run workers as a ServiceAccount the pool does
not own, or to hand them an API token or a node path (issue 20, item 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import admission_policy, pool, ready, unique, wait_reason


def deployment(bed: Bed, name: str) -> dict[str, Any] | None:
    got = bed.kube.run("get", "deployment", name, "-n", bed.team_a, "-o", "json")
    return json.loads(got.stdout) if got.returncode == 0 else None


TOKEN_VOLUME = {
    "name": "t",
    "projected": {"sources": [{"serviceAccountToken": {"path": "token", "audience": "sts"}}]},
}


@attack("pool author: a projected serviceAccountToken or node-backed volume")
@pytest.mark.parametrize(
    "volume",
    [TOKEN_VOLUME, {"name": "g", "gitRepo": {"repository": "https://example.com/x.git"}},
     {"name": "f", "flexVolume": {"driver": "example.com/x"}}],
    ids=["projected-token", "gitRepo", "flexVolume"],
)  # fmt: skip
def test_identity_and_node_volumes_are_refused_by_the_schema(
    bed: Bed, volume: dict[str, Any]
) -> None:
    template = {"volumes": [volume], "volumeMounts": [{"name": volume["name"], "mountPath": "/v"}]}
    result = bed.pool_author().apply(pool(unique("vol"), template=template))
    assert result.returncode != 0, "the API server admitted the pool"
    assert "serviceAccountToken, gitRepo and flexVolume" in result.stderr, result.stderr


@attack("pool author: name the pool after an existing ServiceAccount to run as it")
@pytest.mark.parametrize("existing", ["ci-deployer", "default"])
async def test_a_pool_never_runs_as_a_service_account_it_does_not_own(
    bed: Bed, existing: str
) -> None:
    if existing != "default":
        bed.kube.kubectl("create", "serviceaccount", existing, "-n", bed.team_a)
    assert bed.pool_author().apply(pool(existing)).returncode == 0
    await wait_reason(bed, existing, "NameConflict")
    assert "ServiceAccount" in ready(bed, existing)["message"]
    dep = deployment(bed, existing)
    account = (dep or {}).get("spec", {}).get("template", {}).get("spec", {})
    assert dep is None or account.get("serviceAccountName") != existing, (
        "the pool's Deployment runs as a ServiceAccount the pool does not own"
    )
    bed.kube.kubectl("delete", "twp", existing, "-n", bed.team_a, "--wait=false")


@attack("pool author: get past the optional admission policy (token, node volume, reserved name)")
async def test_the_admission_policy_refuses_identity_and_node_paths(bed: Bed) -> None:
    """The shipped ValidatingAdmissionPolicy, bound to team-b only."""
    with admission_policy(bed, bed.team_b):
        cases = {
            "projected-configmap": pool(unique("cm"), template={"volumes": [{
                "name": "t", "projected": {"sources": [{"configMap": {"name": "x"}}]}}],
                "volumeMounts": [{"name": "t", "mountPath": "/t"}]}),
            "nfs": pool(unique("nfs"), template={"volumes": [{
                "name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}],
                "volumeMounts": [{"name": "n", "mountPath": "/n"}]}),
            "default": pool("default"),
            "tolerate-all": pool(unique("tol"), template={"tolerations": [{"operator": "Exists"}]}),
        }  # fmt: skip
        refused: dict[str, str] = {}

        def probe() -> bool:
            for key, obj in cases.items():
                result = bed.kube.apply(obj, namespace=bed.team_b, check=False, server_side=False)
                if result.returncode == 0:
                    bed.kube.run("delete", "twp", obj["metadata"]["name"], "-n", bed.team_b)
                    refused.pop(key, None)
                else:
                    refused[key] = result.stderr
            # The configMap projection is allowed: the policy is a filter, not a wall.
            return set(refused) == {"nfs", "default", "tolerate-all"}

        await until(probe, "the policy refusing exactly nfs, default, tolerate-all",
                    lambda: refused)  # fmt: skip


@attack("pool author: run pods as another ServiceAccount through template.serviceAccountName")
async def test_a_pool_runs_as_another_service_account_only_where_the_admin_granted_it(
    bed: Bed,
) -> None:
    """The namespace's `ci-deployer` account (say, bound to deploy rights or a cloud role); the
    pool author names it in the pool's template. The session's operator runs with the default
    grants (no grants.serviceAccounts), so the pool is InvalidSpec and no Deployment runs as
    it; the admission policy, where installed, refuses the same earlier."""
    account = unique("ci-deployer")
    bed.kube.kubectl("create", "serviceaccount", account, "-n", bed.team_a)
    name = unique("borrow")
    result = bed.pool_author().apply(pool(name, template={"serviceAccountName": account}))
    assert result.returncode == 0, result.stderr
    await wait_reason(bed, name, "InvalidSpec")
    message = ready(bed, name)["message"]
    assert "spec.template.serviceAccountName" in message
    assert "grants.serviceAccounts" in message
    assert deployment(bed, name) is None, "a Deployment was written for the pool"
