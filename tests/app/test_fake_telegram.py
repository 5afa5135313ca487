"""The Telegram fake answers a real aiogram Bot the way Telegram would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
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
from aiohttp import web

import testkit.fakes.telegram as fake_module
from testkit.chat import Person
from testkit.fakes.server import AppServer
from testkit.fakes.telegram import (
    CHANNEL_BOT,
    GROUP_ANONYMOUS_BOT,
    GROUP_OWNER,
    SECRET_HEADER,
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


# -- webhook mode ----------------------------------------------------------------------------------

HOOK_SECRET = "hook-Secret_42"


class Receiver:
    """A tiny webhook endpoint: records what arrives, answers what `answer` says (200 by default),
    checks the secret like the bot must (wrong or missing -> 401)."""

    def __init__(self, secret: str | None = HOOK_SECRET) -> None:
        self.secret = secret
        self.got: list[tuple[int, str | None]] = []  # (update_id, secret header) of accepted posts
        self.seen: list[dict[str, Any]] = []  # every body that came with the right secret
        self.active = 0
        self.most_active = 0
        self.answer: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]] | None = None
        app = web.Application()
        app.router.add_post("/tg/hook", self.handle)
        self.server = AppServer(app)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get(SECRET_HEADER)
        if self.secret is not None and header != self.secret:
            return web.Response(status=401)
        update = await request.json()
        self.seen.append(update)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            response = await self.answer(update) if self.answer else web.Response()
        finally:
            self.active -= 1
        if 200 <= response.status < 300:
            self.got.append((update["update_id"], header))
        return response

    @property
    def url(self) -> str:
        return f"{self.server.url}/tg/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    async with r.server:
        yield r


async def test_webhook_pushes_in_order_with_the_secret(tg: FakeTelegram, bot: Bot,
                                                       receiver: Receiver) -> None:
    async def slow(update: dict[str, Any]) -> web.Response:
        await asyncio.sleep(0.03)
        return web.Response()

    receiver.answer = slow
    alice = tg.users[ALICE]
    first = tg.send_message(alice, "queued before the webhook")
    assert await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET, allowed_updates=["message"])
    for n in range(3):
        tg.send_message(alice, f"message {n}")
    tg.press(alice, first, "not allowed")  # a callback query: allowed_updates leaves it out
    await tg.wait_webhook_idle(timeout=5)

    ids = [update_id for update_id, _ in receiver.got]
    assert ids == [1, 2, 3, 4] and {secret for _, secret in receiver.got} == {HOOK_SECRET}
    assert [u["message"]["text"] for u in receiver.seen][1:] == ["message 0", "message 1", "message 2"]
    assert receiver.most_active == 1  # one at a time by default
    assert tg.webhook_delivered == ids and all(post.ok for post in tg.webhook_posts)
    assert all(post.elapsed >= 0.03 and post.url == receiver.url for post in tg.webhook_posts)
    assert [p.update_id for p in tg.webhook_posts_of(first)] == [1]

    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.max_connections) == (receiver.url, 0, 40)
    assert info.allowed_updates == ["message"] and info.last_error_message is None
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates(timeout=1)


async def test_webhook_retries_a_failed_update_until_2xx(tg: FakeTelegram, bot: Bot,
                                                         receiver: Receiver) -> None:
    answers = [500, 500, 200]

    async def flaky(update: dict[str, Any]) -> web.Response:
        return web.Response(status=answers.pop(0) if update["message"]["text"] == "one" else 200)

    receiver.answer = flaky
    tg.webhook_retry_delay = 0.2  # slow enough to look at getWebhookInfo in between
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    one = tg.send_message(tg.users[ALICE], "one")
    tg.send_message(tg.users[ALICE], "two")  # same chat: waits for "one"
    for _ in range(100):
        if tg.webhook_posts:
            break
        await asyncio.sleep(0.01)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 2
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None and abs(info.last_error_date.timestamp() - time.time()) < 5

    await tg.wait_webhook_idle(timeout=5)
    assert [(p.update_id, p.status) for p in tg.webhook_posts] == [(1, 500), (1, 500), (1, 200), (2, 200)]
    assert [p.error for p in tg.webhook_posts_of(one)][:2] == [
        "Wrong response from the webhook: 500 Internal Server Error"] * 2
    gap1 = tg.webhook_posts[1].time - tg.webhook_posts[0].time
    gap2 = tg.webhook_posts[2].time - tg.webhook_posts[1].time
    assert 0.2 <= gap1 < gap2  # backoff doubles
    assert [update_id for update_id, _ in receiver.got] == [1, 2]
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_no_push_after_delete_webhook(tg: FakeTelegram, bot: Bot, receiver: Receiver) -> None:
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    tg.send_message(tg.users[ALICE], "pushed")
    await tg.wait_webhook_idle()
    assert await bot.delete_webhook()
    tg.send_message(tg.users[ALICE], "polled")
    await asyncio.sleep(0.2)
    assert [u["message"]["text"] for u in receiver.seen] == ["pushed"] and len(tg.webhook_posts) == 1
    assert (await bot.get_webhook_info()).url == "" and tg.webhook_secret == ""
    [update] = await bot.get_updates(timeout=1)  # long polling works again
    assert update.message is not None and update.message.text == "polled"

    tg.send_message(tg.users[ALICE], "dropped")
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET, drop_pending_updates=True)
    tg.send_message(tg.users[ALICE], "after the drop")
    await tg.wait_webhook_idle()
    assert [u["message"]["text"] for u in receiver.seen] == ["pushed", "after the drop"]


async def test_set_webhook_validates_like_telegram(tg: FakeTelegram, bot: Bot) -> None:
    bad = {
        "http://bot.example/hook": "bad webhook: An HTTPS URL must be provided for webhook",
        "https://bot.example:8080/hook":
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
        "https://10.1.2.3/hook": "bad webhook: IP address 10.1.2.3 is reserved",
        "ftp://bot.example/hook": "invalid webhook URL specified",
        "https://bot.example:99999/hook": "invalid webhook URL specified",
    }
    for url, description in bad.items():
        with pytest.raises(TelegramBadRequest, match=f"^Telegram server says - Bad Request: {description}$"):
            await bot.set_webhook(url)
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("https://bot.example/hook", secret_token="no spaces")
    with pytest.raises(TelegramBadRequest, match="secret token is too long"):
        await bot.set_webhook("https://bot.example/hook", secret_token="x" * 257)
    assert tg.webhook_url == ""

    # a public https URL is accepted but never called: the update stays pending
    assert await bot.set_webhook("https://bot.example:8443/hook", secret_token="x" * 256, max_connections=500)
    tg.send_message(tg.users[ALICE], "stays")
    await asyncio.sleep(0.1)
    info = await bot.get_webhook_info()
    assert (info.pending_update_count, info.max_connections, tg.webhook_posts) == (1, 100, [])
    with pytest.raises(ValueError, match="no loopback webhook"):
        await tg.post_to_webhook({"update_id": 1})
    # a refused change leaves no webhook, as on Telegram (the old one is closed first)
    with pytest.raises(TelegramBadRequest):
        await bot.set_webhook("http://bot.example/other")
    assert (await bot.get_webhook_info()).url == ""
    # loopback over http on any port, for tests; an empty secret means none
    assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="")
    assert tg.webhook_url == "http://127.0.0.1:9/hook" and tg.webhook_secret == ""


async def test_deliver_webhook_to_redirects_a_public_url(tg: FakeTelegram, bot: Bot,
                                                          receiver: Receiver) -> None:
    tg.deliver_webhook_to = receiver.server.url
    await bot.set_webhook("https://bot.example/tg/hook", secret_token=HOOK_SECRET)
    tg.send_message(tg.users[ALICE], "hi")
    await tg.wait_webhook_idle()
    assert receiver.got == [(1, HOOK_SECRET)] and tg.webhook_posts[0].url == receiver.url
    assert (await bot.get_webhook_info()).url == "https://bot.example/tg/hook"


async def test_post_to_webhook_with_a_chosen_secret(tg: FakeTelegram, bot: Bot, receiver: Receiver) -> None:
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"},
                                            "text": "/start"}}
    assert await tg.post_to_webhook(forged, secret="wrong") == 401
    assert await tg.post_to_webhook(forged, secret=None) == 401
    assert await tg.post_to_webhook(b"{not json", secret="wrong") == 401
    assert await tg.post_to_webhook(forged) == 200  # the secret the bot set
    assert receiver.got == [(999, HOOK_SECRET)]
    assert tg.webhook_posts == [] and tg.update_log == []  # not a Telegram delivery
    other = Receiver(secret=None)
    async with other.server:
        assert await tg.post_to_webhook(forged, url=other.url, secret=None) == 200


async def test_slow_answer_and_refused_connection_are_retried(tg: FakeTelegram, bot: Bot,
                                                               receiver: Receiver) -> None:
    calls = 0

    async def slow_once(update: dict[str, Any]) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
        return web.Response()

    receiver.answer = slow_once
    tg.webhook_timeout = 0.1
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    tg.send_message(tg.users[ALICE], "slow")
    await tg.wait_webhook_idle()
    first, second = tg.webhook_posts
    assert (first.status, first.error, second.status) == (None, "Read timeout expired", 200)
    assert 0.1 <= first.elapsed < 0.3  # not the 0.3 s the answer took
    await asyncio.sleep(0.3)
    assert [u for u, _ in receiver.got] == [1, 1]  # the bot handled it twice: Telegram gave up waiting
    assert tg.webhook_delivered == [1]

    # nobody listens: "Connection refused", pending until the bot is back
    closed = AppServer(web.Application())
    await closed.start()
    url = f"{closed.url}/tg/hook"
    await closed.stop()
    await bot.set_webhook(url, secret_token=HOOK_SECRET)
    tg.send_message(tg.users[ALICE], "nobody home")
    for _ in range(100):
        if len(tg.webhook_posts) > 2:
            break
        await asyncio.sleep(0.01)
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Connection refused" and info.pending_update_count == 1
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    await tg.wait_webhook_idle()
    assert receiver.got[-1] == (2, HOOK_SECRET)


async def test_webhook_redeliver_and_an_answer_carrying_a_method(tg: FakeTelegram, bot: Bot,
                                                                 receiver: Receiver) -> None:
    async def reply(update: dict[str, Any]) -> web.Response:
        chat = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat, "text": "<b>hi</b>",
                                  "parse_mode": "HTML"})

    receiver.answer = reply
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET)
    message = tg.send_message(tg.users[ALICE], "/start")
    await tg.wait_webhook_idle()
    [call] = await tg.wait_for("sendMessage")
    assert call.via_webhook and call.params["text"] == "<b>hi</b>" and call.response["text"] == "hi"

    tg.redeliver(message)
    await tg.wait_webhook_idle()
    assert tg.webhook_delivered == [1, 1] and len(tg.webhook_posts_of(message)) == 2
    assert len(await tg.wait_for("sendMessage", count=2)) == 2


async def test_set_webhook_ends_a_pending_long_poll(tg: FakeTelegram, bot: Bot) -> None:
    tg.max_poll_wait = 5
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    other = make_bot(tg)
    try:
        await other.set_webhook("http://127.0.0.1:9/hook")
    finally:
        await close(other)
    with pytest.raises(TelegramConflictError, match="terminated by setWebhook request"):
        await poll


async def test_max_connections_keeps_each_chat_in_order(tg: FakeTelegram, bot: Bot,
                                                         receiver: Receiver) -> None:
    async def slow(update: dict[str, Any]) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response()

    receiver.answer = slow
    tg.webhook_connections = None  # as many as max_connections, like Telegram
    await bot.set_webhook(receiver.url, secret_token=HOOK_SECRET, max_connections=10)
    bob = tg.user(43, "Bob")
    for n in range(3):
        tg.send_message(tg.users[ALICE], f"alice {n}")
        tg.send_message(bob, f"bob {n}")
    await tg.wait_webhook_idle()
    assert receiver.most_active == 2  # one per chat
    by_chat: dict[int, list[str]] = {}
    for update in receiver.seen:
        by_chat.setdefault(update["message"]["chat"]["id"], []).append(update["message"]["text"])
    assert by_chat == {ALICE: ["alice 0", "alice 1", "alice 2"], 43: ["bob 0", "bob 1", "bob 2"]}


async def test_stop_cancels_the_pusher_and_its_posts() -> None:
    hung = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        hung.set()
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hang)
    async with AppServer(app) as server:
        tg = FakeTelegram()
        await tg.start()
        tg.user(ALICE, "Alice")
        bot = make_bot(tg)
        await bot.set_webhook(f"{server.url}/hook")
        await close(bot)
        tg.send_message(tg.users[ALICE], "never answered")
        await asyncio.wait_for(hung.wait(), 5)
        pusher, flights = tg._pusher, list(tg._in_flight.values())
        assert pusher is not None and len(flights) == 1
        started = time.monotonic()
        await tg.stop()
        assert time.monotonic() - started < 2
        assert pusher.done() and all(flight.done() for flight in flights) and tg._pusher is None
        assert len(tg.updates) == 1  # never confirmed
