"""The environment a pool's pod gives `python -m worker_runtime`, for local runtime processes.

Shared by the runtime tests and the runtime benchmark, so neither depends on the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed.temporal import TemporalDevServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def runtime_env(
    server: TemporalDevServer | None, task_queue: str, workflows: str, activities: str, **extra: str
) -> dict[str, str]:
    """Inherited env minus any TWP_* and OTEL_* of the caller (a traced shell must not turn
    tracing on in every test worker), plus the settings a pool would get."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWP_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["TWP_TEMPORAL_ADDRESS"] = server.address if server else "127.0.0.1:1"
    env["TWP_TASK_QUEUE"] = task_queue
    env["TWP_WORKFLOWS"] = workflows
    env["TWP_ACTIVITIES"] = activities
    env["TWP_METRICS_PORT"] = str(free_port())
    env.update(extra)
    return env
