"""Wiring: the Bot, the Dispatcher, the store, the Kie client and the tracker; start and stop."""

from __future__ import annotations

import asyncio
import logging

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import BotCommand
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from bot.config import Settings
from bot.handlers import build_router
from bot.i18n import N_, UserLocaleMiddleware, create_i18n
from bot.kie import KieClient, RateLimiter
from bot.middlewares import AccountMiddleware, RepeatedUpdateMiddleware, ThrottleMiddleware
from bot.redaction import RedactSecretsMiddleware
from bot.services.credit_watch import CreditWatch
from bot.services.delivery import Delivery
from bot.services.generation import Generations
from bot.services.notifier import Notifier
from bot.services.pictures import Pictures
from bot.services.tracker import Tracker
from bot.store import Store

log = logging.getLogger(__name__)

COMMANDS = (
    ("image", N_("Create a picture")),
    ("video", N_("Create a video")),
    ("music", N_("Create music or speech")),
    ("models", N_("Models and prices")),
    ("balance", N_("Your credits")),
    ("history", N_("Your last generations")),
    ("language", N_("Change the language")),
    ("help", N_("What the bot can do")),
    ("buy", N_("Buy credits with Telegram Stars")),
    ("paysupport", N_("Help with payments")),
    ("start", N_("Start")),
)


class Application:
    """One running bot. `run()` until stopped; `stop()` ends it gracefully."""

    def __init__(self, settings: Settings, *, handle_signals: bool = True) -> None:
        self.settings = settings
        self.handle_signals = handle_signals
        self.i18n = create_i18n(settings.default_language)
        self.dispatcher = Dispatcher()
        self.started = asyncio.Event()

    async def run(self) -> None:
        settings = self.settings
        store = await Store.open(settings.database_path)
        limiter = RateLimiter(settings.kie_rate_limit, settings.kie_rate_window)
        kie = KieClient(settings.kie_api_key, base_url=str(settings.kie_api_url),
                        upload_url=str(settings.kie_upload_url), limiter=limiter)
        # Redirects are followed by Delivery itself: a few, to http(s) only.
        downloads = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        bot = Bot(settings.bot_token.get_secret_value(),
                  session=AiohttpSession(api=TelegramAPIServer.from_base(
                      str(settings.telegram_api_url).rstrip("/"))),
                  default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                               link_preview_is_disabled=True))
        # Every secret is cut from every text the bot sends, whoever wrote it (Kie's errors).
        bot.session.middleware(RedactSecretsMiddleware(settings.secrets()))
        notifier = Notifier(bot, store, self.i18n, settings.admin_ids)
        delivery = Delivery(bot, store, kie=kie, notifier=notifier, i18n=self.i18n, http=downloads)
        tracker = Tracker(store, kie=kie, delivery=delivery, notifier=notifier, settings=settings)
        generations = Generations(store, kie=kie, pictures=Pictures(bot, kie), notifier=notifier,
                                  settings=settings, wake_tracker=tracker.wake)

        dp = self.dispatcher
        dp.update.outer_middleware(ThrottleMiddleware(self.i18n))  # before any database write
        dp.update.outer_middleware(RepeatedUpdateMiddleware(store))
        dp.update.outer_middleware(AccountMiddleware(store, settings, self.i18n))
        UserLocaleMiddleware(self.i18n).setup(dp)
        dp.callback_query.middleware(CallbackAnswerMiddleware())
        dp.include_router(build_router())

        watch = (CreditWatch(store, kie, notifier, settings.kie_low_credit_alert)
                 if settings.kie_low_credit_alert > 0 else None)

        async def on_startup() -> None:
            await self._set_commands(bot)
            await tracker.start()
            if watch is not None:
                watch.start()
            self.started.set()
            log.info("bot started")

        async def on_shutdown() -> None:
            await tracker.stop()
            if watch is not None:
                await watch.stop()
            log.info("bot stopped")

        dp.startup.register(on_startup)
        dp.shutdown.register(on_shutdown)
        # Services and tracker reach the current I18n through its context variable.
        self.i18n.set_current(self.i18n)
        try:
            await dp.start_polling(
                bot, allowed_updates=dp.resolve_used_update_types(),
                handle_signals=self.handle_signals, close_bot_session=True,
                store=store, settings=settings, generations=generations, kie=kie,
                delivery=delivery)
        finally:
            await kie.aclose()
            await downloads.aclose()
            await store.close()

    async def stop(self) -> None:
        await self.dispatcher.stop_polling()

    async def _set_commands(self, bot: Bot) -> None:
        """The command menu in every shipped language; the default one for everyone else."""
        for locale in (None, *self.i18n.available_locales):
            with self.i18n.use_locale(locale or self.i18n.default_locale):
                commands = [BotCommand(command=name, description=self.i18n.gettext(text))
                            for name, text in COMMANDS]
            await bot.set_my_commands(commands, language_code=locale)
