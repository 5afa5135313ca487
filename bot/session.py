"""The Bot API session: aiogram's aiohttp one, made cheaper per call where aiogram spends
for nothing (bench.updates' profile), and the one place every secret is cut from what the bot
sends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload, Payload

from bot.redaction import redact, secret_forms

# Methods that hand Telegram a secret on purpose and are never shown in a chat: setWebhook
# carries the webhook's secret_token, and redacting it would break the webhook.
SENDS_SECRETS = frozenset({"setWebhook"})


class BotSession(AiohttpSession):
    """aiogram parses each answer as `Response[<what the method returns>]`, a generic model
    that pydantic builds on first use and caches only weakly: with nothing else holding it, the
    garbage collector frees it and a later call builds it again (a fifth of a /balance's CPU in
    bench.updates' profile). Holding each one here builds it once per process.

    `secrets` (Settings.secrets()) are cut from every request as it is sent
    (build_form_data), whichever method, field or nesting holds them: no chat ever shows
    one, whoever wrote the text (Kie's errors). Known gaps: a secret split by markup
    (`12<b>34</b>`) is not found, and replacing text sent with explicit `entities` (not
    parse_mode) would shift their offsets. Uploaded files are sent as they are."""

    _answer_models: ClassVar[dict[Any, type[Response[Any]]]] = {}

    def __init__(self, *, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secrets = secret_forms(secrets)

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._answer_models:
            self._answer_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    def build_form_data(  # type: ignore[override]  # aiogram passes it to aiohttp as `data`
            self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData | Payload:
        """The request's body: one JSON object (Telegram takes application/json for every call
        but uploads), or aiogram's multipart form when a file goes with it. aiogram builds an
        aiohttp FormData for every call: that makes a multipart writer (a random boundary) even
        for a urlencoded body, and percent-encodes every character of a Russian text in Python
        (a fifth of a press's two calls in bench.updates' profile); json.dumps does it in C.
        Besides:
        - the dump leaves out the fields left None, which aiogram's prepare_value drops anyway;
        - an inline keyboard is dumped by pydantic in one call, not walked by prepare_value (a
          picker's dozen buttons of some fifteen fields, two of them set);
        - every secret is cut from the body as sent: one string search per secret form (a JSON
          body holds each text JSON-escaped, and the forms include that)."""
        files: dict[str, InputFile] = {}
        keyboard = getattr(method, "reply_markup", None)
        if isinstance(keyboard, InlineKeyboardMarkup):
            dumped = method.model_dump(warnings=False, exclude_none=True, exclude={"reply_markup"})
            dumped["reply_markup"] = keyboard.model_dump(mode="json", exclude_none=True)
        else:
            dumped = method.model_dump(warnings=False, exclude_none=True)
        fields = {key: prepared for key, value in dumped.items()
                  if (prepared := self.prepare_value(value, bot=bot, files=files,
                                                     _dumps_json=False)) not in (None, "")}
        redacting = method.__api_method__ not in SENDS_SECRETS
        if not files:
            body = json.dumps(fields, ensure_ascii=False)
            return BytesPayload((redact(body, self.secrets) if redacting else body).encode(),
                                content_type="application/json")
        form = FormData(quote_fields=False)
        for key, value in fields.items():
            text = value if isinstance(value, str) else self.json_dumps(value)
            form.add_field(key, redact(text, self.secrets) if redacting else text)
        for key, file in files.items():
            form.add_field(key, file.read(bot), filename=file.filename or key)
        return form
