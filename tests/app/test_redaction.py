"""No secret reaches a chat: `redact`, and BotSession redacting every request of a real Bot against
the fake API."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendMessage
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputPollOption,
)

from bot.redaction import REDACTED, redact, secret_forms
from bot.session import BotSession
from testkit.bot import KIE_KEY, TOKEN
from testkit.fakes.telegram import FakeTelegram, UploadedFile, tiny_png
from tests.app.test_fake_telegram import close

ALICE = 42
# A secret with characters HTML escapes, as a KIE_WEBHOOK_HMAC_KEY may have.
HMAC = "hm&ac<key>'1"
HOOK = "hook-secret_42"
SECRETS = [TOKEN, KIE_KEY, HMAC, HOOK]


# -- redact -----------------------------------------------------------------------------------------

def test_redact_replaces_every_occurrence_of_every_secret() -> None:
    text = f"Bearer {KIE_KEY} at /bot{TOKEN}/getMe, again {KIE_KEY}."
    assert redact(text, [TOKEN, KIE_KEY]) == f"Bearer {REDACTED} at /bot{REDACTED}/getMe, again {REDACTED}."


def test_redact_without_secret_returns_the_same_text() -> None:
    """The usual case allocates nothing: the very same string comes back."""
    text = "nothing to hide " * 100
    assert redact(text, secret_forms(SECRETS)) is text


def test_redact_secret_containing_another_goes_whole() -> None:
    """Shorter first would leave `123456:` and the rest of the longer secret in the text."""
    assert redact(f"x {TOKEN} y", ["TEST", TOKEN]) == f"x {REDACTED} y"


def test_redact_ignores_empty_secrets() -> None:
    assert redact("abc", ["", "zzz"]) == "abc"
    assert secret_forms(["", TOKEN]) and "" not in secret_forms(["", TOKEN])


def test_secret_forms_cover_html_escaped_and_url_encoded() -> None:
    forms = secret_forms([TOKEN, HMAC])
    escaped = html.escape(f"Kie said: key {HMAC} refused")
    assert redact(escaped, forms) == f"Kie said: key {REDACTED} refused"
    assert redact("https://e.x/?t=123456%3ATEST-secret-token-do-not-log", forms) == f"https://e.x/?t={REDACTED}"


def test_secret_forms_cover_json_strings() -> None:
    """A keyboard's or an album's fields are sent as JSON: a secret with a quote, a backslash
    or a letter JSON escapes is found as JSON writes it."""
    odd = 'k"e\\y-ключ'
    forms = secret_forms([odd])
    for dumped in (json.dumps({"text": f"key {odd}"}),
                   json.dumps({"text": f"key {odd}"}, ensure_ascii=False)):
        assert odd not in json.loads(redact(dumped, forms))["text"]


# -- the session on a real Bot ---------------------------------------------------------------------

def make_bot(tg: FakeTelegram, redacting: bool = True) -> Bot:
    session = BotSession(api=TelegramAPIServer.from_base(tg.url),
                         secrets=SECRETS if redacting else ())
    return Bot(tg.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    tg.user(ALICE, "Alice")
    bot = make_bot(tg)
    yield bot
    await close(bot)


def leaked(value: Any) -> list[str]:
    """The secrets found anywhere in a recorded call's params."""
    text = repr(value)
    return [secret for secret in (TOKEN, KIE_KEY, HOOK) if secret in text]


async def test_without_the_middleware_the_secret_reaches_the_chat(tg: FakeTelegram) -> None:
    """The control: the fake does show a leak when nothing redacts."""
    tg.user(ALICE, "Alice")
    bare = make_bot(tg, redacting=False)
    try:
        await bare.send_message(ALICE, f"key {KIE_KEY}")
    finally:
        await close(bare)
    assert tg.calls_of("sendMessage")[-1].params["text"] == f"key {KIE_KEY}"


async def test_send_message_text(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, f"Kie: <code>Authorization: Bearer {KIE_KEY}</code> "
                                         f"url /bot{TOKEN}/sendMessage")
    [call] = tg.calls_of("sendMessage")
    assert call.params["text"] == (f"Kie: <code>Authorization: Bearer {REDACTED}</code> "
                                   f"url /bot{REDACTED}/sendMessage")
    assert sent.text == f"Kie: Authorization: Bearer {REDACTED} url /bot{REDACTED}/sendMessage"


