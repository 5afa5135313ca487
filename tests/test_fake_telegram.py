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
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto

from tests.fakes.telegram import Call, FakeTelegram, UploadedFile, tiny_png

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
    with pytest.raises(AssertionError, match="sendMessage .*only this"):
        await tg.wait_for("sendPhoto", timeout=0.1)
    calls: list[Call] = await tg.wait_for("sendMessage", lambda c: "only" in c.params["text"])
    assert len(calls) == 1
