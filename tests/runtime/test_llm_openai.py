"""`OpenAIChat` against a local HTTP server that behaves like the OpenAI chat API.

This local server is the one allowed fake: the real API is paid and needs a key. It speaks the
same wire format (POST /chat/completions, bearer auth, `usage`, 429 + Retry-After).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from worker_runtime import metrics
from worker_runtime.llm import openai as oai
from worker_runtime.llm.types import ChatRequest


@dataclass
class FakeAPI:
    url: str = ""
    rate_limit_first: int = 0
    retry_after: str = "1"
    seen: list[tuple[float, dict[str, Any], str]] = field(default_factory=list)


# The fake server must run on the test's own loop (async fixtures default to the session loop
# here, see pyproject): on another loop nobody would answer and the test would hang.
@pytest_asyncio.fixture(loop_scope="function")
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeAPI]:
    state = FakeAPI()

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        state.seen.append((time.monotonic(), body, request.headers.get("Authorization", "")))
        if request.headers.get("Authorization") != "Bearer sk-test":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if body.get("model") == "bad-model":
            return web.json_response({"error": {"message": "model not found"}}, status=400)
        if len(state.seen) <= state.rate_limit_first:
            return web.json_response(
                {"error": {"message": "slow down"}},
                status=429,
                headers={"Retry-After": state.retry_after},
            )
        text = " ".join(m["content"] for m in body["messages"])
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"echo: {text}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("TWP_OPENAI_BASE_URL", state.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("TWP_OPENAI_MODEL", "test-model")
    oai.reset_limits()
    yield state
    oai.reset_limits()
    await runner.cleanup()


def _req(text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


async def test_chat_returns_output_tokens_and_metrics(api: FakeAPI) -> None:
    before = metrics.REGISTRY.get_sample_value(
        "twp_llm_tokens_total", {"backend": "openai", "model": "test-model", "kind": "completion"}
    )
    result = await ActivityEnvironment().run(oai.openai_chat, _req("ping"))
    assert result.output == "echo: ping"
    assert result.tokens == 12
    assert result.prompt_tokens == 7
    assert result.model == "test-model"
    assert api.seen[0][2] == "Bearer sk-test"
    after = metrics.REGISTRY.get_sample_value(
        "twp_llm_tokens_total", {"backend": "openai", "model": "test-model", "kind": "completion"}
    )
    assert after == (before or 0) + 5


async def test_429_is_retried_after_retry_after(api: FakeAPI) -> None:
    api.rate_limit_first = 1
    result = await ActivityEnvironment().run(oai.openai_chat, _req())
    assert result.attempts == 2
    assert len(api.seen) == 2
    assert api.seen[1][0] - api.seen[0][0] >= 1.0  # waited at least Retry-After


async def test_persistent_429_hands_retry_to_temporal(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.rate_limit_first = 100
    api.retry_after = "0"
    monkeypatch.setenv("TWP_OPENAI_MAX_RETRIES", "2")
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(oai.openai_chat, _req())
    assert info.value.type == "RateLimited"
    assert not info.value.non_retryable  # Temporal retries the activity later
    assert len(api.seen) == 3


async def test_bad_request_is_not_retried(api: FakeAPI) -> None:
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(oai.openai_chat, _req(model="bad-model"))
    assert info.value.non_retryable
    assert "HTTP 400" in str(info.value)
    assert len(api.seen) == 1


async def test_missing_api_key_says_which_variable(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ApplicationError, match="OPENAI_API_KEY is not set") as info:
        await ActivityEnvironment().run(oai.openai_chat, _req())
    assert info.value.non_retryable
    assert api.seen == []


async def test_requests_per_minute_limit_spaces_calls(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 60/min = one per second once the one-minute burst is spent; shrink the burst to 1.
    monkeypatch.setenv("TWP_OPENAI_REQUESTS_PER_MINUTE", "60")
    lim = oai.limits()
    assert lim.requests is not None
    lim.requests.capacity = lim.requests.level = 1
    env = ActivityEnvironment()
    await env.run(oai.openai_chat, _req("a"))
    await env.run(oai.openai_chat, _req("b"))
    assert api.seen[1][0] - api.seen[0][0] >= 0.9  # the second call waited for a token


def test_retry_after_http_date_is_understood() -> None:
    import httpx

    resp = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert oai.retry_after_seconds(resp) == 0.0  # a date in the past: retry now
    assert oai.retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
