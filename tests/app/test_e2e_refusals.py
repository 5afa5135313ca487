"""End to end: nothing the bot is sent ends in silence or a traceback — unexpected errors,
anonymous admins and channels, floods, requests deleted before the answer, forged input."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import closing

import pytest

from bot.keyboards import Pick
from bot.middlewares import MESSAGE_BURST, PRESS_BURST
from bot.store import LedgerKind
from testkit.bot import ADMIN_ID
from testkit.chat import Person, button, buttons

GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                       "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
WENT_WRONG = "Something went wrong on my side. Your credits are safe"
SLOW_DOWN = "Too many requests at once"
OUT_OF_DATE = "This menu is out of date."


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


async def sql(database, statement: str) -> list[tuple]:
    """Straight SQL on the bot's database, in a thread: the bot's own transactions go on in
    this event loop meanwhile (a blocking call here would hold them up)."""
    def run() -> list[tuple]:
        with closing(sqlite3.connect(database)) as db, db:
            return db.execute(statement).fetchall()
    return await asyncio.to_thread(run)


def pickers_to(tg, chat_id: int) -> list:
    return [c for c in tg.calls_of("sendMessage")
            if c.ok and c.params["chat_id"] == chat_id and buttons(c.params)]


async def only_granted(store, user_id: int) -> bool:
    return [r.kind for r in await store.ledger(user_id, 100)] == [LedgerKind.GRANT]


# -- A: an unexpected error is logged once and told ------------------------------------------------

async def test_a_command_that_fails_unexpectedly_is_told_and_logged_once(tg, bot, caplog):
    alice = Person(tg, 42, "Alice")
    tg.fail_next("sendMessage", description="Bad Request: something nobody expected",
                 when=lambda params: "reply_markup" in params)  # the picker
    alice.say("/image a fox")
    await alice.told(WENT_WRONG)
    [record] = errors(caplog)
    assert record.exc_info is not None and "something nobody expected" in str(record.exc_info[1])


async def test_a_press_that_fails_unexpectedly_gets_an_alert_and_one_log(tg, bot, settings, caplog):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    await sql(settings.store.path, "UPDATE drafts SET options = '{corrupt'")
    answer = await alice.press(picker, "Imagen 4")
    assert answer["show_alert"] and WENT_WRONG in answer["text"]
    assert len(errors(caplog)) == 1


# -- B: anonymous admins and posts as a channel ----------------------------------------------------

@pytest.mark.parametrize("sender", ["anonymous admin", "channel"])
async def test_anonymous_admin_or_channel_is_asked_to_use_their_own_account(
        tg, bot, settings, caplog, sender):
    group = tg.group_chat()
    channel = {"id": -1009876543210, "type": "channel", "title": "A channel"}
    user, sender_chat = ((GROUP_ANONYMOUS_BOT, group) if sender == "anonymous admin"
                         else (CHANNEL_BOT, channel))
    for text in ("/image@testbot a fox", "/balance", "just talking"):
        message = {"message_id": tg._new_message_id(group["id"]), "date": int(time.time()),
                   "chat": group, "from": user, "sender_chat": sender_chat, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
        tg.queue_update({"message": message})
    await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == group["id"], count=2)
    await asyncio.sleep(0.3)  # the plain message must stay unanswered
    answers = [c.params["text"] for c in tg.calls_of("sendMessage")
               if c.params["chat_id"] == group["id"]]
    assert len(answers) == 2 and all("from your own account" in text for text in answers)
    assert await sql(settings.store.path, "SELECT count(*) FROM drafts") == [(0,)]
    assert await sql(settings.store.path, f"SELECT id FROM users WHERE id = {user['id']}") == []
    assert errors(caplog) == []


# -- C: floods -------------------------------------------------------------------------------------

async def test_a_command_flood_is_absorbed_and_others_are_still_served(tg, bot, settings, caplog):
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    for _ in range(300):
        tg.send_message(alice.user, "/image x")
    started = time.monotonic()
    await bob.ask("/image y")  # queued behind the whole flood
    assert time.monotonic() - started < 3
    await asyncio.sleep(0.3)
    # The burst, and what refilled while the flood was read.
    assert len(pickers_to(tg, 42)) <= MESSAGE_BURST + 2
    [(drafts,)] = await sql(settings.store.path,
                            "SELECT count(*) FROM drafts WHERE user_id = 42")
    assert drafts <= MESSAGE_BURST + 2
    notices = [c for c in tg.calls_of("sendMessage") if SLOW_DOWN in c.params.get("text", "")]
    assert 1 <= len(notices) <= 3
    assert not [c for c in tg.calls if c.error_code == 429]
    assert errors(caplog) == []


async def test_a_press_flood_is_answered_not_left_spinning(tg, bot, caplog):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image x")
    data = button(picker, "Imagen 4")
    presses = 3 * PRESS_BURST
    ids = {tg.press(alice.user, picker, data)["id"] for _ in range(presses)}
    answers = await tg.wait_for("answerCallbackQuery",
                                lambda c: c.params["callback_query_id"] in ids, count=presses)
    assert len(answers) == presses
    slowed = [a for a in answers if SLOW_DOWN in a.params.get("text", "")]
    assert len(slowed) >= presses - PRESS_BURST - 2 and all(a.params["show_alert"] for a in slowed)
    assert len(tg.calls_of("editMessageText")) <= PRESS_BURST + 2
    assert errors(caplog) == []


@pytest.mark.parametrize("retry_after, edited", [(1, True), (30, False)])
async def test_flood_control_on_a_picker_edit_is_waited_out_or_explained(
        tg, bot, caplog, retry_after, edited):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image x")
    tg.fail_next("editMessageText", error_code=429, retry_after=retry_after)
    answer = await alice.press(picker, "Imagen 4")
    shows_options = any(b["text"].startswith("✅") for b in buttons(alice.refreshed(picker)))
    assert shows_options == edited
    assert (SLOW_DOWN in answer.get("text", "")) == (not edited)
    assert errors(caplog) == []


# -- D: a request deleted before the answer --------------------------------------------------------

async def test_a_request_deleted_before_the_answer_still_gets_its_picker(tg, bot):
    alice = Person(tg, 42, "Alice")
    request = alice.say("/image a fox")
    del tg.messages[42][request["message_id"]]  # gone before the bot reads the update
    [call] = await tg.wait_for("sendMessage", lambda c: bool(buttons(c.params)))
    assert call.params["reply_parameters"]["message_id"] == request["message_id"]
    assert "Imagen 4 · 40 credits" in [b["text"] for b in buttons(call.params)]


# -- E: strict parsing -----------------------------------------------------------------------------

FORGED = {
    "huge draft id": "pk:99999999999999999999999:m:imagen4",
    "superscript digit": "pk:²:x:",
    "negative id": "pk:-5:x:",
    "garbage prefix": "zz:1:x:",
    "empty": "",
    "64 bytes of junk": "ÿ" * 32,
    "unknown act": "pk:{draft}:zap:",
    "non-ASCII option index": "pk:{draft}:o:ar.²",
    "huge generation id": "ag:99999999999999999999999",
}


@pytest.mark.parametrize("data", FORGED.values(), ids=FORGED.keys())
async def test_a_forged_press_is_answered_and_changes_nothing(tg, bot, store, caplog, data):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    draft = Pick.unpack(button(picker, "Imagen 4")).draft
    await alice.press(picker, "Imagen 4")  # a model chosen: option presses reach their parsing
    query = tg.press(alice.user, picker, data.format(draft=draft))  # Person.press wants data
    [answer] = await tg.wait_for("answerCallbackQuery",
                                 lambda c: c.params["callback_query_id"] == query["id"])
    answer = answer.params
    assert answer["show_alert"] and OUT_OF_DATE in answer["text"]
    assert await only_granted(store, 42)
    assert errors(caplog) == []


@pytest.mark.parametrize("args", [
    "5 ²", "5 ++5", "--222 5", "12345678901234567890123 5", "42 ５", "٤٢ 5", "-42 5",
])
async def test_a_malformed_topup_answers_usage_and_changes_nothing(tg, bot, store, caplog, args):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Hi")
    admin.say(f"/topup {args}")
    call = await admin.told("Usage:")
    assert "Example: <code>/topup 123456789 100</code>" in call.params["text"]
    assert await only_granted(store, 42) and (await store.get_user(42)).balance == 100
    assert errors(caplog) == []


async def test_an_unknown_command_is_answered_with_a_pointer_to_help(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/imagine a fox")
    await alice.told("I don't know /imagine. /help lists what I can do.")
