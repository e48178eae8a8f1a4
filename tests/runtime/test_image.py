"""The images, built offline from the debootstrap base, run a pool's work against the real server.

Builds `operator` and `runtime` with hack/build-images.sh (wheelhouse on the host, `docker build`
without network), then runs the runtime image the way a pod would: env from the contract, user
code mounted as an import path, host networking to reach the local dev server.
Needs a Docker engine (`hack/setup-docker.sh`, run by `make test`); skipped without one, except
under CI, where a missing engine fails the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest
from temporalio.client import Client

from testbed.pytest_realnode import RUNTIME_TAG
from testbed.temporal import TemporalDevServer, free_port
from tests.runtime.helpers import REPO_ROOT, metric_sum, unique_queue
from worker_runtime.contract import env_var

pytestmark = pytest.mark.docker

TAG = RUNTIME_TAG  # shared with the real-node tests: one build
RUNTIME = f"workerpools/worker-runtime:{TAG}"
OPERATOR = f"workerpools/operator:{TAG}"
APP = REPO_ROOT / "tests" / "runtime" / "app.py"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def images() -> None:
    """Build both images once per module (layers are cached between runs)."""
    usable = shutil.which("docker") and docker("info").returncode == 0
    if not usable:
        reason = "no running Docker engine: run hack/setup-docker.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    build = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-images.sh"), "operator", "runtime"],
        env={**os.environ, "IMG_TAG": TAG, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr


class Container:
    """A detached runtime container; removed at the end whatever happens."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.name = f"twp-test-{uuid.uuid4().hex[:8]}"
        flags = [f"--env={k}={v}" for k, v in env.items()]
        run = docker("run", "-d", "--name", self.name, "--network=host", *flags, *args)
        assert run.returncode == 0, run.stderr

    def logs(self) -> str:
        out = docker("logs", self.name)
        return out.stdout + out.stderr

    def state(self) -> dict[str, object]:
        out = docker("inspect", "--format", "{{json .State}}", self.name)
        assert out.returncode == 0, out.stderr
        state: dict[str, object] = json.loads(out.stdout)
        return state

    def remove(self) -> None:
        docker("rm", "-f", self.name)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for c in made:
        c.remove()


def runtime_env(server: TemporalDevServer, queue: str, port: int) -> dict[str, str]:
    return {
        env_var("temporal_address"): server.address,
        env_var("task_queue"): queue,
        env_var("workflows"): "user_app:GreetWorkflow",
        env_var("activities"): "user_app:all_activities",
        env_var("metrics_port"): str(port),
        env_var("pool_name"): "image-test",
    }


async def test_runtime_container_completes_a_workflow_and_drains_on_stop(
    images: None, temporal: TemporalDevServer, client: Client, containers: list[Container]
) -> None:
    queue = unique_queue("image")
    port = free_port()
    # User code the way a pool adds its own: an importable module under /app.
    box = Container(runtime_env(temporal, queue, port), "-v", f"{APP}:/app/user_app.py:ro", RUNTIME)
    containers.append(box)

    async with httpx.AsyncClient(timeout=5) as http:
        ready = False
        for _ in range(240):
            try:
                ready = (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready or box.state().get("Status") != "running":
                break
            await asyncio.sleep(0.5)
        assert ready, f"container never became ready: {box.state()}\n{box.logs()}"

        result = await client.execute_workflow(
            "GreetWorkflow", "image", id=f"image-{uuid.uuid4()}", task_queue=queue
        )
        assert result == "HELLO, IMAGE!"
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "temporal_worker_task_slots_available" in text
    assert metric_sum(text, "twp_activities_succeeded_total") == 2

    stop = docker("stop", "--time", "30", box.name)
    assert stop.returncode == 0, stop.stderr
    state = box.state()
    assert state["ExitCode"] == 0, box.logs()  # a clean drain, not a kill (137) or abort (134)
    assert "Starting Temporal worker" in box.logs()


@pytest.mark.parametrize("image", [RUNTIME, OPERATOR])
def test_images_run_as_the_non_root_user_the_operator_renders(images: None, image: str) -> None:
    from workerpool_operator.render.deployment import RUNTIME_UID

    out = docker("run", "--rm", "--entrypoint", "id", image)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"uid={RUNTIME_UID}(app) gid={RUNTIME_UID}(app)")


def test_runtime_image_hosts_the_code_the_sample_pools_name(images: None) -> None:
    """`--check` imports what manifests/samples/cpu-pool.yaml and the OpenAI pool list."""
    env = {
        env_var("temporal_address"): "127.0.0.1:1",
        env_var("task_queue"): "orders",
        env_var("workflows"): "examples.three_queues.workflows:RouterWorkflow",
        env_var("activities"): (
            "examples.three_queues.activities:default_activities,"
            "worker_runtime.llm.openai:activities"
        ),
    }
    flags = [f"--env={k}={v}" for k, v in env.items()]
    out = docker("run", "--rm", *flags, RUNTIME, "--check")
    assert out.returncode == 0, out.stdout + out.stderr


def test_gpu_pack_on_the_cpu_image_fails_the_check_naming_the_gpu_image(images: None) -> None:
    """A GPU pool pointed at the CPU image must crash-loop with the fix, not fail every task."""
    env = {
        env_var("temporal_address"): "127.0.0.1:1",
        env_var("task_queue"): "llm-gpu",
        env_var("activities"): "worker_runtime.llm.gpu:activities",
    }
    flags = [f"--env={k}={v}" for k, v in env.items()]
    out = docker("run", "--rm", *flags, RUNTIME, "--check")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "TWP_ACTIVITIES: cannot import 'worker_runtime.llm.gpu:activities'" in out.stderr
    assert "workerpools/worker-runtime-gpu" in out.stderr


def test_runtime_image_leaves_gpu_libraries_to_the_gpu_image(images: None) -> None:
    """The CPU image stays small: torch comes only with worker-runtime-gpu."""
    out = docker("run", "--rm", "--entrypoint", "python3", RUNTIME, "-c", "import torch")
    assert out.returncode != 0
    assert "No module named 'torch'" in out.stderr


def test_operator_image_starts_its_cli(images: None) -> None:
    out = docker("run", "--rm", OPERATOR, "--help")
    assert out.returncode == 0, out.stderr
    assert "--all-namespaces" in out.stdout
