"""✨ Improve's rows on both engines: one charge per (draft, attempt), one attempt running per
draft however many presses race, one refund per failure (also for an attempt a gone process
left running), and the draft's prompt replaced only by Use it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import DraftChanged, InsufficientCredits, LedgerKind, Store
from bot.store import improvements as rows
from bot.store.improvements import ImproveRunning
from testkit.databases import ENGINES, open_store
from tests.app.test_store import USER, add_user, assert_ledger_invariant, balance, open_draft

NEVER = 0.0  # stale_before: nothing is stale


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        await add_user(opened, credits=10)
        yield opened


async def kinds(store: Store) -> list[tuple[str, int]]:
    return sorted((r.kind, r.amount) for r in await store.ledger(USER, 100)
                  if r.kind in (LedgerKind.IMPROVE, LedgerKind.IMPROVE_REFUND))


async def test_racing_presses_charge_once_and_one_runs(store: Store) -> None:
    draft = await open_draft(store)
    results = await asyncio.gather(*[rows.begin(store, draft, attempt=0, price=2,
                                                stale_before=NEVER) for _ in range(5)],
                                   return_exceptions=True)
    assert len([r for r in results if isinstance(r, rows.Improvement)]) == 1
    assert all(isinstance(r, ImproveRunning) for r in results
               if not isinstance(r, rows.Improvement))
    assert await kinds(store) == [(LedgerKind.IMPROVE, -2)]
    await assert_ledger_invariant(store)


async def test_a_failure_is_refunded_once_and_the_next_attempt_is_new(store: Store) -> None:
    draft = await open_draft(store)
    await rows.begin(store, draft, attempt=0, price=2, stale_before=NEVER)
    assert await rows.fail(store, draft, 0, "Kie.ai 500") is not None
    assert await rows.fail(store, draft, 0, "Kie.ai 500") is None
    assert await rows.finish(store, draft, 0, "late") is None
    with pytest.raises(DraftChanged):  # the old keyboard's attempt is over
        await rows.begin(store, draft, attempt=0, price=2, stale_before=NEVER)
    await rows.begin(store, draft, attempt=1, price=2, stale_before=NEVER)
    assert await kinds(store) == [(LedgerKind.IMPROVE, -2), (LedgerKind.IMPROVE, -2),
                                  (LedgerKind.IMPROVE_REFUND, 2)]
    await assert_ledger_invariant(store)


async def test_too_few_credits_records_nothing(store: Store) -> None:
    draft = await open_draft(store)
    with pytest.raises(InsufficientCredits):
        await rows.begin(store, draft, attempt=0, price=11, stale_before=NEVER)
    assert await rows.get(store, draft, 0) is None and await balance(store) == 10


async def test_an_attempt_left_running_is_refunded_once(store: Store) -> None:
    draft = await open_draft(store)
    await rows.begin(store, draft, attempt=0, price=2, stale_before=NEVER)
    later = time.time() + 1
    [settled] = await rows.settle_stale(store, started_before=later, finished_before=NEVER)
    assert settled.failure == "interrupted"
    assert await rows.settle_stale(store, started_before=later, finished_before=NEVER) == []
    assert await rows.fail(store, draft, 0, "too late") is None  # the process woke up after all
    assert await kinds(store) == [(LedgerKind.IMPROVE, -2), (LedgerKind.IMPROVE_REFUND, 2)]
    # The next ✨ (drawn after it) is another attempt; one stuck in it is settled by the next
    # press on the same draft, whose keyboard is then out of date.
    await rows.begin(store, draft, attempt=1, price=2, stale_before=NEVER)
    with pytest.raises(ImproveRunning):
        await rows.begin(store, draft, attempt=1, price=2, stale_before=NEVER)
    with pytest.raises(DraftChanged):
        await rows.begin(store, draft, attempt=1, price=2, stale_before=later)
    await rows.begin(store, draft, attempt=2, price=2, stale_before=NEVER)
    assert await kinds(store) == [(LedgerKind.IMPROVE, -2)] * 3 + [(LedgerKind.IMPROVE_REFUND, 2)] * 2
    await assert_ledger_invariant(store)


async def test_use_it_replaces_the_prompt_and_keep_mine_does_not(store: Store) -> None:
    draft = await open_draft(store)
    before = await store.get_draft(draft)
    await rows.begin(store, draft, attempt=before.revision, price=0, stale_before=NEVER)
    await rows.finish(store, draft, before.revision, "a better prompt")
    _, kept = await rows.decide(store, draft, before.revision, use=False)
    assert kept.prompt == before.prompt
    _, used = await rows.decide(store, draft, before.revision, use=True)
    assert used.prompt == before.prompt  # decided already: a repeat changes nothing
    attempt = kept.revision
    await rows.begin(store, draft, attempt=attempt, price=0, stale_before=NEVER)
    await rows.finish(store, draft, attempt, "a better prompt")
    _, used = await rows.decide(store, draft, attempt, use=True, model=None, options={})
    assert used.prompt == "a better prompt" and used.model is None
    assert await kinds(store) == []  # free: no ledger rows
