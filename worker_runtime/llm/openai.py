"""`OpenAIChat`: chat completions against any OpenAI-compatible HTTP API.

Register with TWP_ACTIVITIES=worker_runtime.llm.openai:openai_chat. Client-side limits
(TWP_OPENAI_REQUESTS_PER_MINUTE / TWP_OPENAI_TOKENS_PER_MINUTE, per worker process) keep a pool
under its quota instead of burning retries on 429s; a 429 that still happens is retried after
its `Retry-After`. The key comes from OPENAI_API_KEY, the URL from TWP_OPENAI_BASE_URL.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from worker_runtime import metrics
from worker_runtime.llm import now_iso, setting
from worker_runtime.llm.types import ChatRequest, ChatResult

BACKEND = "openai"
API_KEY_ENV = "OPENAI_API_KEY"


class TokenBucket:
    """Refills `per_minute` units per minute, bursting up to one minute's worth."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> float:
        """Wait until `amount` is available and take it; returns seconds waited."""
        amount = min(amount, self.capacity)  # one huge request must still be possible
        waited = 0.0
        async with self.lock:
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return waited
                pause = (amount - self.level) / self.rate
                await asyncio.sleep(pause)
                waited += pause

    def settle(self, extra: float) -> None:
        """Charge (or refund) the difference between estimated and actual usage."""
        self._refill()
        self.level = min(self.capacity, self.level - extra)


class Limits:
    """Per-process request and token buckets, built lazily from the env contract."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None


_limits: Limits | None = None


def limits() -> Limits:
    global _limits
    if _limits is None:
        _limits = Limits(setting("openai_requests_per_minute"), setting("openai_tokens_per_minute"))
    return _limits


def reset_limits() -> None:
    """Forget the buckets (tests and config reloads)."""
    global _limits
    _limits = None


def estimate_tokens(req: ChatRequest) -> int:
    """Rough pre-call estimate (4 chars per token + completion budget), corrected afterwards."""
    chars = sum(len(m.get("content", "")) for m in req.messages)
    return chars // 4 + (req.max_tokens or 256)


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """Parse Retry-After (seconds or HTTP date); also the common `retry-after-ms` variant."""
    ms = resp.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, (parsed - datetime.now(UTC)).total_seconds())


async def _sleep_with_heartbeat(seconds: float, message: str) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        activity.heartbeat({"stage": "waiting", "message": message, "updated_at": now_iso()})
        await asyncio.sleep(min(left, 5.0))


@activity.defn(name="OpenAIChat")
async def openai_chat(req: ChatRequest) -> ChatResult:
    """One chat completion with client-side rate limits and 429/5xx retries."""
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise ApplicationError(
            f"{API_KEY_ENV} is not set — put the API key in the pool's secret env",
            type="MissingAPIKey",
            non_retryable=True,
        )
    model = req.model or setting("openai_model")
    if not model:
        raise ApplicationError(
            "no model: set TWP_OPENAI_MODEL or pass model", type="NoModel", non_retryable=True
        )
    base = str(setting("openai_base_url")).rstrip("/")
    max_retries = int(setting("openai_max_retries"))
    body: dict[str, Any] = {"model": model, "messages": req.messages, **req.extra}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature

    lim = limits()
    estimate = estimate_tokens(req)
    if lim.requests:
        await lim.requests.take(1)
    if lim.tokens:
        await lim.tokens.take(estimate)
    activity.heartbeat({"stage": "requesting", "message": model, "updated_at": now_iso()})

    timeout = httpx.Timeout(float(setting("openai_timeout_seconds")), connect=10.0)
    headers = {"Authorization": f"Bearer {key}"}
    start = time.monotonic()
    attempt = 0
    async with httpx.AsyncClient(base_url=base, timeout=timeout, headers=headers) as http:
        while True:
            attempt += 1
            try:
                resp = await http.post("/chat/completions", json=body)
            except httpx.TransportError as err:
                if attempt > max_retries:
                    metrics.LLM_REQUESTS.labels(BACKEND, model, "error").inc()
                    raise ApplicationError(f"{base} unreachable: {err}", type="Transport") from err
                await _sleep_with_heartbeat(min(2.0**attempt, 30), f"transport error: {err}")
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                wait = retry_after_seconds(resp)
                outcome = "rate_limited" if resp.status_code == 429 else "error"
                metrics.LLM_REQUESTS.labels(BACKEND, model, outcome).inc()
                if attempt > max_retries:
                    # Let Temporal retry later, no sooner than the server asked.
                    raise ApplicationError(
                        f"HTTP {resp.status_code} after {attempt} attempts: {resp.text[:200]}",
                        type="RateLimited" if resp.status_code == 429 else "ServerError",
                        next_retry_delay=timedelta(seconds=wait) if wait else None,
                    )
                await _sleep_with_heartbeat(
                    wait if wait is not None else min(2.0**attempt, 30),
                    f"HTTP {resp.status_code}, retrying",
                )
                continue
            if resp.status_code >= 400:
                metrics.LLM_REQUESTS.labels(BACKEND, model, "error").inc()
                raise ApplicationError(
                    f"HTTP {resp.status_code}: {resp.text[:500]}",
                    type=f"HTTP{resp.status_code}",
                    non_retryable=True,  # bad request / auth: retrying cannot help
                )
            break
    latency = time.monotonic() - start
    data = resp.json()
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens", 0))
    completion_tokens = int(usage.get("completion_tokens", 0))
    total = int(usage.get("total_tokens", prompt_tokens + completion_tokens))
    if lim.tokens:
        lim.tokens.settle(total - estimate)
    metrics.record_llm(BACKEND, model, prompt_tokens, completion_tokens, latency)
    metrics.LLM_REQUESTS.labels(BACKEND, model, "ok").inc()
    return ChatResult(
        output=str(data["choices"][0]["message"].get("content") or ""),
        model=str(data.get("model", model)),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        tokens=total,
        latency=latency,
        attempts=attempt,
    )


# What a pool lists: TWP_ACTIVITIES=worker_runtime.llm.openai:activities
activities = [openai_chat]
