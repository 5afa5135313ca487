"""The store's part of a follow-up (⬆️ Upscale, ➕ Extend), on SQLite and PostgreSQL: charged
and recorded in one transaction with its source named; the same follow-up of the same result
once at a time, however many presses arrive together; too few credits charge nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import FollowUpOpen, GenerationState, InsufficientCredits, LedgerKind, Store
from testkit.databases import ENGINES, open_store

USER = 42
INPUT = {"image_url": "https://k/0.png", "upscale_factor": "2"}


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


async def a_result(store: Store, credits: int):
    await store.upsert_user(USER, username="u", first_name="U", last_name=None,
                            tg_language="en", starting_credits=credits)
    draft = await store.create_draft(user_id=USER, chat_id=USER, request_message_id=1,
                                     kind="image", prompt="a fox", model="imagen4", options={})
    generation = await store.start_generation(draft.id, revision=0, input={"prompt": "a fox"},
                                              price=10, deadline_at=time.time() + 600)
    await store.mark_submitted(generation.id, "task-1", time.time())
    return await store.mark_succeeded(generation.id, ["https://k/0.png"],
                                      deliver_by=time.time() + 60, lease_until=time.time() + 60)


async def follow(store: Store, source, input: dict = INPUT):
    return await store.start_follow_up(source, chat_id=USER, request_message_id=5, model="topaz",
                                       input=input, price=15, deadline_at=time.time() + 600)


async def test_a_follow_up_is_charged_once_while_it_runs(store: Store) -> None:
    source = await a_result(store, 100)
    presses = await asyncio.gather(*(follow(store, source) for _ in range(4)),
                                   return_exceptions=True)
    [made] = [p for p in presses if not isinstance(p, BaseException)]
    assert all(isinstance(p, FollowUpOpen) for p in presses if p is not made)
    assert (made.source_id, made.model, made.input, made.price, made.kind, made.prompt,
            made.state, made.request_message_id, made.draft_id) == (
        source.id, "topaz", INPUT, 15, "image", "a fox", GenerationState.PENDING, 5, None)
    charges = [r for r in await store.ledger(USER) if r.kind == LedgerKind.CHARGE]
    assert [(r.amount, r.generation_id) for r in charges] == [(-15, made.id), (-10, source.id)]
    # Another file's (another input) may run beside it; once it is settled, the same again.
    await follow(store, source, {**INPUT, "image_url": "https://k/1.png"})
    await store.fail_generation(made.id, "kie_failed")
    again = await follow(store, source)
    assert again.id != made.id
    assert (await store.get_user(USER)).balance == 100 - 10 - 15 - 15 - 15 + 15 \
        == await store.ledger_sum(USER)


async def test_too_few_credits_charge_nothing(store: Store) -> None:
    source = await a_result(store, 20)
    with pytest.raises(InsufficientCredits):
        await follow(store, source)
    assert (await store.get_user(USER)).balance == 10
    assert [g.id for g in await store.generations_of(USER, limit=10)] == [source.id]
