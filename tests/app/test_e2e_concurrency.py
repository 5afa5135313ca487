"""End to end: how many updates the bot handles at once, and that a create waiting for Kie's
budget holds no update: the bot keeps answering, and a graceful stop lets it finish."""

from __future__ import annotations

import pytest

from bot import app
from bot.store import GenerationState
from testkit.chat import Person
from testkit.e2e import charges, generate, refunds


async def test_a_create_waiting_for_kie_holds_no_update(tg, kie, settings, start_bot, store,
                                                       monkeypatch: pytest.MonkeyPatch):
    """One update at a time, and Kie slow to answer the create: /balance is answered while
    the create is still under way."""
    monkeypatch.setattr(app, "UPDATE_CONCURRENCY", 1)
    await start_bot(settings)
    kie.create_delay = 3.0
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a slow create")
    alice.say("/balance")
    await alice.told("60 credits")
    assert kie.count("createTask") == 1
    [generation] = await store.generations_in(list(GenerationState))
    assert generation.task_id is None  # Kie has not answered yet


async def test_a_graceful_stop_lets_a_create_under_way_finish(tg, kie, settings, start_bot, store):
    running = await start_bot(settings)
    kie.create_delay = 1.0
    alice = Person(tg, 42, "Alice")
    await generate(alice, "stopped while creating")
    await tg.wait_for("answerCallbackQuery", lambda c: "text" not in c.params, count=2)
    await running.stop()
    [generation] = await store.generations_in(list(GenerationState))
    assert generation.task_id is not None and generation.state is GenerationState.RUNNING
    assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
