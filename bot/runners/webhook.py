"""Telegram's webhook: every instance serves the updates it is sent (web.TelegramWebhook, on
the bot's web server); this only tells Telegram where, once the server listens."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher

from bot.config import WebhookSettings

log = logging.getLogger(__name__)


class WebhookRunner:

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, settings: WebhookSettings,
                 started: asyncio.Event) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.settings = settings
        self.started = started

    async def run(self, stopping: asyncio.Event) -> None:
        # Only once the server listens: Telegram starts posting at once.
        await self.bot.set_webhook(
            str(self.settings.url),
            secret_token=self.settings.secret.get_secret_value() if self.settings.secret else None,
            allowed_updates=self.dispatcher.resolve_used_update_types())
        self.started.set()
        log.info("bot started (webhook)")
        await stopping.wait()

    async def stop(self) -> None:
        """Nothing to end: the web server stops with the application."""
