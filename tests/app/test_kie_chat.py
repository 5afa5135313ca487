"""KieClient.chat against the fake Kie.ai: the request's shape, OpenAI-style refusals and Kie's
envelope read as Kie's errors, garbage as a protocol error, and every chat call inside the one
rate budget with the creates (the limiter alone: tests/unit/test_ratelimit.py)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET
from bot.kie.errors import (
    KieAuthError,
    KieError,
    KieProtocolError,
    KieRateLimited,
    KieUnavailable,
)
from bot.kie.ratelimit import RateLimiter
from testkit.bot import KIE_KEY
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.kie_chat import ChatScript


def make_client(kie: FakeKie, limiter: RateLimiter | None = None) -> KieClient:
    return KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                     limiter=limiter or RateLimiter(20, 0.5), timeout=5.0, read_attempts=1,
                     backoff=0.01)


async def test_chat_sends_one_system_and_one_user_message_without_streaming(kie: FakeKie):
    client = make_client(kie)
    try:
        text = await client.chat("gemini-2.5-flash", "be brief", "a cat")
    finally:
        await client.aclose()
    assert text == "a cat, highly detailed, dramatic lighting"
    [(model, body)] = kie.chat.requests
    assert model == "gemini-2.5-flash"
    assert body == {"messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "a cat"}],
                    "stream": False, "include_thoughts": False}


@pytest.mark.parametrize(("script", "error"), [
    (ChatScript(status=400, message="bad messages"), KieError),
    (ChatScript(status=401, message="Invalid API key"), KieAuthError),
    (ChatScript(status=429, message="slow down"), KieRateLimited),
    (ChatScript(status=500, message="upstream"), KieUnavailable),
    (ChatScript(raw="not json"), KieProtocolError),
])
async def test_refusals_are_kies_errors(kie: FakeKie, script: ChatScript, error: type[KieError]):
    kie.chat.answer_next(script)
    client = make_client(kie)
    try:
        with pytest.raises(error) as raised:
            await client.chat("gemini-2.5-flash", "s", "u")
    finally:
        await client.aclose()
    assert script.raw is not None or raised.value.message == script.message
    assert len(kie.chat.requests) == 1  # a create-class call: not retried on its refusal


async def test_a_key_kie_refuses_is_an_auth_error_in_kies_envelope_too(kie: FakeKie):
    kie.refused_keys[KIE_KEY] = 401  # the gateway answers before the chat model does
    client = make_client(kie)
    try:
        with pytest.raises(KieAuthError):
            await client.chat("gemini-2.5-flash", "s", "u")
    finally:
        await client.aclose()


async def test_chat_calls_share_the_budget_with_creates():
    """Chats and creates at once under RateLimiter(4, 0.5): the fake never sees more than 4 in
    any 0.5 s and refuses none."""
    async with FakeKie(api_key=KIE_KEY, rate_limit=4, window=0.5) as kie:
        kie.default_plan = TaskPlan(outcome="never")
        client = make_client(kie, RateLimiter(4, 0.5))
        try:
            calls = [client.chat("gemini-2.5-flash", "s", f"u{i}") if i % 2 else
                     client.start(API_MARKET, "google/imagen4", {"prompt": f"p{i}"})
                     for i in range(12)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.aclose()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(kie.chat.requests) == 6 and len(kie.requests) == 12
    assert kie.rate_limited == 0 and kie.max_in_window() <= 4
