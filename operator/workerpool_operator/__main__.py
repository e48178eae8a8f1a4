"""`python -m workerpool_operator`: run the operator (cluster-wide or for given namespaces);
the flags are in settings.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import kopf
from prometheus_client import start_http_server

from workerpool_operator import app as _app  # noqa: F401  (registers kopf's lifecycle hooks)
from workerpool_operator.settings import parse_args, settings_from_args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        # kopf logs every successful handler/timer run at INFO: per pool per resync, pure noise.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    start_http_server(args.metrics_port)
    logging.getLogger(__name__).info(
        "starting workerpool-operator",
        extra={
            "clusterwide": settings.namespaces is None,
            "namespaces": list(settings.namespaces or ()),
            "leader_elect": settings.leader_elect,
        },
    )
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        kopf.run(
            standalone=True,  # leader election is the operator's own (Lease), not kopf peering
            clusterwide=True,  # kopf watches nothing itself; the reconciler honours the scope
            liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
            memo=kopf.Memo(settings=settings),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
