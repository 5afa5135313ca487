"""Wiring: `build` makes every part of the bot once; `Application` runs them, with long polling
or Telegram's webhook, and with the web server (Kie callbacks, the webhook, /healthz) when
WEB_PORT is set."""

from __future__ import annotations

import asyncio
import contextlib
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
# On a graceful stop, creates and deliveries under way get this long (together) to be answered
# and recorded: one cut off is refunded (a create) or sent again (a delivery) at the next start.
# Well within the 30 s that docker-compose.yml allows a stop.
STOP_GRACE = 10.0
# The advisory lock held by the instance that polls, among those sharing a database.
POLLING_LOCK = "kie-bot polling"

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
    delivery: Delivery
    watch: CreditWatch | None
    callbacks: KieCallbacks | None
    payments: CreditOnArrival
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def halt(self) -> None:
        """End the background work at once (after a graceful stop there is none left)."""
        await self.generations.stop(0.0)
        await self.delivery.stop()
        await self.tracker.stop()

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()


async def build(settings: Settings, i18n: I18n) -> Parts:
    store = await Store.open(settings.store.target, pool_size=settings.store.pool_size)
    limiter = RateLimiter(settings.kie.rate_limit, settings.kie.rate_window)
    kie = KieClient(settings.kie.api_key, base_url=str(settings.kie.api_url),
                    upload_url=str(settings.kie.upload_url), limiter=limiter,
                    more_keys=settings.kie.api_keys)
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
        tracker=tracker, generations=generations, delivery=delivery,
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
        # Services and tracker reach the current I18n through its context variable.
        self.i18n.set_current(self.i18n)
        web = (WebServer(settings, dp, parts.bot, store=parts.store, tracker=parts.tracker,
                         kie=parts.kie, callbacks=parts.callbacks, payments=parts.payments,
                         concurrency=UPDATE_CONCURRENCY)
               if settings.web.port is not None else None)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
        try:
            # Every instance tracks and delivers, whether or not it is the one polling.
            if settings.webhook.url is None:
                parts.tracker.polling = False  # until this one gets the turn
            await parts.tracker.start()
            if parts.watch is not None:
                parts.watch.start()
            if web is not None:  # webhook mode: the dispatcher starts with it (setup_application)
                await web.start()
            if settings.webhook.url is None:
                await self._poll(parts)
            else:
                # Only once the server listens: Telegram starts posting at once.
                await parts.bot.set_webhook(
                    str(settings.webhook.url),
                    secret_token=settings.webhook.secret.get_secret_value()
                    if settings.webhook.secret else None,
                    allowed_updates=dp.resolve_used_update_types())
                self.started.set()
                await self._stopping.wait()
        finally:
            # A stop asked for (a signal, stop()) lets creates and deliveries under way finish;
            # a cancelled run (its task killed) stops them at once.
            task = asyncio.current_task()
            grace = 0.0 if task and task.cancelling() else STOP_GRACE
            await asyncio.gather(parts.generations.stop(grace), parts.tracker.settle(grace))
            await parts.halt()
            if parts.watch is not None:
                await parts.watch.stop()
            if web is not None:
                await web.stop()
            await parts.close()
            log.info("bot stopped")

    async def _poll(self, parts: Parts) -> None:
        """Long polling, by one instance at a time among those sharing the database (Telegram
        serves one getUpdates at a time); the others stand by, and the first to get the turn
        takes over when the poller goes."""
        dp = parts.dispatcher
        while not self._stopping.is_set():
            turn = asyncio.ensure_future(parts.store.advisory_lock(POLLING_LOCK))
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not turn.done():  # stopped while standing by
                turn.cancel()
                await asyncio.gather(turn, return_exceptions=True)
                return
            watch = asyncio.ensure_future(self._watch_turn(parts, turn.result()))
            parts.tracker.polls(True)  # it makes every create now
            try:
                await dp.start_polling(parts.bot, allowed_updates=dp.resolve_used_update_types(),
                                       handle_signals=False, close_bot_session=False,
                                       tasks_concurrency_limit=UPDATE_CONCURRENCY)
            finally:
                parts.tracker.polls(False)
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def _watch_turn(self, parts: Parts, lost: asyncio.Event) -> None:
        """Polling ends when this instance loses its turn (its database connection broke):
        another may have it by now."""
        await lost.wait()
        log.warning("this instance lost its turn to poll Telegram; standing by")
        await parts.dispatcher.stop_polling()

    async def stop(self) -> None:
        self._stopping.set()
        if self.settings.webhook.url is None and self._parts is not None:
            with contextlib.suppress(RuntimeError):  # standing by: not polling
                await self._parts.dispatcher.stop_polling()

    async def _on_startup(self, bot: Bot) -> None:
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
            self.started.set()  # (in webhook mode: once the webhook is set)
        log.info("bot started (%s)", "webhook" if settings.webhook.url else "long polling")

    async def _set_commands(self, bot: Bot) -> None:
        """The command menu in every shipped language; the default one for everyone else."""
        for locale in (None, *self.i18n.available_locales):
            with self.i18n.use_locale(locale or self.i18n.default_locale):
                commands = [BotCommand(command=name, description=self.i18n.gettext(text))
                            for name, text in COMMANDS]
            await bot.set_my_commands(commands, language_code=locale)
