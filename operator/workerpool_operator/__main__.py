"""`python -m workerpool_operator`: run the operator (cluster-wide or for given namespaces)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

import kopf
from prometheus_client import start_http_server

from workerpool_operator import app as _handlers  # noqa: F401  (registers handlers)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="workerpool-operator", description=__doc__)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", 8080)))
    p.add_argument("--liveness-port", type=int, default=int(os.environ.get("LIVENESS_PORT", 8081)))
    p.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("WORKERPOOL_LEADER_ELECT", "") in ("1", "true"),
        help="act only while holding the Lease workerpool-operator in $POD_NAMESPACE",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERPOOL_WORKERS", "16")),
        help="pools reconciled concurrently (each pool is serialized)",
    )
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    namespaces = args.namespace or [
        n for n in os.environ.get("WATCH_NAMESPACES", "").split(",") if n
    ]
    clusterwide = args.all_namespaces or not namespaces
    # The engine reads its settings from the environment (handlers.settings_from_env).
    os.environ["WATCH_NAMESPACES"] = "" if clusterwide else ",".join(namespaces)
    os.environ["WORKERPOOL_LEADER_ELECT"] = "1" if args.leader_elect else ""
    os.environ["WORKERPOOL_WORKERS"] = str(args.workers)
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
            "clusterwide": clusterwide,
            "namespaces": namespaces,
            "leader_elect": args.leader_elect,
        },
    )
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        kopf.run(
            standalone=True,  # leader election is the engine's own (Lease), not kopf peering
            clusterwide=True,  # kopf watches nothing itself; the engine honours the scope
            liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
