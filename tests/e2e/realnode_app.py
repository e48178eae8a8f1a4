"""User code for the real-node e2e tests, shipped to pods in a ConfigMap (stdlib + temporalio).

Mounted at /app/e2eapp in the runtime image (PYTHONPATH=/app), imported as
`e2eapp.realnode_app`. Activities never retry (maximum_attempts=1): an activity lost on a
pod's shutdown fails its workflow instead of hiding behind a retry.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

TLS_DIR = "/etc/temporal/tls"
ONCE = RetryPolicy(maximum_attempts=1)


@activity.defn
async def pod_work(seconds: float) -> dict[str, Any]:
    """Work for `seconds`, heartbeating; report which pod ran it and on which attempt."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        activity.heartbeat()
        await asyncio.sleep(min(left, 0.5))
    return {
        "pod": socket.gethostname(),
        "attempt": activity.info().attempt,
        "uid": os.getuid(),
    }


@activity.defn
async def inspect_pod() -> dict[str, Any]:
    """What the pod looks like from inside: user, mounted Secret files, writable paths."""
    files = {}
    tls_dir = Path(TLS_DIR)
    for path in sorted(tls_dir.iterdir()) if tls_dir.is_dir() else []:  # noqa: ASYNC240
        if not path.name.startswith(".."):
            mode = stat.S_IMODE(path.stat().st_mode)
            files[path.name] = {"mode": oct(mode), "readable": os.access(path, os.R_OK)}

    def writable(path: str) -> bool:
        try:
            with open(path, "w") as handle:
                handle.write("x")
            os.unlink(path)
            return True
        except OSError:
            return False

    return {
        "pod": socket.gethostname(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "tls_files": files,
        "root_writable": writable("/probe"),
        "tmp_writable": writable("/tmp/probe"),
        "api_key_set": bool(os.environ.get("TWP_API_KEY")),
    }


@workflow.defn
class PodWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            pod_work,
            seconds,
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=ONCE,
        )
        return result


@workflow.defn
class InspectWorkflow:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            inspect_pod, start_to_close_timeout=timedelta(seconds=30), retry_policy=ONCE
        )
        return result
