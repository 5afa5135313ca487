"""Wiring: `build` makes every part of the bot once; `Application` runs them, with long polling
or Telegram's webhook, and with the web server (Kie callbacks, the webhook, /healthz) when
WEB_PORT is set."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.handlers import build_router
from bot.i18n import N_, UserLocaleMiddleware, create_i18n
from bot.kie import KieClient, RateLimiter
from bot.middlewares import AccountMiddleware, ThrottleMiddleware
from bot.redaction import RedactSecretsMiddleware
from bot.services.callbacks import KieCallbacks
from bot.services.credit_watch import CreditWatch
from bot.services.delivery import Delivery
from bot.services.generation import Generations
from bot.services.notifier import Notifier
from bot.services.payments import CreditOnArrival
from bot.services.pictures import Pictures
from bot.services.tracker import Tracker
from bot.store import Store
from bot.web import WebServer

log = logging.getLogger(__name__)

# Updates handled at once; the next getUpdates (or webhook POST) waits for a free slot. They
# queue on one database anyway, and a burst of thousands held in memory at once costs
# ~100 MB that the allocator never gives back (bench/memory.py: opened through the chat).
UPDATE_CONCURRENCY = 64
# On a graceful stop, creates under way get this long to be answered and recorded.
SUBMIT_GRACE = 10.0

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


@dataclass
class Parts:
    """Everything the bot is made of, built once by `build`."""

    settings: Settings
    i18n: I18n
    dispatcher: Dispatcher
    bot: Bot
    store: Store
    kie: KieClient
    tracker: Tracker
    generations: Generations
    watch: CreditWatch | None
    callbacks: KieCallbacks | None
    payments: CreditOnArrival
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def halt(self) -> None:
        """End the background work at once (after a graceful stop there is none left)."""
        await self.generations.stop(0.0)
        await self.tracker.stop()

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()


async def build(settings: Settings, i18n: I18n) -> Parts:
    store = await Store.open(settings.store.target, pool_size=settings.store.pool_size,
                             exclusive=True)
    limiter = RateLimiter(settings.kie.rate_limit, settings.kie.rate_window)
    kie = KieClient(settings.kie.api_key, base_url=str(settings.kie.api_url),
                    upload_url=str(settings.kie.upload_url), limiter=limiter)
    # Redirects are followed by Delivery itself: a few, to http(s) only.
    downloads = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
    bot = Bot(settings.bot.token.get_secret_value(),
              session=AiohttpSession(api=TelegramAPIServer.from_base(
                  str(settings.bot.api_url).rstrip("/"))),
              default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                           link_preview_is_disabled=True))
    # Every secret is cut from every text the bot sends, whoever wrote it (Kie's errors).
    bot.session.middleware(RedactSecretsMiddleware(settings.secrets()))
    payments = CreditOnArrival(store, settings.bot.starting_credits)
    bot.session.middleware(payments)  # long polling; the webhook handler credits on its own
    notifier = Notifier(bot, store, i18n, settings.bot.admin_ids)
    delivery = Delivery(bot, store, kie=kie, notifier=notifier, i18n=i18n, http=downloads)
    tracker = Tracker(store, kie=kie, delivery=delivery, notifier=notifier, settings=settings)
    generations = Generations(store, kie=kie, pictures=Pictures(bot, kie), notifier=notifier,
                              settings=settings, schedule=tracker.schedule, wake_tracker=tracker.wake)

    # What handlers receive by name, in either mode (polling or webhook).
    dp = Dispatcher(store=store, settings=settings, generations=generations, kie=kie,
                    delivery=delivery)
    dp.update.outer_middleware(ThrottleMiddleware(i18n))  # before any database write
    dp.update.outer_middleware(AccountMiddleware(store, settings, i18n))  # repeats dropped too
    UserLocaleMiddleware(i18n).setup(dp)
    dp.callback_query.middleware(CallbackAnswerMiddleware())
    dp.include_router(build_router())

    return Parts(
        settings=settings, i18n=i18n, dispatcher=dp, bot=bot, store=store, kie=kie,
        tracker=tracker, generations=generations,
        watch=(CreditWatch(store, kie, notifier, settings.kie.low_credit_alert)
               if settings.kie.low_credit_alert > 0 else None),
        callbacks=KieCallbacks(store, tracker, settings) if settings.kie.callback_url else None,
        payments=payments,
        _closers=[store.close, downloads.aclose, kie.aclose, bot.session.close])


class Application:
    """One running bot. `run()` until stopped; `stop()` ends it gracefully."""

    def __init__(self, settings: Settings, *, handle_signals: bool = True) -> None:
        self.settings = settings
        self.handle_signals = handle_signals
        self.i18n = create_i18n(settings.bot.default_language)
        self.started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._parts: Parts | None = None

    async def run(self) -> None:
        settings = self.settings
        parts = self._parts = await build(settings, self.i18n)
        dp = parts.dispatcher
        dp.startup.register(self._on_startup)
        dp.shutdown.register(self._on_shutdown)
        # Services and tracker reach the current I18n through its context variable.
        self.i18n.set_current(self.i18n)
        web = (WebServer(settings, dp, parts.bot, store=parts.store, tracker=parts.tracker,
                         kie=parts.kie, callbacks=parts.callbacks, payments=parts.payments,
                         concurrency=UPDATE_CONCURRENCY)
               if settings.web.port is not None else None)
        try:
            if settings.webhook.url is None:
                if web is not None:
                    await web.start()
                await dp.start_polling(parts.bot, allowed_updates=dp.resolve_used_update_types(),
                                       handle_signals=self.handle_signals,
                                       close_bot_session=False,
                                       tasks_concurrency_limit=UPDATE_CONCURRENCY)
            else:
                assert web is not None  # Settings: WEBHOOK_URL needs WEB_PORT
                await web.start()  # the dispatcher starts with it (aiogram's setup_application)
                # Only once the server listens: Telegram starts posting at once.
                await parts.bot.set_webhook(
                    str(settings.webhook.url),
                    secret_token=settings.webhook.secret.get_secret_value()
                    if settings.webhook.secret else None,
                    allowed_updates=dp.resolve_used_update_types())
                self.started.set()
                await self._until_stopped()
        finally:
            await parts.halt()
            if web is not None:
                await web.stop()
            await parts.close()

    async def stop(self) -> None:
        if self.settings.webhook.url is None and self._parts is not None:
            await self._parts.dispatcher.stop_polling()
        self._stopping.set()

    async def _until_stopped(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()

    async def _on_startup(self, bot: Bot) -> None:
        parts = self._parts
        assert parts is not None
        try:
            await self._set_commands(bot)
        except TelegramAPIError as error:  # the menu is a convenience: the bot works without
            log.warning("the command menu was not set: %s", error)
        settings = self.settings
        if settings.webhook.url is None:
            # A webhook left from an earlier run would make every getUpdates fail (409). Not
            # fatal if refused: polling then says what is wrong, and retries.
            try:
                await bot.delete_webhook(drop_pending_updates=False)
            except TelegramAPIError as error:
                log.warning("deleteWebhook failed: %s", error)
        await parts.tracker.start()
        if parts.watch is not None:
            parts.watch.start()
        if settings.webhook.url is None:  # (in webhook mode: once the webhook is set)
            self.started.set()
        log.info("bot started (%s)", "webhook" if settings.webhook.url else "long polling")

    async def _on_shutdown(self) -> None:
        parts = self._parts
        assert parts is not None
        # A stop asked for (a signal, stop()) lets creates under way finish; a cancelled run
        # (its task killed) stops them at once.
        task = asyncio.current_task()
        await parts.generations.stop(0.0 if task and task.cancelling() else SUBMIT_GRACE)
        await parts.tracker.stop()
        if parts.watch is not None:
            await parts.watch.stop()
        log.info("bot stopped")

    async def _set_commands(self, bot: Bot) -> None:
        """The command menu in every shipped language; the default one for everyone else."""
        for locale in (None, *self.i18n.available_locales):
            with self.i18n.use_locale(locale or self.i18n.default_locale):
                commands = [BotCommand(command=name, description=self.i18n.gettext(text))
                            for name, text in COMMANDS]
            await bot.set_my_commands(commands, language_code=locale)
