"""The Telegram fake answers a real aiogram Bot the way Telegram would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
)

import tests.fakes.telegram as fake_module
from tests.chat import Person
from tests.fakes.telegram import (
    CHANNEL_BOT,
    GROUP_ANONYMOUS_BOT,
    GROUP_OWNER,
    Call,
    FakeTelegram,
    UploadedFile,
    tiny_png,
)

ALICE = 42


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.user(ALICE, "Alice", username="alice")
        yield fake


def make_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.url))
    return Bot(token or tg.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


async def close(bot: Bot) -> None:
    # Closing the aiohttp session first skips aiogram's 250 ms "let SSL connections close" sleep.
    inner = getattr(bot.session, "_session", None)
    if inner is not None:
        await inner.close()
    await bot.session.close()


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await close(bot)


def keyboard(data: str = "ok") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data=data)]])


async def test_get_me_and_wrong_token(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "testbot")

    other = make_bot(tg, token="999:other-token")
    with pytest.raises(TelegramUnauthorizedError):
        await other.get_me()
    await close(other)


async def test_send_message_is_recorded_with_decoded_markup(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "<b>Hi</b> &lt;there&gt;", reply_markup=keyboard("task:1"))

    [call] = await tg.wait_for("sendMessage")
    assert call.params["chat_id"] == ALICE and isinstance(call.params["chat_id"], int)
    assert call.params["parse_mode"] == "HTML"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Go", "callback_data": "task:1"}]]}
    # Telegram answers the parsed text with entities
    assert sent.text == "Hi <there>"
    assert sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert tg.last_bot_message(ALICE)["message_id"] == sent.message_id
    assert tg.sent_to(ALICE) == [call]


async def test_limits_are_enforced(tg: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(ALICE, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ALICE, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ALICE, " \n ")
    # the limit counts the text after the tags are removed
    await bot.send_message(ALICE, "<b>" + "x" * 4096 + "</b>")
    await bot.send_message(ALICE, "ok", reply_markup=keyboard("é" * 32))  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(ALICE, "ok", reply_markup=keyboard("x" * 65))
    assert [c.ok for c in tg.calls_of("send_message")] == [True, False, False, True, True, False]


async def test_broken_html_cannot_be_parsed(bot: Bot) -> None:
    for text in ("<b>bold", "a < b", "1 > 0", "Tom & Jerry", "<br>", "<b><i>x</b></i>"):
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(ALICE, text)
    await bot.send_message(ALICE, "Tom &amp; Jerry &#39;1 &gt; 0&#39; <a href='https://e.x/?a=1&b=2'>l</a>")


async def test_edit_identical_text_is_not_modified(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "Working…", reply_markup=keyboard())
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Working…", chat_id=ALICE, message_id=sent.message_id,
                                    reply_markup=keyboard())

    edited = await bot.edit_message_text("<i>Done</i>", chat_id=ALICE, message_id=sent.message_id)
    assert edited.text == "Done" and edited.reply_markup is None  # no markup given -> keyboard removed
    assert tg.message(ALICE, sent.message_id)["text"] == "Done"
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=ALICE, message_id=999)


async def test_fail_next_429_carries_retry_after(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", error_code=429, retry_after=7, when=lambda p: p["text"] == "flood")
    await bot.send_message(ALICE, "not matching")
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(ALICE, "flood")
    assert exc.value.retry_after == 7
    await bot.send_message(ALICE, "flood")  # only once
    failed = [c for c in tg.calls_of("sendMessage") if not c.ok]
    assert len(failed) == 1 and failed[0].injected and failed[0].error_code == 429


async def test_blocked_user_is_forbidden(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "hello")
    tg.block(ALICE)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ALICE, "hello again")
    with pytest.raises(TelegramForbiddenError):
        await bot.edit_message_text("changed", chat_id=ALICE, message_id=sent.message_id)


async def test_refused_url_then_upload_is_recorded(tg: FakeTelegram, bot: Bot) -> None:
    tg.refuse_urls = True
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(ALICE, "https://example.com/cat.png")

    png = tiny_png(320, 200)
    sent = await bot.send_photo(ALICE, BufferedInputFile(png, "cat.png"), caption="<b>cat</b>")
    call = tg.calls_of("sendPhoto")[-1]
    upload = call.params["photo"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.size, upload.data) == ("cat.png", len(png), png)
    assert sent.caption == "cat"
    assert (sent.photo[-1].width, sent.photo[-1].height, sent.photo[-1].file_size) == (320, 200, len(png))

    # the bot can fetch what it sent
    file = await bot.get_file(sent.photo[-1].file_id)
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == png


async def test_upload_size_limits(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="too big for a photo"):
        await bot.send_photo(ALICE, BufferedInputFile(b"\0" * (10 * 1024 * 1024 + 1), "big.jpg"))
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(ALICE, BufferedInputFile(b"\0" * (50 * 1024 * 1024 + 1), "huge.bin"))


async def test_media_group_count_and_captions(bot: Bot) -> None:
    photo = InputMediaPhoto(media=BufferedInputFile(tiny_png(), "a.png"), caption="one")
    with pytest.raises(TelegramBadRequest):
        await bot.send_media_group(ALICE, [photo])
    with pytest.raises(TelegramBadRequest, match="too many messages"):
        await bot.send_media_group(ALICE, [photo] * 11)
    long_caption = InputMediaPhoto(media=BufferedInputFile(tiny_png(), "b.png"), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_media_group(ALICE, [photo, long_caption])
    sent = await bot.send_media_group(ALICE, [photo, photo])
    assert len(sent) == 2 and sent[0].media_group_id == sent[1].media_group_id


async def test_get_updates_redelivers_until_confirmed(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.users[ALICE]
    message = tg.send_message(alice, "/start")
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

    first = await bot.get_updates(timeout=1)
    again = await bot.get_updates(timeout=1)
    assert [u.update_id for u in first] == [u.update_id for u in again]  # not confirmed yet
    assert first[0].message is not None and first[0].message.text == "/start"

    tg.max_poll_wait = 0.2  # long polls are capped so tests stop fast
    started = time.monotonic()
    assert await bot.get_updates(offset=first[-1].update_id + 1, timeout=30) == []
    assert 0.15 < time.monotonic() - started < 1


async def test_press_and_answer_callback(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "Pick", reply_markup=keyboard("pick:1"))
    await bot.edit_message_text("Pick one", chat_id=ALICE, message_id=sent.message_id,
                                reply_markup=keyboard("pick:1"))
    query = tg.press(tg.users[ALICE], tg.last_bot_message(ALICE), "pick:1")
    assert query["message"]["text"] == "Pick one"  # as last known

    [update] = await bot.get_updates(timeout=1)
    assert update.callback_query is not None and update.callback_query.data == "pick:1"
    assert await bot.answer_callback_query(update.callback_query.id, text="ok")
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(update.callback_query.id, text="x" * 201)


async def test_wait_for_times_out_with_a_summary(tg: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(ALICE, "only this")
    with pytest.raises(AssertionError, match=r"sendMessage .*only this"):
        await tg.wait_for("sendPhoto", timeout=0.1)
    calls: list[Call] = await tg.wait_for("sendMessage", lambda c: "only" in c.params["text"])
    assert len(calls) == 1


def reply_to(message_id: int, allow: bool | None = None) -> ReplyParameters:
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=allow)


async def test_outage_answers_5xx_until_it_ends(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_message(tg.users[ALICE], "queued before the outage")
    tg.outage()  # 502 for everything
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(ALICE, "lost?")
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.get_updates(offset=999, timeout=1)  # the offset never reached Telegram
    failed = tg.calls[-2:]
    assert [(c.method, c.ok, c.injected, c.error_code) for c in failed] == [
        ("sendMessage", False, True, 502), ("getUpdates", False, True, 502)]
    assert failed[0].response == {"ok": False, "error_code": 502, "description": "Bad Gateway"}

    tg.end_outage()
    await bot.send_message(ALICE, "back")
    [update] = await bot.get_updates(timeout=1)
    assert update.message is not None and update.message.text == "queued before the outage"

    tg.outage(500, methods=["sendPhoto"])  # only some methods
    await bot.send_message(ALICE, "text still works")
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.send_photo(ALICE, BufferedInputFile(tiny_png(), "a.png"))
    tg.end_outage()
    await bot.send_photo(ALICE, BufferedInputFile(tiny_png(), "a.png"))


async def test_upgraded_group_answers_migrate_to_chat(tg: FakeTelegram, bot: Bot) -> None:
    group = tg.group_chat(-4001, "Old group", type="group")
    command = tg.send_message(tg.users[ALICE], "/image@testbot cat", chat=group)
    status = await bot.send_message(group["id"], "Working…")

    new = tg.upgrade_group(-4001, -1004001)
    assert new == {"id": -1004001, "type": "supergroup", "title": "Old group"}
    with pytest.raises(TelegramMigrateToChat) as exc:
        await bot.send_message(group["id"], "Done")
    assert exc.value.migrate_to_chat_id == -1004001
    assert tg.calls[-1].response == {
        "ok": False, "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1004001}}
    with pytest.raises(TelegramMigrateToChat):
        await bot.edit_message_text("Done", chat_id=group["id"], message_id=status.message_id)
    with pytest.raises(TelegramMigrateToChat):
        await bot.send_chat_action(group["id"], "typing")

    # Telegram's service messages: in the old chat, then in the new one
    _, moved_to, moved_from = await bot.get_updates(timeout=1)
    old_msg, new_msg = moved_to.message, moved_from.message
    assert old_msg is not None and new_msg is not None
    assert (old_msg.chat.id, old_msg.chat.type, old_msg.migrate_to_chat_id) == (-4001, "group", -1004001)
    assert old_msg.from_user is not None and old_msg.from_user.id == GROUP_OWNER["id"]
    assert ((new_msg.chat.id, new_msg.chat.type, new_msg.migrate_from_chat_id)
            == (-1004001, "supergroup", -4001))
    assert new_msg.from_user is not None and new_msg.from_user.username == "GroupAnonymousBot"
    assert new_msg.sender_chat is not None and new_msg.sender_chat.id == -1004001

    # the old chat's message ids mean nothing in the new chat
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(-1004001, "Done", reply_parameters=reply_to(command["message_id"]))
    sent = await bot.send_message(-1004001, "Done",
                                  reply_parameters=reply_to(command["message_id"], allow=True))
    assert sent.chat.id == -1004001 and sent.reply_to_message is None
    with pytest.raises(ValueError, match="upgraded"):
        tg.send_message(tg.users[ALICE], "/image", chat=group)


async def test_redelivered_update_comes_back_with_the_same_id(tg: FakeTelegram, bot: Bot) -> None:
    tg.max_poll_wait = 0.1
    message = tg.send_message(tg.users[ALICE], "/start")
    [first] = await bot.get_updates(timeout=1)
    assert await bot.get_updates(offset=first.update_id + 1, timeout=1) == []  # confirmed

    redelivered = tg.redeliver(message)
    assert redelivered["update_id"] == first.update_id
    tg.send_message(tg.users[ALICE], "/help")
    again = await bot.get_updates(offset=first.update_id + 1, timeout=1)
    assert [u.update_id for u in again] == [first.update_id, first.update_id + 1]  # oldest first
    assert again[0].message is not None and again[0].message.text == "/start"
    assert again[0].message.message_id == message["message_id"]
    assert await bot.get_updates(offset=again[-1].update_id + 1, timeout=1) == []  # only once more

    # a repeated button press: the same callback query id again
    await bot.send_message(ALICE, "Pick", reply_markup=keyboard("pick:1"))
    query = tg.press(tg.users[ALICE], tg.last_bot_message(ALICE) or {}, "pick:1")
    [press] = await bot.get_updates(offset=again[-1].update_id + 1, timeout=1)
    tg.redeliver(query)
    [pressed_again] = await bot.get_updates(offset=press.update_id + 1, timeout=1)
    assert pressed_again.update_id == press.update_id
    assert pressed_again.callback_query is not None and pressed_again.callback_query.id == query["id"]


async def test_messages_posted_as_a_group_or_a_channel(tg: FakeTelegram, bot: Bot) -> None:
    group = tg.group_chat()
    channel = tg.group_chat(-1009999, "News", type="channel")
    tg.anonymous_admin_message(group, "/topup@testbot 5")
    tg.channel_message(group, channel, "/image a cat")
    tg.send_message(tg.users[ALICE], "/balance", chat=group, sender_chat=channel)
    admin, from_channel, alice_as_channel = await bot.get_updates(timeout=1)

    m = admin.message
    assert m is not None and m.from_user is not None and m.sender_chat is not None
    assert ((m.from_user.id, m.from_user.is_bot, m.from_user.username)
            == (1087968824, True, "GroupAnonymousBot"))
    assert m.sender_chat.id == group["id"] and m.chat.id == group["id"]
    assert m.entities is not None and (m.entities[0].type, m.entities[0].length) == ("bot_command", 14)
    for update in (from_channel, alice_as_channel):
        m = update.message
        assert m is not None and m.from_user is not None and m.sender_chat is not None
        assert (m.from_user.id, m.from_user.username) == (CHANNEL_BOT["id"], "Channel_Bot")
        assert (m.sender_chat.id, m.sender_chat.type) == (channel["id"], "channel")
        assert m.entities is not None and m.entities[0].type == "bot_command"
    assert GROUP_ANONYMOUS_BOT["id"] not in tg.users and CHANNEL_BOT["id"] not in tg.users
    # the bot can answer them in the group
    await bot.send_message(group["id"], "ok", reply_parameters=reply_to(admin.message.message_id))
    with pytest.raises(ValueError):
        tg.send_message(tg.users[ALICE], "hi", sender_chat=channel)  # not in a private chat


async def test_user_deletes_a_message(tg: FakeTelegram, bot: Bot) -> None:
    alice = Person(tg, ALICE, "Alice")
    request = alice.say("/image a cat")
    status = await bot.send_message(ALICE, "Working…", reply_parameters=reply_to(request["message_id"]))

    alice.delete(request)
    assert tg.message(ALICE, request["message_id"]) is None
    assert tg.deleted_by_users == [(ALICE, request["message_id"])] and tg.deleted == []
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(ALICE, "Done", reply_parameters=reply_to(request["message_id"]))
    sent = await bot.send_message(ALICE, "Done", reply_parameters=reply_to(request["message_id"], allow=True))
    assert sent.reply_to_message is None

    # in a private chat a person can delete the bot's message for both sides
    tg.delete_user_message(ALICE, status.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("Done", chat_id=ALICE, message_id=status.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(ALICE, status.message_id)
    with pytest.raises(ValueError):
        tg.delete_user_message(ALICE, status.message_id)


async def test_kicked_from_a_group_is_not_blocked(tg: FakeTelegram, bot: Bot) -> None:
    supergroup = tg.group_chat()
    group = tg.group_chat(-4002, "Small group", type="group")
    channel = tg.group_chat(-1009998, "News", type="channel")
    status = await bot.send_message(supergroup["id"], "Working…")
    await bot.send_message(group["id"], "hi")

    for chat in (supergroup, group, channel):
        tg.kick(chat["id"])
    with pytest.raises(TelegramForbiddenError,
                       match=r"^Telegram server says - Forbidden: bot was kicked from the supergroup chat$"):
        await bot.send_message(supergroup["id"], "Done")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.edit_message_text("Done", chat_id=supergroup["id"], message_id=status.message_id)
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.delete_message(supergroup["id"], status.message_id)
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the group chat"):
        await bot.send_message(group["id"], "Done")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the channel chat"):
        await bot.send_photo(channel["id"], BufferedInputFile(tiny_png(), "a.png"))
    await bot.send_message(ALICE, "private chats are unaffected")
    tg.block(ALICE)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ALICE, "blocked is another error")

    # Telegram tells the bot with my_chat_member
    updates = await bot.get_updates(timeout=1)
    members = [u.my_chat_member for u in updates]
    assert [(m.chat.id, m.old_chat_member.status, m.new_chat_member.status) for m in members if m] == [
        (supergroup["id"], "member", "kicked"), (group["id"], "member", "left"),
        (channel["id"], "administrator", "kicked")]
    assert all(m and m.new_chat_member.user.id == 123456 and m.from_user.id == GROUP_OWNER["id"]
               for m in members)


def test_docstring_names_no_machine_path() -> None:
    assert fake_module.__doc__ is not None and "telegram-limits.md" in fake_module.__doc__
    assert "/work/" not in fake_module.__doc__
