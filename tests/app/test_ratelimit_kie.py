"""The Kie.ai client under the shared budget, measured on the fake Kie.ai (the limiter alone:
tests/unit/test_ratelimit.py)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

import bot.kie.client as client_module
from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET
from bot.kie.ratelimit import RateLimiter
from testkit.bot import KIE_KEY
from testkit.fakes.kie import FakeKie, TaskPlan

MODEL = "google/imagen4"
INPUT = {"prompt": "A cat astronaut"}


def make_client(kie: FakeKie, limiter: RateLimiter, read_attempts: int = 4) -> KieClient:
    return KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url, limiter=limiter,
                     timeout=5.0, read_attempts=read_attempts, backoff=0.01)


async def test_burst_stays_under_kies_limit() -> None:
    """40 concurrent calls under RateLimiter(5, 0.5) all succeed and the fake never sees > 5 per 0.5 s."""
    async with FakeKie(api_key=KIE_KEY, rate_limit=5, window=0.5) as kie:
        kie.default_plan = TaskPlan(outcome="never")
        client = make_client(kie, RateLimiter(5, 0.5), read_attempts=1)  # any 429 would fail a call
        try:
            task_id = await client.start(API_MARKET, MODEL, INPUT)
            calls = [client.get_credits() if i % 2 else client.status(API_MARKET, task_id) for i in range(39)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.aclose()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(kie.requests) == 40 and all(r.status == 200 and r.code == 200 for r in kie.requests)
    assert kie.rate_limited == 0
    assert kie.max_in_window() <= 5
    assert kie.max_in_window(1.0) >= 6  # the budget is used, not wasted: more than one window's worth/s


async def test_429_pauses_every_caller(kie: FakeKie, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a 429 nothing (neither the retry nor another caller) reaches Kie before the pause ends."""
    pause = 0.3
    monkeypatch.setattr(client_module, "RATE_LIMIT_PAUSE", pause)
    client = make_client(kie, RateLimiter(20, 0.5))
    try:
        task_id = await client.start(API_MARKET, MODEL, INPUT)
        kie.fail_reads_next(429)
        reading = asyncio.create_task(client.status(API_MARKET, task_id))
        while not any(r.status == 429 for r in kie.requests):
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the 429 answer has reached the client
        credits = await client.get_credits()
        status = await reading
    finally:
        await client.aclose()
    assert credits == kie.credits and status.phase == "running"
    limited = next(r for r in kie.requests if r.status == 429)
    later = [r for r in kie.requests if r.time > limited.time]
    assert {r.path.rsplit("/", 1)[1] for r in later} == {"recordInfo", "credit"}
    for request in later:  # (no upper bound: how much later depends on the machine's load)
        assert request.time - limited.time >= pause, request.path
