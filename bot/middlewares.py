"""Middlewares: every update registers its user; banned users get one short answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.i18n import locale_of
from bot.store import Store

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AccountMiddleware(BaseMiddleware):
    """Outer update middleware: `account` (the stored user) reaches every handler."""

    def __init__(self, store: Store, settings: Settings, i18n: I18n) -> None:
        self.store = store
        self.settings = settings
        self.i18n = i18n

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            return await handler(event, data)
        account, _ = await self.store.upsert_user(
            sender.id, username=sender.username, first_name=sender.first_name,
            last_name=sender.last_name, tg_language=sender.language_code,
            starting_credits=self.settings.starting_credits)
        data["account"] = account
        data["is_admin"] = sender.id in self.settings.admin_ids
        if account.banned and not data["is_admin"]:
            return await self._refuse(event, locale_of(account, self.i18n))
        return await handler(event, data)

    async def _refuse(self, event: TelegramObject, locale: str) -> None:
        text = self.i18n.gettext("You are banned from using this bot.", locale=locale)
        if not isinstance(event, Update):
            return
        if isinstance(event.event, Message) and event.event.text and event.event.text.startswith("/"):
            await event.event.answer(text)
        elif isinstance(event.event, CallbackQuery):
            await event.event.answer(text, show_alert=True)
