"""End to end: /start, /balance, /help, /models and the admin's /topup, through the real bot."""

from __future__ import annotations

import asyncio

import pytest

from bot.store import LedgerKind
from testkit.bot import ADMIN_ID
from testkit.chat import Person


async def test_start_greets_with_the_balance(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    call = await alice.told("Hi, Alice!")
    assert "100 credits" in call.params["text"]


async def test_russian_user_is_answered_in_russian_with_plurals(tg, bot):
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/start")
    call = await boris.told("Привет, Борис!")
    assert "100 кредитов" in call.params["text"]


async def test_commands_menu_is_set_in_every_language(tg, bot):
    menus = {c.params.get("language_code"): c.params["commands"] for c in tg.calls_of("setMyCommands")}
    assert set(menus) == {None, "en", "ru"}
    assert {c["command"] for c in menus["ru"]} >= {"image", "balance", "models", "help", "start"}
    assert menus["ru"][0]["description"] == "Создать картинку"


async def test_balance_shows_number_and_ledger(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/balance")
    call = await alice.told("Your balance")
    assert "<b>100 credits</b>" in call.params["text"]
    assert "+100 · welcome credits" in call.params["text"]


async def test_models_lists_prices_from_the_catalog_and_help_points_there(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/models")
    call = await alice.told("Imagen 4")
    assert "Imagen 4 — 40 credits" in call.params["text"]
    assert "Seedream — 20 credits" in call.params["text"]
    assert "Grok Imagine — 30 credits" in call.params["text"]
    assert "Midjourney" not in call.params["text"] and "Ideogram" not in call.params["text"]
    alice.say("/help")
    call = await alice.told("What I can do")
    assert "/models — Models and prices" in call.params["text"]
    assert "Seedream — 20 credits" not in call.params["text"]


@pytest.mark.parametrize("target", ["42", "@Alice_Name"])
async def test_admin_topup_by_id_or_username(tg, bot, store, target):
    alice = Person(tg, 42, "Alice", username="alice_name", language="ru")
    admin = Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Привет")
    admin.say(f"/topup {target} 50")
    confirmation = await admin.told("Added 50 credits")
    assert "Their balance: 150 credits" in confirmation.params["text"]
    notice = await alice.told("Администратор начислил вам 50 кредитов")
    assert "Баланс: 150 кредитов" in notice.params["text"]
    [row] = [r for r in await store.ledger(42) if r.kind == LedgerKind.TOPUP]
    assert (row.amount, row.balance_after, row.admin_id) == (50, 150, ADMIN_ID)
    assert await store.ledger_sum(42) == (await store.get_user(42)).balance == 150


async def test_admin_topup_by_reply_in_a_group(tg, bot, store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    hello = alice.say("/balance@testbot", chat=group)
    await alice.told("I sent it to you", chat_id=group["id"])  # the balance went privately
    tg.send_message(admin.user, "/topup@testbot 7", chat=group, reply_to=hello)
    await admin.told("Added 7 credits", chat_id=group["id"])
    assert (await store.get_user(42)).balance == 107


async def test_a_repeated_topup_update_adds_credits_once(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Hi")
    command = admin.say("/topup 42 50")
    await admin.told("Added 50 credits")
    tg.redeliver(command)  # a poller died before confirming the offset
    admin.say("/balance")  # queued after the repeat: once it is answered, the repeat was read
    await admin.told("Your balance")
    await asyncio.sleep(0.3)  # and handled, when both came in one batch
    assert (await store.get_user(42)).balance == 150 == await store.ledger_sum(42)
    assert len([c for c in tg.calls_of("sendMessage") if "Added 50" in c.params["text"]]) == 1


async def test_non_admin_topup_is_refused_and_changes_nothing(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    mallory = Person(tg, 66, "Mallory")
    alice.say("/start")
    await alice.told("Hi")
    mallory.say("/topup 42 1000")
    await mallory.told("for admins only")
    assert [r.kind for r in await store.ledger(42)] == [LedgerKind.GRANT]
    assert [r.kind for r in await store.ledger(66)] == [LedgerKind.GRANT]


@pytest.mark.parametrize("args, reason", [
    ("", "Say whom to top up and by how much"),
    ("abc 5", "Name the user by Telegram id or @username"),
    ("42 -5", "whole number"),
    ("42 abc", "whole number"),
    ("42 0", "between 1 and 1000000"),
    ("42 99999999999", "between 1 and 1000000"),
    ("777 5", "I don't know the user 777"),
    ("@nobody 5", "I don't know the user @nobody"),
    ("42", "Say whom to top up and by how much"),
])
async def test_bad_topup_gets_reason_and_usage(tg, bot, store, args, reason):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Hi")
    admin.say(f"/topup {args}".strip())
    call = await admin.told("Usage:")
    assert reason in call.params["text"]
    assert "Example: <code>/topup 123456789 100</code>" in call.params["text"]
    assert [r.kind for r in await store.ledger(42)] == [LedgerKind.GRANT]


async def test_restart_on_the_same_database_keeps_balances(tg, settings, start_bot):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    first = await start_bot(settings)
    alice.say("/start")
    await alice.told("Hi")
    admin.say("/topup 42 25")
    await admin.told("Added 25 credits")
    await first.stop()

    await start_bot(settings)
    alice.say("/balance")
    call = await alice.told("Your balance")
    assert "<b>125 credits</b>" in call.params["text"]
    # the starting credits were granted once, not again after the restart
    assert call.params["text"].count("welcome credits") == 1


async def test_user_text_is_escaped_in_html(tg, bot):
    eve = Person(tg, 50, "<b>Eve</b> & co")
    eve.say("/start")
    call = await eve.told("Hi, &lt;b&gt;Eve&lt;/b&gt; &amp; co!")
    assert call.ok
