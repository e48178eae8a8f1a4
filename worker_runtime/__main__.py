"""`python -m worker_runtime` / `worker-runtime`: the entrypoint of every worker pool pod.

Exit codes: 0 after a clean drain (or `--check` passing), 1 on a fatal worker error,
2 on bad configuration or user code that cannot be imported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

from worker_runtime import __version__
from worker_runtime.config import (
    EXIT_CONFIG,
    ConfigError,
    default_identity,
    load_settings,
    load_tracing,
    tls_material,
)
from worker_runtime.loader import load_user_code

log = logging.getLogger("worker_runtime")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="worker-runtime",
        description="Temporal worker configured from TWP_* environment variables.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration and import user code, then exit without connecting",
    )
    parser.add_argument("--version", action="version", version=f"worker-runtime {__version__}")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    """Everything but the final process exit, so tests can call it in-process."""
    args = _parse_args(argv)
    try:
        settings = load_settings()
        tracing = load_tracing()
        if settings.tls_enabled:
            tls_material(settings)  # unreadable TLS files are configuration errors (exit 2)
    except ConfigError as err:
        print(f"worker-runtime: invalid configuration:\n{err}", file=sys.stderr)
        return EXIT_CONFIG

    from worker_runtime.logs import setup_logging

    setup_logging(
        settings.log_level,
        settings.log_format,
        {
            "namespace": settings.temporal_namespace,
            "task_queue": settings.task_queue,
            "identity": default_identity(settings),
            "pool": settings.pool_name,
        },
    )
    try:
        code = load_user_code(settings.workflows, settings.activities)
    except ConfigError as err:
        log.error("Invalid user code: %s", err)
        print(f"worker-runtime: invalid user code:\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        log.info(
            "Configuration OK",
            extra={"workflows": len(code.workflows), "activities": len(code.activities)},
        )
        return 0

    from worker_runtime.app import serve

    return asyncio.run(serve(settings, code, tracing))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    code = run(argv)
    # The SDK objects were dropped in serve(); collect them now, while the interpreter is fully
    # alive, and leave without interpreter finalization (which can abort temporalio, exit 134).
    gc.collect()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
