"""Run `python -m worker_runtime` as a real subprocess, the way a pod runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentResponse,
)
from temporalio.client import Client

from testbed.runtime import runtime_env
from testbed.temporal import TemporalDevServer

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = "tests.runtime.app"


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def base_env(server: TemporalDevServer | None, task_queue: str, **extra: str) -> dict[str, str]:
    """The pod's environment for the test app's workflows and activities."""
    workflows = extra.pop("TWP_WORKFLOWS", f"{APP}:GreetWorkflow,{APP}:SquareWorkflow")
    activities = extra.pop("TWP_ACTIVITIES", f"{APP}:all_activities")
    return runtime_env(server, task_queue, workflows, activities, **extra)


def run_once(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the runtime to completion (config errors, --check)."""
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


class RuntimeProcess:
    """A running runtime; output goes to a file so a full pipe can never block it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["TWP_METRICS_PORT"])
        self.log_path = log_path
        log = log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker_runtime"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str) -> httpx.Response | None:
        """GET a path on the metrics port; None while nothing listens."""
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                return await client.get(self.url(path))
        except httpx.TransportError:
            return None

    async def wait_status(self, path: str, status: int, wait_s: float = 120) -> None:
        """Wait until `path` answers `status` (fails with the runtime's log otherwise)."""
        deadline = time.monotonic() + wait_s
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"runtime exited {self.proc.returncode}:\n{self.output}")
            resp = await self.get(path)
            last = None if resp is None else (resp.status_code, resp.text)
            if resp is not None and resp.status_code == status:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{path} never returned {status} (last {last}):\n{self.output}")

    async def metrics(self) -> str:
        resp = await self.get("/metrics")
        assert resp is not None, "metrics port not listening"
        assert resp.status_code == 200, resp.text
        return resp.text

    async def wait_exit(self, wait_s: float = 180) -> int:
        deadline = time.monotonic() + wait_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"runtime did not exit:\n{self.output}")
            await asyncio.sleep(0.2)
        return self.proc.returncode

    async def terminate(self, wait_s: float = 180) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(wait_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def metric_sum(text: str, name: str) -> float:
    """Sum of all samples of one metric name across label sets."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def describe(client: Client, name: str) -> DescribeWorkerDeploymentResponse | None:
    """None until the first poller has registered the deployment."""
    try:
        return await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
        )
    except Exception:  # NotFound until a versioned worker polls
        return None


async def registered(client: Client, name: str, build: str, wait_s: float = 120) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = await describe(client, name)
        if found is not None and any(
            s.deployment_version.build_id == build
            for s in found.worker_deployment_info.version_summaries
        ):
            return True
        await asyncio.sleep(0.5)
    return False
