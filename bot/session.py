"""The Bot API session: aiogram's aiohttp one, made cheaper per call where aiogram spends
for nothing (bench.updates' profile)."""

from __future__ import annotations

from typing import Any, ClassVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile
from aiohttp import FormData


class BotSession(AiohttpSession):
    """aiogram parses each answer as `Response[<what the method returns>]`, a generic model
    that pydantic builds on first use and caches only weakly: with nothing else holding it, the
    garbage collector frees it and a later call builds it again (a fifth of a /balance's CPU in
    bench.updates' profile). Holding each one here builds it once per process."""

    _answer_models: ClassVar[dict[Any, type[Response[Any]]]] = {}

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._answer_models:
            self._answer_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        """aiogram's (3.31), but for the dump: without the fields left None, which its
        prepare_value drops anyway, one call each. A picker's keyboard is a dozen buttons of
        some fifteen fields, two of them set: those calls were a tenth of a press's CPU."""
        form = FormData(quote_fields=False)
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False, exclude_none=True).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                form.add_field(key, prepared)
        for key, file in files.items():
            form.add_field(key, file.read(bot), filename=file.filename or key)
        return form
