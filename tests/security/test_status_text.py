"""Attack on the status the operator writes from what a tenant-chosen server or field says
(issue 20, item 5: errors in status bounded and sanitised): a connection author picks a Temporal
namespace of 1000 characters with terminal escapes and a newline, against the real Temporal
dev server; whatever the health check writes back must stay printable and within 1000
characters, so a tenant can neither forge lines in `kubectl` output and logs nor bloat every
status write."""

from __future__ import annotations

import json
from typing import Any

from testbed.temporal import TemporalDevServer
from tests.security.attacks import attack, until
from tests.security.conftest import Bed
from tests.security.tenants import connection, get, unique

HOSTILE = "\x1b[2J\x1b[31mFAKE: Ready True\n\x00" + "A" * 970


def texts(status: dict[str, Any]) -> list[str]:
    """Every message the status carries (conditions and lastError)."""
    out = [str(c.get("message") or "") for c in status.get("conditions") or []]
    return [*out, str((status.get("lastError") or {}).get("message") or "")]


@attack("connection author: control characters and unbounded text in the connection's status")
async def test_status_text_from_a_tenant_is_printable_and_bounded(
    bed: Bed, temporal: TemporalDevServer
) -> None:
    name = unique("text")
    result = bed.connection_author().apply(connection(name, temporal.address, namespace=HOSTILE))
    assert result.returncode == 0, result.stderr

    def status() -> dict[str, Any]:
        return (get(bed, "temporalconnection", name) or {}).get("status") or {}

    def checked() -> bool:
        return any(c.get("type") == "Ready" for c in status().get("conditions") or [])

    await until(checked, "the health check's status for the connection", status)
    written = texts(status())
    assert any("FAKE" in t for t in written), json.dumps(status())  # the text did reach status
    for text in written:
        assert len(text) <= 1000, len(text)
        assert text.isprintable(), repr(text[:80])
