"""Attacks on the user-facing roles the project ships (issue 20, item 6): a viewer or a
connection author trying to do more than their role says, asked of the real API server as the
role's ServiceAccount (`kubectl auth can-i` with its token)."""

from __future__ import annotations

import pytest

from tests.security.attacks import attack
from tests.security.conftest import Bed


@attack("viewer: change pools or connections, or read Secrets")
@pytest.mark.parametrize(
    ("verb", "resource"),
    [("create", "temporalworkerpools"), ("patch", "temporalworkerpools"),
     ("delete", "temporalworkerpools"), ("create", "temporalconnections"),
     ("patch", "temporalconnections"),
     ("get", "secrets"), ("list", "secrets")],
)  # fmt: skip
def test_a_viewer_reads_pools_and_connections_and_changes_nothing(
    bed: Bed, verb: str, resource: str
) -> None:
    viewer = bed.tenants["viewer"]
    for read in ("temporalworkerpools", "temporalconnections"):
        assert viewer.can("list", read), f"the viewer cannot list {read}"
    assert not viewer.can(verb, resource)


@attack("connection author: read the Secrets its connections send, or write what pools own")
@pytest.mark.parametrize(
    ("verb", "resource"),
    [("get", "secrets"), ("list", "secrets"), ("create", "secrets"),
     ("create", "deployments"), ("create", "triggerauthentications.keda.sh"),
     ("create", "rolebindings"), ("create", "clustertemporalconnections")],
)  # fmt: skip
def test_a_connection_author_writes_connections_and_reads_no_secret(
    bed: Bed, verb: str, resource: str
) -> None:
    author = bed.connection_author()
    assert author.can("create", "temporalconnections")
    assert not author.can(verb, resource)
