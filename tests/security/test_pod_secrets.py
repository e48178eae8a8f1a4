"""Attack on the Secrets a pool's own fields name (issue 20, item 1): a pool author who may not
read a Secret of the namespace hands it to the pool's pods through `env`, `envFrom`, a secret or
projected volume, or `imagePullSecrets`, and reads it from the worker's code. Kubernetes lets
whoever creates pods mount any Secret of the namespace; a pool author creates no pods, the
operator does. The optional admission policy (here bound to team-a for this test) asks the API
server whether the pool's writer may `get` each Secret the pool names."""

from __future__ import annotations

from typing import Any

from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import admission_policy, pool, secret, unique

REFUSED = "pods may use only the Secrets that whoever writes the pool may read"


def naming(name: str, secret_name: str) -> dict[str, dict[str, Any]]:
    """One pool per way a pool's own fields can name a Secret."""
    mount = [{"name": "s", "mountPath": "/s"}]
    return {
        "env": pool(f"{name}-env", env=[{"name": "DB", "valueFrom": {
            "secretKeyRef": {"name": secret_name, "key": "password"}}}]),
        "envFrom": pool(f"{name}-envfrom", envFrom=[{"secretRef": {"name": secret_name}}]),
        "volume": pool(f"{name}-vol", template={"volumes": [{"name": "s", "secret": {
            "secretName": secret_name}}], "volumeMounts": mount}),
        "projected": pool(f"{name}-proj", template={"volumes": [{"name": "s", "projected": {
            "sources": [{"secret": {"name": secret_name}}]}}], "volumeMounts": mount}),
        "imagePullSecrets": pool(f"{name}-pull", template={
            "imagePullSecrets": [{"name": secret_name}]}),
    }  # fmt: skip


@attack("pool author: hand the pool's pods a Secret the author may not read")
async def test_a_pool_names_only_secrets_its_author_may_read(bed: Bed) -> None:
    name = unique("podsecret")
    db, shared = f"{name}-db", f"{name}-shared"
    secret(bed, db, {"password": b"s3cr3t"}, opted_in=False)
    secret(bed, shared, {"password": b"granted"}, opted_in=False)
    author = bed.pool_author()
    assert not author.can("get", "secrets")
    # The namespace owner lets the pool author read one Secret: that one they could hand to
    # pods themselves, so a pool may name it.
    ns, reader = ("-n", bed.team_a), f"{name}-read"
    bed.kube.kubectl("create", "role", reader, *ns, "--verb=get", "--resource=secrets",
                     f"--resource-name={shared}")  # fmt: skip
    bed.kube.kubectl("create", "rolebinding", reader, *ns, f"--role={reader}",
                     f"--serviceaccount={bed.team_a}:as-pool-author")  # fmt: skip
    with admission_policy(bed, bed.team_a):
        cases = naming(name, db)
        refused: dict[str, str] = {}

        def probe() -> bool:
            for key, obj in cases.items():
                result = author.apply(obj)
                if result.returncode == 0:  # not enforced yet: take it back, try again
                    bed.kube.run("delete", "twp", obj["metadata"]["name"], "-n", bed.team_a)
                    refused.pop(key, None)
                elif REFUSED in result.stderr:
                    refused[key] = result.stderr
            return set(refused) == set(cases)

        await until(probe, "the policy refusing every way of naming the Secret", lambda: refused)
        for key, obj in naming(f"{name}-ok", shared).items():
            result = author.apply(obj)
            assert result.returncode == 0, f"{key}: {result.stderr}"
        # The namespace owner writes a pool that names the Secret; the pool author may still
        # edit it, the reference unchanged, but not add another.
        owned = cases["env"]
        bed.kube.apply(owned, namespace=bed.team_a, server_side=False)
        owned["spec"]["replicas"] = 2
        result = author.apply(owned)
        assert result.returncode == 0, result.stderr
        owned["spec"]["envFrom"] = [{"secretRef": {"name": f"{name}-other"}}]
        result = author.apply(owned)
        assert result.returncode != 0
        assert REFUSED in result.stderr
