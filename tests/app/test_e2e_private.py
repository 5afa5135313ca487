"""End to end: groups keep money private. /balance, /buy and /history asked in a group answer
in the person's private chat, and the group gets one short line without a number of theirs;
when the bot cannot write to them there (they never opened that chat, or blocked the bot), the
line says how to open it, with a t.me button. /start and a payment's confirmation in a group
show no balance either."""

from __future__ import annotations

import asyncio
from typing import Any

from testkit.chat import Person, buttons
from testkit.e2e import generate
from testkit.fakes.telegram import Call, FakeTelegram

Dict = dict[str, Any]
GROUP = -1007100
# What a person's money looks like in a text: none of it may reach the group.
MONEY = ("credit", "Balance", "balance", "кредит", "Баланс", "баланс")


def group_texts(tg: FakeTelegram) -> list[str]:
    return [c.params.get("text", "") + c.params.get("caption", "") for c in tg.calls
            if c.params.get("chat_id") == GROUP and c.method.startswith(("send", "edit"))]


def private_sends(tg: FakeTelegram, user_id: int) -> list[Call]:
    return [c for c in tg.calls_of("sendMessage") if c.params["chat_id"] == user_id]


def assert_no_money_in_the_group(tg: FakeTelegram) -> None:
    for text in group_texts(tg):
        assert not any(word in text for word in MONEY), text


async def asked_in_group(person: Person, group: Dict, command: str) -> tuple[Dict, Dict]:
    """`command` said in the group: (the request, the bot's one line there)."""
    request = person.say(f"{command}@testbot", chat=group)
    [line] = await person.tg.wait_for(
        "sendMessage", lambda c: c.ok and c.params["chat_id"] == group["id"])
    return request, person.message(group["id"], line.response["message_id"])


async def test_balance_in_a_group_is_answered_in_the_private_chat(tg, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    request, line = await asked_in_group(alice, group, "/balance")

    [private] = private_sends(tg, 42)
    assert "Your balance: <b>100 credits</b>" in private.params["text"]
    assert "+100 · welcome credits" in private.params["text"]
    assert line["text"] == "📬 Alice, I sent it to you in our private chat."
    assert line["reply_to_message"]["message_id"] == request["message_id"]
    assert "reply_markup" not in line
    await asyncio.sleep(0.2)
    assert len(group_texts(tg)) == 1
    assert_no_money_in_the_group(tg)


async def test_someone_who_never_opened_a_private_chat_is_shown_the_way_to_it(tg, bot, store):
    group = tg.group_chat(GROUP)
    tg.strangers.add(42)  # Alice has only ever written in the group
    alice = Person(tg, 42, "Alice")
    _, line = await asked_in_group(alice, group, "/balance")

    assert "Alice" in line["text"] and "have not opened" in line["text"]
    assert "press Start" in line["text"]
    [open_chat] = buttons(line)
    assert open_chat["url"] == "https://t.me/testbot"
    assert not [c for c in private_sends(tg, 42) if c.ok]
    [refused] = private_sends(tg, 42)
    assert refused.error_code == 403
    assert_no_money_in_the_group(tg)
    assert not (await store.get_user(42)).blocked  # she never blocked anything

    alice.say("/start")  # she opens the private chat: now the group's /balance lands there
    await alice.told("Hi, Alice!")
    alice.say("/balance@testbot", chat=group)
    await alice.told("Your balance")
    await alice.told("I sent it to you", chat_id=GROUP)
    assert_no_money_in_the_group(tg)


async def test_someone_who_blocked_the_bot_is_told_to_unblock_it(tg, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    tg.block(42)
    _, line = await asked_in_group(alice, group, "/balance")
    assert "you have blocked me" in line["text"] and "unblock" in line["text"]
    assert [b["url"] for b in buttons(line)] == ["https://t.me/testbot"]
    assert_no_money_in_the_group(tg)


async def test_buy_in_a_group_sends_the_packages_privately_and_the_invoice_there(tg, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    _, line = await asked_in_group(alice, group, "/buy")
    assert "I sent it to you" in line["text"]

    [menu_call] = private_sends(tg, 42)
    assert "Your balance: 100 credits" in menu_call.params["text"]
    menu = alice.message(42, menu_call.response["message_id"])
    assert buttons(menu)[0]["text"] == "100 credits · 50 ⭐"
    await alice.press(menu, "100 credits")
    [invoice] = await tg.wait_for("sendInvoice")
    assert invoice.params["chat_id"] == 42
    assert_no_money_in_the_group(tg)


async def test_buy_from_someone_who_never_opened_a_private_chat(tg, bot):
    group = tg.group_chat(GROUP)
    tg.strangers.add(42)
    alice = Person(tg, 42, "Alice")
    _, line = await asked_in_group(alice, group, "/buy")
    assert "have not opened" in line["text"]
    assert [b["url"] for b in buttons(line)] == ["https://t.me/testbot"]
    assert not tg.calls_of("sendInvoice")
    assert_no_money_in_the_group(tg)


async def test_history_in_a_group_is_listed_privately(tg, kie, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "my private fox")
    await tg.wait_for("sendPhoto")
    sent_before = len(private_sends(tg, 42))
    _, line = await asked_in_group(alice, group, "/history")
    assert "I sent it to you" in line["text"]

    listing = (await alice.told("Your generations")).params
    assert listing["chat_id"] == 42 and "my private fox" in listing["text"]
    assert "40 credits" in listing["text"]
    assert len(private_sends(tg, 42)) == sent_before + 1
    assert_no_money_in_the_group(tg)


async def test_history_from_someone_who_never_opened_a_private_chat(tg, kie, bot):
    group = tg.group_chat(GROUP)
    tg.strangers.add(42)
    alice = Person(tg, 42, "Alice")
    _, line = await asked_in_group(alice, group, "/history")
    assert "have not opened" in line["text"]
    assert [b["url"] for b in buttons(line)] == ["https://t.me/testbot"]
    assert not [c for c in private_sends(tg, 42) if c.ok]


async def test_start_in_a_group_greets_without_the_balance(tg, bot):
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    _, hello = await asked_in_group(alice, group, "/start")
    assert hello["text"].startswith("Hi, Alice!")
    assert [b["text"] for b in buttons(hello)] == [
        "🖼 Picture", "🎬 Video", "🎵 Music", "⭐ Buy credits"]
    assert not private_sends(tg, 42)
    assert_no_money_in_the_group(tg)


async def test_a_payment_made_in_a_group_is_confirmed_privately(tg, bot, store):
    """An invoice sent into a group before /buy answered privately can still be paid there."""
    group = tg.group_chat(GROUP)
    alice = Person(tg, 42, "Alice")
    tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50", chat=group)
    confirmation = await alice.told("Payment received: 100 credits added")
    assert "Your balance: 200 credits" in confirmation.params["text"]
    await alice.told("I sent it to you", chat_id=GROUP)
    assert (await store.get_user(42)).balance == 200
    assert_no_money_in_the_group(tg)
