"""The Bot API session: aiogram's aiohttp one, made cheaper per call where aiogram spends
for nothing (bench.updates' profile), and the one place every secret is cut from what the bot
sends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import FormData

from bot.redaction import redact, secret_forms

# Methods that hand Telegram a secret on purpose and are never shown in a chat: setWebhook
# carries the webhook's secret_token, and redacting it would break the webhook.
SENDS_SECRETS = frozenset({"setWebhook"})


class BotSession(AiohttpSession):
    """aiogram parses each answer as `Response[<what the method returns>]`, a generic model
    that pydantic builds on first use and caches only weakly: with nothing else holding it, the
    garbage collector frees it and a later call builds it again (a fifth of a /balance's CPU in
    bench.updates' profile). Holding each one here builds it once per process.

    `secrets` (Settings.secrets()) are cut from every text field of every request as it is
    sent (build_form_data), whichever method, field or nesting holds them: no chat ever shows
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

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        """aiogram's (3.31), but
        - the dump leaves out the fields left None, which its prepare_value drops anyway;
        - an inline keyboard is made JSON by pydantic in one call, not dumped to dicts, walked
          by prepare_value and then made JSON: a picker's dozen buttons of some fifteen fields,
          two of them set, were the dearest part of its edit;
        - every text field is redacted as sent: a string search per field and secret, where
          walking the method's models for them cost as much as the dump."""
        form = FormData(quote_fields=False)
        files: dict[str, InputFile] = {}
        keyboard = getattr(method, "reply_markup", None)
        if isinstance(keyboard, InlineKeyboardMarkup):
            fields = method.model_dump(warnings=False, exclude_none=True,
                                       exclude={"reply_markup"})
            fields["reply_markup"] = keyboard.model_dump_json(exclude_none=True)
        else:
            fields = method.model_dump(warnings=False, exclude_none=True)
        redacting = method.__api_method__ not in SENDS_SECRETS
        for key, value in fields.items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                if redacting and isinstance(prepared, str):
                    prepared = redact(prepared, self.secrets)
                form.add_field(key, prepared)
        for key, file in files.items():
            form.add_field(key, file.read(bot), filename=file.filename or key)
        return form
