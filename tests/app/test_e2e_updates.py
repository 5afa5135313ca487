"""End to end: what every update goes through before its handler (AccountMiddleware): its id
recorded, so that a repeat is dropped, and its sender registered or refreshed, in one step,
which writes only when something of the sender changed."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from typing import Any

from testkit.chat import Person
from testkit.fakes.telegram import FakeTelegram

GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                       "username": "GroupAnonymousBot"}


async def last_written(database: Any, user_id: int) -> float:
    """The user's `updated_at`, read beside the bot (in a thread: the bot runs in this loop)."""
    def run() -> float:
        with closing(sqlite3.connect(database)) as db:
            [(updated_at,)] = db.execute("SELECT updated_at FROM users WHERE id = ?",
                                         (user_id,)).fetchall()
            return float(updated_at)
    return await asyncio.to_thread(run)


def told(tg: FakeTelegram, chat_id: int, contains: str) -> int:
    return len([c for c in tg.calls_of("sendMessage")
                if c.ok and c.params["chat_id"] == chat_id and contains in c.params["text"]])


async def test_a_known_users_updates_write_nothing_until_they_change(tg, bot, store, settings):
    alice = Person(tg, 42, "Alice", username="alice")
    alice.say("/balance")
    await alice.told("Your balance")
    seen = await last_written(settings.store.path, 42)
    alice.say("/balance")
    await alice.told("Your balance")
    assert await last_written(settings.store.path, 42) == seen

    russian = Person(tg, 42, "Alice", username="alice", language="ru")
    russian.say("/balance")
    await russian.told("Ваш баланс")  # the new Telegram language, at once
    assert await last_written(settings.store.path, 42) > seen
    renamed = Person(tg, 42, "Alice", username="alice_b", language="ru")
    renamed.say("/balance")
    await renamed.told("Ваш баланс")
    found = await store.find_user("@alice_b")
    assert found is not None and (found.id, found.tg_language) == (42, "ru")
    assert await store.find_user("@alice") is None
    assert found.balance == 100 == await store.ledger_sum(42)  # granted once


async def test_a_user_who_blocked_the_bot_is_unblocked_when_they_write_again(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")
    await store.set_blocked(42)  # as a delivery refused with 403 marks it
    alice.say("/balance")
    await alice.told("Your balance")
    user = await store.get_user(42)
    assert user is not None and not user.blocked


async def test_a_repeated_update_is_dropped_whoever_sent_it(tg, bot):
    alice = Person(tg, 42, "Alice")
    command = alice.say("/balance")
    await alice.told("Your balance")
    group = tg.group_chat()
    anonymous = tg.queue_update({"message": {
        "message_id": tg._new_message_id(group["id"]), "date": int(time.time()), "chat": group,
        "from": GROUP_ANONYMOUS_BOT, "sender_chat": group, "text": "/balance",
        "entities": [{"type": "bot_command", "offset": 0, "length": len("/balance")}]}})
    await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == group["id"])
    tg.redeliver(command)  # a poller died before confirming the offset
    tg.redeliver(anonymous)
    alice.say("/help")  # queued after the repeats: once it is answered, they were read
    await alice.told("/balance")
    await asyncio.sleep(0.3)  # and handled, when they came in one batch
    assert told(tg, 42, "Your balance") == 1
    assert told(tg, group["id"], "from your own account") == 1


async def test_a_repeated_checkout_is_answered_again(tg, bot, store):
    """Telegram asks again when it did not get the answer; only a checkout is not dropped."""
    alice = Person(tg, 42, "Alice")
    query = tg.pre_checkout(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await tg.wait_for("answerPreCheckoutQuery",
                      lambda c: c.params["pre_checkout_query_id"] == query["id"])
    [update] = [u for u in tg.update_log if u.get("pre_checkout_query", {}).get("id") == query["id"]]
    tg.redeliver(update)
    deadline = time.monotonic() + 10
    while len(tg.calls_of("answerPreCheckoutQuery")) < 2:  # (the fake refuses a second answer)
        assert time.monotonic() < deadline, "the repeated checkout was not answered"
        await asyncio.sleep(0.01)
    user = await store.get_user(42)  # a checkout registers its sender too
    assert user is not None and user.balance == 100 == await store.ledger_sum(42)
