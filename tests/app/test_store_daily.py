"""/stats per day from the store (store/daily.py), on both engines: rows placed on known UTC
days through the store's own methods under a set clock, each figure on the day it happened (a
refund on its own day, not its purchase's or charge's), a day with nothing in it all zeros, the
Kie balance's drops without its top-ups, and the readings purged with the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

import bot.store.store as store_module
from bot.store import GenerationState, Store
from bot.store.daily import DAY, DayStats, daily_stats, record_kie_reading
from testkit.databases import ENGINES, open_store
from tests.app.test_store import add_user, assert_ledger_invariant

D = 20400  # the oldest day of the period, as a day number (its midnight: D * DAY, UTC)
ALICE, BOB, ADMIN = 41, 42, 9
COSTS = {"imagen4": 6.0, "seedream": 5.0}


def at(day: int, hour: float) -> float:
    return (D + day) * DAY + hour * 3600


class Clock:
    def __init__(self) -> None:
        self.now = at(0, 0)

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The store's clock (every row's time), set by the test."""
    clock = Clock()
    monkeypatch.setattr(store_module, "time", SimpleNamespace(time=clock.time))
    yield clock


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


async def generation(store: Store, user_id: int, model: str, price: int) -> int:
    draft = await store.create_draft(user_id=user_id, chat_id=user_id, request_message_id=1,
                                     kind="image", prompt="a fox", model=model, options={})
    started = await store.start_generation(draft.id, revision=0, input={"prompt": "a fox"},
                                           price=price, deadline_at=at(9, 0))
    return started.id


async def stats(store: Store, days: int = 3, now: float | None = None) -> list[DayStats]:
    return await daily_stats(store, days=days, now=at(2, 12) if now is None else now,
                             kie_costs=COSTS, star_usd=0.01, kie_credit_usd=0.005)


async def test_each_figure_counts_on_the_day_it_happened(store: Store, clock: Clock) -> None:
    # Day 0: Alice (100 starting credits) and Bob start; Alice buys 100 credits for 50 Stars,
    # gets a picture (delivered) and starts another that fails only on day 2.
    clock.now = at(0, 1)
    await add_user(store, ALICE, credits=100)
    await add_user(store, BOB, credits=100)
    clock.now = at(0, 2)
    await store.record_purchase(ALICE, charge_id="ch-1", package="100:50", credits=100, stars=50)
    clock.now = at(0, 3)
    delivered = await generation(store, ALICE, "imagen4", 40)
    await store.mark_submitted(delivered, "task-1", at(0, 3))
    await store.mark_succeeded(delivered, ["https://x/1.png"], deliver_by=at(1, 0),
                               lease_until=at(0, 4))
    await store.mark_delivered(delivered, GenerationState.DELIVERED)
    late = await generation(store, ALICE, "seedream", 20)
    # Day 1: nothing. Day 2: the failure is refunded, the Stars go back, Bob gets a top-up
    # and pays for a picture that is still running.
    clock.now = at(2, 5)
    await store.fail_generation(late, "kie_failed")
    await store.hold_purchase_refund("ch-1", admin_id=ADMIN, force=False)
    await store.confirm_purchase_refund("ch-1")
    await store.topup(BOB, 30, admin_id=ADMIN)
    running = await generation(store, BOB, "imagen4", 40)
    await store.mark_submitted(running, "task-2", at(2, 6))

    first, empty, last = await stats(store)
    assert [day.day for day in (first, empty, last)] == [
        datetime.fromtimestamp(at(n, 0), UTC).date() for n in range(3)]
    assert (first.new_people, first.active_people, first.paying_people, first.purchases) == \
        (2, 2, 1, 1)
    assert (first.stars, first.bought, first.granted, first.charged, first.refunded) == \
        (50, 100, 200, 60, 0)
    assert first.by_kind == {"image": 2}
    assert first.by_state == {"delivered": 1, "failed": 1}  # the state each is in now
    assert first.by_model == {"imagen4": 1, "seedream": 1}
    assert first.failures_by_model == {"seedream": 1}
    assert first.kie_credits == 6.0  # the delivered picture only: Kie charged no failure
    assert first.margin_usd == pytest.approx(50 * 0.01 - 6 * 0.005)
    assert empty == DayStats(day=empty.day)  # all zeros, no drop seen
    # Day 2: the refunds of day 0's purchase and generation, on the day they happened.
    assert (last.new_people, last.active_people, last.paying_people) == (0, 1, 0)
    assert (last.stars, last.bought, last.granted, last.charged, last.refunded) == \
        (-50, -100, 30, 40, 20)
    assert last.ledger == {"purchase_refund": -100, "topup": 30, "charge": -40, "refund": 20}
    assert last.by_state == {"running": 1} and last.kie_credits == 0
    assert last.margin_usd == pytest.approx(-0.5)
    for user in (ALICE, BOB):
        await assert_ledger_invariant(store, user)

    # A one-day period is today alone; a period ending before anything happened is all zeros.
    [today] = await stats(store, days=1)
    assert today == last
    assert all(day == DayStats(day=day.day) for day in await stats(store, now=at(-1, 12)))


async def test_the_kie_balance_drop_counts_spend_not_top_ups(store: Store) -> None:
    readings = [
        ("a", at(-1, 20), 1000.0),  # before the period: its drop to the next counts on day 0
        ("a", at(0, 1), 990.0), ("a", at(0, 8), 960.0),
        ("a", at(2, 1), 5000.0),    # a top-up: not spend, and day 1 was not read at all
        ("a", at(2, 2), 4990.5),
        ("b", at(0, 3), 300.0), ("b", at(0, 4), 290.0),  # another key's own account
    ]
    for key, moment, credits in readings:
        await record_kie_reading(store, key, credits, now=moment)
    await record_kie_reading(store, "a", 990.0, now=at(0, 1))  # the same reading twice: once
    first, unread, last = await stats(store)
    assert (first.kie_drop, unread.kie_drop, last.kie_drop) == (50.0, None, 9.5)


async def test_old_readings_go_with_the_purge(store: Store) -> None:
    await record_kie_reading(store, "a", 100.0, now=at(0, 1))
    await record_kie_reading(store, "a", 90.0, now=at(2, 1))
    await store.purge(drafts_before=0, updates_before=0, readings_before=at(1, 0))
    rows = await store.database.fetch("SELECT credits FROM kie_readings")
    assert [row[0] for row in rows] == [90.0]
    await store.purge(drafts_before=0, updates_before=0)  # no `readings_before`: kept
    assert len(await store.database.fetch("SELECT credits FROM kie_readings")) == 1
