"""The `examples/` package run through the real runtime, on the real Temporal dev server.

Every pool is its own `python -m worker_runtime` process polling its own queue, as in a cluster,
and loads the example code by import path. Stand-ins, and why:

- "RunLLMOnGPU" below has the built-in GPU activity's name, types and heartbeat shape but sleeps
  instead of generating, so these tests need neither torch nor a GPU; one test also runs the
  real activity with a tiny local model when torch is installed (and fails in CI when it is not).
- The OpenAI API is a local HTTP server speaking its wire format: the paid API is the only fake.
  The activity calling it is the real `worker_runtime.llm.openai:openai_chat`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle

from examples.gpu_llm_job.client import job_status
from examples.gpu_llm_job.workflows import JobStatus, LLMJobInput, LLMJobResult, LLMJobWorkflow
from examples.three_queues.workflows import RouterInput, RouterWorkflow
from testbed.temporal import TemporalDevServer
from testbed.wait import eventually
from tests.runtime.conftest import SpawnRuntime
from tests.runtime.helpers import RuntimeProcess, base_env, metric_sum, unique_queue
from worker_runtime.llm import now_iso
from worker_runtime.llm.types import LLMRequest, LLMResult

THIS = "tests.runtime.test_examples"
STANDIN_TOKEN_SECONDS = 0.1


@activity.defn(name="RunLLMOnGPU")
async def standin_run_llm_on_gpu(req: LLMRequest) -> LLMResult:
    """Same name, types and heartbeats as the GPU pack; one "token" per STANDIN_TOKEN_SECONDS.

    Heartbeats every token so a cancel request reaches it, which raises CancelledError out of
    the sleep — the same way the real activity stops generating.
    """
    total = req.max_new_tokens or 8
    start = time.monotonic()
    for i in range(total):
        activity.heartbeat(
            {"percent": i * 100 // total, "stage": "generating",
             "message": f"{i}/{total} tokens", "updated_at": now_iso()}
        )  # fmt: skip
        await asyncio.sleep(STANDIN_TOKEN_SECONDS)
    return LLMResult(
        output=f"generated<{req.prompt}>", tokens=total, prompt_tokens=len(req.prompt.split()),
        latency=time.monotonic() - start, gpu=None, device="stand-in",
        model_path=req.model_path or "stand-in",
    )  # fmt: skip


def gpu_standin_activities() -> list[object]:
    """TWP_ACTIVITIES for the stand-in GPU pool."""
    return [standin_run_llm_on_gpu]


# --- the fake OpenAI API --------------------------------------------------------------------


@dataclass
class FakeOpenAI:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)


class _ChatHandler(BaseHTTPRequestHandler):
    state: FakeOpenAI  # set on the subclass per server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.state.seen.append(body)
        if self.path != "/v1/chat/completions":
            return self._reply(404, {"error": {"message": f"no route {self.path}"}})
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._reply(401, {"error": {"message": "bad key"}})
        text = " ".join(m["content"] for m in body["messages"])
        self._reply(
            200,
            {
                "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"echo: {text}"}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            },
        )  # fmt: skip

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A threaded server, so it answers whatever event loop the test runs on."""
    state = FakeOpenAI()
    handler = type("Handler", (_ChatHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(10)


# --- helpers --------------------------------------------------------------------------------


def pool_env(
    server: TemporalDevServer, queue: str, *, workflows: str = "", activities: str, **extra: str
) -> dict[str, str]:
    """Env of one pool: its queue, its import paths, an identity to find it in history."""
    return base_env(
        server, queue, TWP_WORKFLOWS=workflows, TWP_ACTIVITIES=activities,
        TWP_IDENTITY=f"pool-{queue}", **extra,
    )  # fmt: skip


async def all_ready(*runtimes: RuntimeProcess) -> None:
    await asyncio.gather(*(rt.wait_status("/readyz", 200) for rt in runtimes))


@dataclass
class ActivityRun:
    queue: str
    identity: str | None = None  # worker that started the last attempt
    outcome: str = "pending"  # completed | failed | timed_out | cancel_requested | canceled


async def activity_runs(handle: WorkflowHandle[Any, Any]) -> dict[str, ActivityRun]:
    """Per activity type, as the server recorded it: queue, worker identity and outcome."""
    history = await handle.fetch_history()
    runs: dict[int, tuple[str, ActivityRun]] = {}
    for e in history.events:
        kind = e.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            a = e.activity_task_scheduled_event_attributes
            runs[e.event_id] = (a.activity_type.name, ActivityRun(queue=a.task_queue.name))
        elif kind == "activity_task_started_event_attributes":
            s = e.activity_task_started_event_attributes
            runs[s.scheduled_event_id][1].identity = s.identity
        elif kind is not None and kind.startswith("activity_task_"):
            sched_id = getattr(e, kind).scheduled_event_id
            outcome = kind.removeprefix("activity_task_").removesuffix("_event_attributes")
            runs[sched_id][1].outcome = outcome
    return dict(runs.values())


async def wait_for_status(
    client: Client, workflow_id: str, wanted: Any, wait_s: float = 120
) -> list[JobStatus]:
    """Poll `job_status` until `wanted(status)`; returns every distinct status seen."""
    seen: list[JobStatus] = []

    async def matched() -> bool:
        status = await job_status(client, workflow_id)
        if not seen or seen[-1] != status:
            seen.append(status)
        return bool(wanted(status))

    await eventually(matched, "the job status wanted", lambda: seen, wait_s=wait_s,
                     interval=0.1, not_yet=None)  # fmt: skip
    return seen


# --- three_queues ---------------------------------------------------------------------------


async def test_router_runs_each_step_on_its_queue(
    temporal: TemporalDevServer,
    client: Client,
    spawn_runtime: SpawnRuntime,
    fake_openai: FakeOpenAI,
) -> None:
    cpu_q, ml_q, api_q = unique_queue("orders"), unique_queue("ml"), unique_queue("openai")
    cpu = spawn_runtime(
        pool_env(
            temporal, cpu_q,
            # The exact paths manifests/samples/cpu-pool.yaml gives the pool.
            workflows="examples.three_queues.workflows:RouterWorkflow",
            activities="examples.three_queues.activities:default_activities",
        )
    )  # fmt: skip
    ml = spawn_runtime(pool_env(temporal, ml_q, activities=f"{THIS}:gpu_standin_activities"))
    api = spawn_runtime(
        pool_env(
            temporal, api_q,
            activities="examples.three_queues.activities:openai_activities",
            TWP_OPENAI_BASE_URL=fake_openai.url, OPENAI_API_KEY="sk-test",
            TWP_OPENAI_MODEL="test-model",
        )
    )  # fmt: skip
    await all_ready(cpu, ml, api)

    wf_id = f"router-{uuid.uuid4()}"
    result = await asyncio.wait_for(
        client.execute_workflow(
            RouterWorkflow.run,
            RouterInput(text="  route   this\n text ", ml_queue=ml_q, openai_queue=api_q,
                        max_new_tokens=3),
            id=wf_id, task_queue=cpu_q,
        ),
        180,
    )  # fmt: skip

    # Data flowed CPU -> GPU -> API and back.
    assert result.prompt == "route this text"
    assert result.generated == "generated<route this text>"
    assert result.answer == f"echo: {RouterInput.instruction} generated<route this text>"
    assert [(s.activity, s.task_queue) for s in result.steps] == [
        ("PreparePrompt", cpu_q), ("RunLLMOnGPU", ml_q), ("OpenAIChat", api_q),
    ]  # fmt: skip
    assert len(fake_openai.seen) == 1
    assert fake_openai.seen[0]["model"] == "test-model"

    # The server's record: each step was scheduled on its queue and run by that queue's pool.
    runs = await activity_runs(client.get_workflow_handle(wf_id))
    assert runs == {
        "PreparePrompt": ActivityRun(cpu_q, f"pool-{cpu_q}", "completed"),
        "RunLLMOnGPU": ActivityRun(ml_q, f"pool-{ml_q}", "completed"),
        "OpenAIChat": ActivityRun(api_q, f"pool-{api_q}", "completed"),
    }
    for rt in (cpu, ml, api):
        assert await rt.terminate() == 0


# --- gpu_llm_job ----------------------------------------------------------------------------


@dataclass
class JobPools:
    workflow_q: str
    gpu_q: str
    notify_q: str
    gpu: RuntimeProcess
    others: list[RuntimeProcess]

    def job(self, prompt: str, **kw: Any) -> LLMJobInput:
        return LLMJobInput(
            prompt=prompt, gpu_queue=self.gpu_q, notification_queue=self.notify_q, **kw
        )

    async def terminate(self) -> None:
        for rt in (self.gpu, *self.others):
            assert await rt.terminate() == 0


async def start_job_pools(
    temporal: TemporalDevServer, spawn_runtime: SpawnRuntime, gpu_activities: str, **gpu_env: str
) -> JobPools:
    wf_q, gpu_q, notify_q = unique_queue("jobs"), unique_queue("llm-gpu"), unique_queue("notify")
    wf = spawn_runtime(
        pool_env(temporal, wf_q, workflows="examples.gpu_llm_job.workflows:LLMJobWorkflow",
                 activities="")
    )  # fmt: skip
    gpu = spawn_runtime(pool_env(temporal, gpu_q, activities=gpu_activities, **gpu_env))
    notify = spawn_runtime(
        pool_env(temporal, notify_q,
                 activities="examples.gpu_llm_job.activities:notification_activities")
    )  # fmt: skip
    await all_ready(wf, gpu, notify)
    return JobPools(wf_q, gpu_q, notify_q, gpu, [wf, notify])


def _heartbeat_seen(s: JobStatus) -> bool:
    # The GPU activity is running and its heartbeat reached the server.
    return s.stage == "generating" and s.message.startswith("generating: ")


def _generating_with_progress(s: JobStatus) -> bool:
    # Inside the generating band, past the workflow's own 5 %: a heartbeat got through.
    return s.stage == "generating" and 5 < s.percent < 95


async def test_llm_job_reports_progress_and_notifies(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    pools = await start_job_pools(temporal, spawn_runtime, f"{THIS}:gpu_standin_activities")
    wf_id = f"llm-job-{uuid.uuid4()}"
    # 100 tokens x 0.1 s; heartbeats reach the server every 0.8 x 2 s.
    handle = await client.start_workflow(
        LLMJobWorkflow.run,
        pools.job("write a haiku", max_new_tokens=100, heartbeat_timeout_seconds=2),
        id=wf_id, task_queue=pools.workflow_q,
    )  # fmt: skip

    seen = await wait_for_status(client, wf_id, _generating_with_progress)
    assert seen[-1].message.startswith("generating: ")
    assert "tokens" in seen[-1].message
    raw = await handle.query(LLMJobWorkflow.get_status)  # the query alone: stage-level
    assert (raw.stage, raw.percent) == ("generating", 5)
    assert pools.gpu_q in raw.message

    result: LLMJobResult = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "done"
    assert result.output == "generated<write a haiku>"
    assert result.tokens == 100
    assert result.notification == f"job {wf_id} done: 100 tokens on stand-in"

    final = await handle.query(LLMJobWorkflow.get_status)
    assert (final.stage, final.percent) == ("done", 100)
    assert final.message == "100 tokens on stand-in"
    datetime.fromisoformat(final.updated_at)  # a real timestamp, not a placeholder
    assert await job_status(client, wf_id) == final

    runs = await activity_runs(handle)
    assert runs["RunLLMOnGPU"] == ActivityRun(pools.gpu_q, f"pool-{pools.gpu_q}", "completed")
    assert runs["notify"] == ActivityRun(pools.notify_q, f"pool-{pools.notify_q}", "completed")
    await pools.terminate()


async def test_llm_job_cancel_signal_stops_the_gpu_activity(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime
) -> None:
    pools = await start_job_pools(temporal, spawn_runtime, f"{THIS}:gpu_standin_activities")
    wf_id = f"llm-job-cancel-{uuid.uuid4()}"
    # 100 000 tokens x 0.1 s would run for hours: only a working Cancel ends it in time.
    handle = await client.start_workflow(
        LLMJobWorkflow.run,
        pools.job("a very long story", max_new_tokens=100_000, heartbeat_timeout_seconds=2),
        id=wf_id, task_queue=pools.workflow_q,
    )  # fmt: skip
    await wait_for_status(client, wf_id, _heartbeat_seen)
    assert metric_sum(await pools.gpu.metrics(), "twp_activities_in_flight") == 1

    await handle.signal(LLMJobWorkflow.cancel)
    signalled = time.monotonic()
    result: LLMJobResult = await asyncio.wait_for(handle.result(), 60)
    assert time.monotonic() - signalled < 30

    assert result.status == "cancelled"
    assert result.output is None
    assert result.notification == f"job {wf_id} cancelled: cancelled before the GPU finished"
    final = await handle.query(LLMJobWorkflow.get_status)
    assert final.stage == "cancelled"
    # The GPU activity acknowledged the cancellation (not merely abandoned) and the GPU pool
    # has nothing left running.
    runs = await activity_runs(handle)
    assert runs["RunLLMOnGPU"].outcome == "canceled"
    assert runs["notify"].outcome == "completed"
    assert metric_sum(await pools.gpu.metrics(), "twp_activities_in_flight") == 0
    await pools.terminate()


@pytest.mark.llm
async def test_llm_job_with_the_real_gpu_activity(
    temporal: TemporalDevServer, client: Client, spawn_runtime: SpawnRuntime, tmp_path: Path
) -> None:
    """The example against the built-in "RunLLMOnGPU" (CPU branch here), tiny local model."""
    if not all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        if os.environ.get("CI"):
            pytest.fail("torch/transformers missing in CI: install the `llm` extra")
        pytest.skip("needs the `llm` extra (torch, transformers)")
    from testbed.tiny_model import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny-gpt2")
    pools = await start_job_pools(
        temporal, spawn_runtime, "worker_runtime.llm.gpu:run_llm_on_gpu",
        TWP_LLM_MODEL_PATH=str(model),
    )  # fmt: skip
    result: LLMJobResult = await asyncio.wait_for(
        client.execute_workflow(
            LLMJobWorkflow.run, pools.job("hello world", max_new_tokens=8),
            id=f"llm-job-real-{uuid.uuid4()}", task_queue=pools.workflow_q,
        ),
        300,
    )  # fmt: skip
    assert result.status == "done"
    assert 1 <= result.tokens <= 8
    assert isinstance(result.output, str)
    assert result.device in ("cpu", "cuda")
    assert result.notification.endswith(f"{result.tokens} tokens on {result.gpu or result.device}")
    await pools.terminate()
