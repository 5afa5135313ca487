"""KIE_RATE_SCOPE=creates through the bot and the fake Kie in each of its regimes: where Kie
counts only creates, more than KIE_RATE_LIMIT per window with never a create refused; where it
counts every call (the bot misconfigured), reads refused now and then, never a create, every
generation delivered and paid once, and no task left unread past KIE_POLL_MAX_INTERVAL. And the
reads' budget shared between instances on one database, like KIE_RATE_LIMIT's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.kie import KieClient
from bot.kie.ratelimit import RateLimiter
from bot.services.presence import Presence
from bot.store import Store
from testkit.bot import KIE_KEY, WINDOW, make_settings
from testkit.databases import ENGINES, database
from testkit.fakes.kie import FakeKie, Req, TaskPlan, rate_kind
from testkit.load import crowd


def busiest(requests: list[Req], kind: str, window: float) -> int:
    """The most requests of `kind` Kie accepted within any `window` seconds."""
    times = sorted(r.time for r in requests
                   if rate_kind(r.method, r.path) == kind and r.status != 429)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_where_kie_counts_creates_only_the_bot_goes_past_the_limit_without_a_429(
        tg, kie, start_bot, store, tmp_path):
    kie.rate_scope = "creates"
    kie.default_plan = TaskPlan(reads_before_done=2)
    await start_bot(make_settings(tmp_path, tg, kie, kie_rate_scope="creates"))
    result = await crowd(tg, kie, store, 50)
    assert result.delivered == 50 and result.unsettled == []
    assert kie.rate_limited_by_kind["create"] == 0
    assert busiest(kie.requests, "create", WINDOW) <= 20
    assert result.max_in_window > 20  # what KIE_RATE_SCOPE=all would never send


async def test_misconfigured_where_kie_counts_every_call_reads_are_refused_never_a_create(
        tg, kie, start_bot, store, tmp_path):
    """The bot believes reads are free, Kie counts them: the reads it sends beyond the limit are
    refused (and only delay themselves), the creates never are, and each task is still read at
    least once every KIE_POLL_MAX_INTERVAL."""
    longest = 1.5  # three windows, as 30 s is to Kie's 10 s
    kie.default_plan = TaskPlan(reads_before_done=2)
    await start_bot(make_settings(tmp_path, tg, kie, kie_rate_scope="creates",
                                  kie_poll_interval=WINDOW / 2, kie_poll_max_interval=longest))
    result = await crowd(tg, kie, store, 30)
    assert result.delivered == 30 and result.unsettled == []  # none lost, none paid twice
    assert kie.rate_limited_by_kind["create"] == 0
    assert kie.rate_limited_by_kind["read"] > 0
    assert kie.max_in_window() <= 20 + kie.rate_limited  # Kie accepted no more than it allows
    attempts: dict[str, list[float]] = defaultdict(list)  # per task: its creation, then reads
    for req in kie.requests:
        if req.task_id is not None:
            attempts[req.task_id].append(req.time)
    gaps = [later - earlier for times in attempts.values() for earlier, later in pairwise(times)]
    assert len(attempts) == 30 and max(gaps) <= longest + WINDOW / 2, max(gaps)


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_reads_budget_is_shared_between_instances(engine: str, tmp_path: Path) -> None:
    """Two instances on one PostgreSQL database each spend half of the key's read budget (and
    of its creates'); one gone, the other has it all again a window later. (A SQLite file is one
    process's: the newest instance is the only one, and spends it all.)"""
    window = 0.2
    async with FakeKie(api_key=KIE_KEY, window=window) as fake, \
            database(engine, tmp_path) as target:
        stores = [await Store.open(target) for _ in range(2)]
        clients = [KieClient(SecretStr(KIE_KEY), base_url=fake.url, upload_url=fake.url,
                             limiter=RateLimiter(20, window), scope="creates") for _ in stores]
        presences = [Presence(store, kie, after_beat=_nothing, polling=None)
                     for store, kie in zip(stores, clients, strict=True)]
        try:
            for presence in presences:
                await presence.start()
            await presences[0]._recount()  # (the first counted itself alone)
            part = 10 if engine == "postgres" else 20
            assert [(k.rate_limit, k.read_limit) for k in clients] == [(part, part)] * 2
            if engine == "sqlite":
                return
            await presences[1].stop()
            await stores[1].close()
            await presences[0]._recount()
            assert clients[0].read_limit == 10  # the gone one's reads still count in Kie's window
            await _until(lambda: clients[0].read_limit == 20, window * 3)
        finally:
            await presences[0].stop()
            for store in stores:
                with contextlib.suppress(Exception):
                    await store.close()
            for kie in clients:
                await kie.aclose()


async def _nothing() -> None:
    pass


async def _until(condition: Callable[[], bool], patience: float) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, "not within patience"
        await asyncio.sleep(0.01)
