"""What 0.1/0.2 pools could write and 0.3 refuses, kept apart from the current API: Secrets in
a pool's inline spec.connection (its schema, admission rules and the check for stored pools)."""

from __future__ import annotations

from typing import Any

from workerpool_operator.api.common import cel, name_rule, schema_overlay
from workerpool_operator.api.connection import ConnectionSpec, address_rule

MOVE_CREDENTIALS = (
    "move the credentials into a TemporalConnection (spec.tls.secretName, "
    "spec.apiKeySecretRef; its Secrets labelled workerpools.io/temporal-credentials=true) and "
    "reference it with spec.connectionRef: {kind: TemporalConnection, name: ...} instead of "
    "spec.connection"
)

# A pool's spec.connection is a ConnectionSpec documented for the inline case: a plain or
# system-TLS address. The Secret fields stay in its schema, so that a 0.2 manifest is refused
# with this message instead of having them pruned silently.
INLINE_CONNECTION: dict[str, Any] = schema_overlay(
    {
        "properties": {
            "tls": {
                "description": "Enable TLS with the system CA roots (`tls: {}`); see TLSSpec.",
                "properties": {
                    "secretName": {
                        "description": (
                            "Refused since 0.3 (admission): a pool may not name a Secret; put "
                            "the certificate into a TemporalConnection and use "
                            "spec.connectionRef."
                        ),
                        **cel(name_rule("connection.tls.secretName")),
                    }
                },
            },
            "apiKeySecretRef": {
                "description": (
                    "Refused since 0.3 (admission): put the API key into a TemporalConnection "
                    "and use spec.connectionRef."
                ),
                "properties": {
                    "name": {
                        "description": "Name of the Secret in the pool's namespace.",
                        **cel(name_rule("connection.apiKeySecretRef.name")),
                    }
                },
            },
        },
        **cel(
            address_rule("connection.address"),
            (
                "!has(self.tls) || !has(self.tls.secretName)",
                "spec.connection.tls.secretName is no longer accepted in a pool: "
                + MOVE_CREDENTIALS,
            ),
            (
                "!has(self.apiKeySecretRef)",
                "spec.connection.apiKeySecretRef is no longer accepted in a pool: "
                + MOVE_CREDENTIALS,
            ),
        ),
    }
)


def refuse_inline_secrets(conn: ConnectionSpec | None) -> ConnectionSpec | None:
    """The admission rules above, for pools stored before they existed (those are not rolled
    back: the operator leaves their children as they are and reports InvalidSpec)."""
    if conn is not None and conn.tls is not None and conn.tls.secret_name:
        raise ValueError(f"tls.secretName is no longer accepted in a pool: {MOVE_CREDENTIALS}")
    if conn is not None and conn.api_key_secret_ref is not None:
        raise ValueError(f"apiKeySecretRef is no longer accepted in a pool: {MOVE_CREDENTIALS}")
    return conn
