"""The shared Kie.ai budget: the limiter alone, and the client under it against the fake."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

import bot.kie.client as client_module
from bot.kie.client import KieClient
from bot.kie.ratelimit import Priority, RateLimiter
from tests.conftest import KIE_KEY
from tests.fakes.kie import FakeKie, TaskPlan

MODEL = "google/imagen4"
INPUT = {"prompt": "A cat astronaut"}


def make_client(kie: FakeKie, limiter: RateLimiter, read_attempts: int = 4) -> KieClient:
    return KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url, limiter=limiter,
                     timeout=5.0, read_attempts=read_attempts, backoff=0.01)


async def timed_acquire(limiter: RateLimiter, priority: Priority = Priority.READ) -> float:
    await limiter.acquire(priority)
    return time.monotonic()


def max_in_any_window(times: list[float], window: float) -> int:
    """The most grants inside any half-open interval of `window` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times))


# -- measured on the fake ----------------------------------------------------------------------

async def test_burst_stays_under_kies_limit() -> None:
    """40 concurrent calls under RateLimiter(5, 0.5) all succeed and the fake never sees > 5 per 0.5 s."""
    async with FakeKie(api_key=KIE_KEY, rate_limit=5, window=0.5) as kie:
        kie.default_plan = TaskPlan(outcome="never")
        client = make_client(kie, RateLimiter(5, 0.5), read_attempts=1)  # any 429 would fail a call
        try:
            task_id = await client.create_task(MODEL, INPUT)
            calls = [client.get_credits() if i % 2 else client.get_task(task_id) for i in range(39)]
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
        task_id = await client.create_task(MODEL, INPUT)
        kie.fail_reads_next(429)
        reading = asyncio.create_task(client.get_task(task_id))
        while not any(r.status == 429 for r in kie.requests):
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the 429 answer has reached the client
        credits = await client.get_credits()
        record = await reading
    finally:
        await client.aclose()
    assert credits == kie.credits and record.task_id == task_id
    limited = next(r for r in kie.requests if r.status == 429)
    later = [r for r in kie.requests if r.time > limited.time]
    assert {r.path.rsplit("/", 1)[1] for r in later} == {"recordInfo", "credit"}
    for request in later:
        assert pause <= request.time - limited.time < pause + 0.5, request.path


# -- the limiter alone -------------------------------------------------------------------------

async def test_never_more_than_limit_in_any_window() -> None:
    """Concurrent acquirers over ~3 windows: every sliding window holds at most `limit` grants."""
    limit, window = 4, 0.2
    limiter = RateLimiter(limit, window)
    started = time.monotonic()
    times = await asyncio.gather(*(timed_acquire(limiter, list(Priority)[i % 3]) for i in range(14)))
    assert max_in_any_window(times, window) <= limit
    assert max(times) - started < 4 * window + 0.3  # and it does not crawl: 14 grants in 4 windows


async def test_create_waiter_served_before_earlier_poll_waiter() -> None:
    """With the budget spent, a CREATE queued after a POLL (and a READ) is granted first."""
    limiter = RateLimiter(1, 0.15)
    await limiter.acquire()
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await limiter.acquire(priority)
        order.append(name)

    queued = []
    for name, priority in [("poll-1", Priority.POLL), ("read", Priority.READ),
                           ("poll-2", Priority.POLL), ("create", Priority.CREATE)]:
        queued.append(asyncio.create_task(take(name, priority)))
        await asyncio.sleep(0.01)  # each is really waiting before the next arrives
    assert order == []
    await asyncio.wait_for(asyncio.gather(*queued), 2.0)
    assert order == ["create", "read", "poll-1", "poll-2"]


async def test_pause_holds_everyone_back() -> None:
    """pause(s) delays every caller, whatever its priority, by s seconds even with budget left."""
    limiter = RateLimiter(100, 1.0)
    assert await asyncio.wait_for(timed_acquire(limiter), 0.05)  # free budget: at once
    start = time.monotonic()
    limiter.pause(0.3)
    times = await asyncio.gather(*(timed_acquire(limiter, p) for p in Priority))
    for granted in times:
        assert 0.3 <= granted - start < 0.55


async def test_cancelled_waiter_does_not_block_others() -> None:
    """Cancelling the waiter at the head of the queue lets the next one through on time."""
    limiter = RateLimiter(1, 0.2)
    first = await timed_acquire(limiter)
    head = asyncio.create_task(limiter.acquire(Priority.CREATE))
    other = asyncio.create_task(timed_acquire(limiter, Priority.POLL))
    await asyncio.sleep(0.05)
    head.cancel()
    granted = await asyncio.wait_for(other, 1.0)
    assert 0.2 <= granted - first < 0.45
    with pytest.raises(asyncio.CancelledError):
        await head
    await asyncio.wait_for(limiter.acquire(), 1.0)  # and the limiter keeps working afterwards


async def test_waiter_cancelled_while_others_wake_does_not_block() -> None:
    """A caller cancelled just as it arrives, while other waiters are being woken, must not wedge the
    budget (it once left a dead entry at the head of the queue)."""
    limiter = RateLimiter(1, 0.1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire(Priority.POLL)) for _ in range(3)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()  # its clean-up wakes the two others
    await asyncio.sleep(0)
    for _ in range(3):  # a caller that gives up just as it arrives (a shutdown, a timeout)
        late = asyncio.create_task(limiter.acquire(Priority.CREATE))
        await asyncio.sleep(0)
        late.cancel()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*waiters[1:], limiter.acquire()), 0.8)