async def test_html_escaped_secret_in_text(tg: FakeTelegram, bot: Bot) -> None:
    """Foreign text is escaped into HTML messages; the escaped secret goes too."""
    await bot.send_message(ALICE, html.escape(f"bad signature with {HMAC}"))
    assert tg.calls_of("sendMessage")[-1].params["text"] == f"bad signature with {REDACTED}"


async def test_text_without_secret_is_sent_unchanged(tg: FakeTelegram, bot: Bot) -> None:
    method = SendMessage(chat_id=ALICE, text="<b>All good</b> &amp; done",
                         reply_markup=InlineKeyboardMarkup(inline_keyboard=[[
                             InlineKeyboardButton(text="Go ✓", callback_data="go")]]))
    await bot(method)
    params = tg.calls_of("sendMessage")[-1].params
    assert params["text"] == "<b>All good</b> &amp; done"
    assert params["reply_markup"] == {"inline_keyboard": [[{"text": "Go ✓", "callback_data": "go"}]]}


async def test_photo_caption_and_upload_untouched(tg: FakeTelegram, bot: Bot) -> None:
    png = tiny_png()
    sent = await bot.send_photo(ALICE, BufferedInputFile(png, "result.png"), caption=f"token {TOKEN}")
    call = tg.calls_of("sendPhoto")[-1]
    assert call.params["caption"] == f"token {REDACTED}" and sent.caption == f"token {REDACTED}"
    upload = call.params["photo"]
    assert isinstance(upload, UploadedFile) and (upload.filename, upload.data) == ("result.png", png)


async def test_media_group_captions(tg: FakeTelegram, bot: Bot) -> None:
    media = [InputMediaPhoto(media=BufferedInputFile(tiny_png(), "a.png"), caption=f"a {KIE_KEY}"),
             InputMediaPhoto(media=BufferedInputFile(tiny_png(), "b.png"), caption="b plain")]
    sent = await bot.send_media_group(ALICE, media)
    params = tg.calls_of("sendMediaGroup")[-1].params
    assert [item["caption"] for item in params["media"]] == [f"a {REDACTED}", "b plain"]
    assert all(isinstance(item["media"], UploadedFile) for item in params["media"])
    assert [m.caption for m in sent] == [f"a {REDACTED}", "b plain"]
    assert media[0].caption == f"a {KIE_KEY}"  # the caller's (frozen) object is left alone


async def test_callback_answer_text(tg: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(ALICE, "Pick", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="Go", callback_data="go")]]))
    query = tg.press(tg.users[ALICE], tg.last_bot_message(ALICE), "go")
    assert await bot.answer_callback_query(query["id"], text=f"failed: {KIE_KEY}", show_alert=True)
    assert tg.callback_answers[query["id"]]["text"] == f"failed: {REDACTED}"


async def test_inline_button_text_and_url(tg: FakeTelegram, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=f"Retry {TOKEN}", callback_data="retry")],
        [InlineKeyboardButton(text="Open", url=f"https://e.x/result?key={KIE_KEY}")],
    ])
    await bot.send_message(ALICE, "Done", reply_markup=keyboard)
    # The same keyboard again (callers reuse keyboards): still redacted, and still the caller's own.
    await bot.edit_message_text("Done!", chat_id=ALICE, message_id=tg.last_bot_message(ALICE)["message_id"],
                                reply_markup=keyboard)
    for call in tg.calls_of("sendMessage") + tg.calls_of("editMessageText"):
        assert call.params["reply_markup"] == {"inline_keyboard": [
            [{"text": f"Retry {REDACTED}", "callback_data": "retry"}],
            [{"text": "Open", "url": f"https://e.x/result?key={REDACTED}"}],
        ]}
    assert keyboard.inline_keyboard[0][0].text == f"Retry {TOKEN}"


async def test_any_method_is_covered_poll(tg: FakeTelegram, bot: Bot) -> None:
    """No list of methods: a poll's question and options are walked like everything else."""
    await bot.send_poll(ALICE, f"Is {HOOK} safe?", [InputPollOption(text=f"yes {TOKEN}"), "no"],
                        explanation=f"{KIE_KEY}", type="quiz", correct_option_id=1)
    params = tg.calls_of("sendPoll")[-1].params
    assert leaked(params) == [] and params["question"] == f"Is {REDACTED} safe?"


async def test_set_webhook_keeps_its_secret_token(tg: FakeTelegram, bot: Bot) -> None:
    """setWebhook hands Telegram the webhook secret on purpose; redacting it would break the webhook."""
    assert await bot.set_webhook("https://bot.example/hook", secret_token=HOOK)
    assert tg.calls_of("setWebhook")[-1].params["secret_token"] == HOOK
    await bot.delete_webhook()
