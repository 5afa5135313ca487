"""End to end: a result made and paid for reaches its person whenever they can receive it —
after a group removed the bot before they ever opened a private chat, after they unblocked
it — and a group's act never marks the person as having blocked the bot."""

from __future__ import annotations

import asyncio

from bot.store import GenerationState
from testkit.chat import Person, button
from testkit.e2e import generate, refunds, states_become
from testkit.fakes.kie import TaskPlan
from tests.app.test_e2e_history import history


async def test_a_group_member_who_never_opened_a_chat_gets_the_result_at_their_start(
        tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=4)
    group = tg.group_chat(-1005300, "Gone")
    tg.strangers.add(42)  # Alice has only ever written in the group
    alice = Person(tg, 42, "Alice")
    await generate(alice, "left behind", chat=group)
    await alice.told("⏳", chat_id=-1005300)
    tg.kick(-1005300)

    assert await states_become(store, {42: GenerationState.UNDELIVERABLE}) == \
        {42: GenerationState.UNDELIVERABLE}
    assert not (await store.get_user(42)).blocked  # the group's doing, not hers
    assert not [c for c in tg.calls_of("sendPhoto") if c.ok]

    alice.say("/start")  # she opens the private chat: the result comes
    await alice.told("Hi")
    [photo] = await tg.wait_for("sendPhoto", lambda c: c.ok)
    assert photo.params["chat_id"] == 42
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert await refunds(store, 42) == []
    alice.say("/start")  # once
    await alice.told("Hi")
    await asyncio.sleep(0.5)
    assert len([c for c in tg.calls_of("sendPhoto") if c.ok]) == 1


async def test_a_result_kept_while_blocked_can_be_sent_from_history(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image for later")
    await alice.press(picker, "Imagen 4")
    tg.block(42)
    await alice.press(alice.refreshed(picker), "✅")
    assert await states_become(store, {42: GenerationState.UNDELIVERABLE}) == \
        {42: GenerationState.UNDELIVERABLE}
    assert (await store.get_user(42)).blocked

    tg.unblock(42)
    listing = await history(alice)
    assert "finished, not delivered" in listing["text"]
    await alice.press(listing, "📤")
    [photo] = await tg.wait_for("sendPhoto", lambda c: c.ok)
    assert photo.params["chat_id"] == 42 and "nothing charged" in photo.params["caption"]
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}
    assert await refunds(store, 42) == []
    assert button(alice.refreshed(listing), "📤")
