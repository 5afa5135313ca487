"""End to end: an admin's batch of commands is not a flood. Twenty /topup lines pasted at
once are all applied and all answered; anyone else's flood is still throttled."""

from __future__ import annotations

import asyncio

from bot.middlewares import MESSAGE_BURST
from bot.store import LedgerKind
from testkit.bot import ADMIN_ID
from testkit.chat import Person

SLOW_DOWN = "Too many requests at once"
BATCH = 2 * MESSAGE_BURST


def texts_to(tg, chat_id: int, contains: str) -> list[str]:
    return [c.params["text"] for c in tg.calls_of("sendMessage")
            if c.params["chat_id"] == chat_id and contains in c.params.get("text", "")]


async def test_an_admins_batch_of_topups_is_all_applied_and_answered(tg, bot, store):
    admin, alice = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")
    for _ in range(BATCH):
        tg.send_message(admin.user, "/topup 42 1")
    await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID
                      and "Added 1" in c.params["text"], count=BATCH)
    topups = [row for row in await store.ledger(42, 100) if row.kind == LedgerKind.TOPUP]
    assert len(topups) == BATCH
    assert (await store.get_user(42)).balance == 100 + BATCH == await store.ledger_sum(42)
    assert texts_to(tg, ADMIN_ID, SLOW_DOWN) == []


async def test_anyone_elses_batch_is_still_throttled(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    for _ in range(BATCH):
        tg.send_message(alice.user, "/balance")
    await alice.told(SLOW_DOWN)
    await asyncio.sleep(0.3)
    assert len(texts_to(tg, 42, SLOW_DOWN)) == 1
    assert len(texts_to(tg, 42, "credits")) <= MESSAGE_BURST + 2
