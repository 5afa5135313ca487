"""Wiring: `build` makes every part of the bot once; `Application` runs them, with long polling
or Telegram's webhook, and with the web server (Kie callbacks, the webhook, /healthz) when
WEB_PORT is set."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import BotCommand, BotCommandScopeChat
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.dashboard import routes as dashboard
from bot.handlers import build_router
from bot.i18n import UserLocaleMiddleware, create_i18n, locale_of
from bot.kie import KieClient, RateLimiter
from bot.menu import ADMIN_MENU, COMMANDS
from bot.middlewares import AccountMiddleware, ThrottleMiddleware
from bot.runners.checks import run_checks
from bot.runners.polling import PollingRunner
from bot.runners.webhook import WebhookRunner
from bot.services.broadcast import Broadcaster
from bot.services.callback_url import CallbackUrls
from bot.services.callbacks import KieCallbacks
from bot.services.credit_watch import CreditWatch
from bot.services.delivery import Delivery
from bot.services.generation import Generations
from bot.services.improve import Improver
from bot.services.notifier import Notifier
from bot.services.payments import CreditOnArrival
from bot.services.pictures import Pictures
from bot.services.presence import Presence
from bot.services.schedule import Schedule
from bot.services.tracker import Tracker
from bot.session import BotSession
from bot.store import StartLimits, Store
from bot.telegram_objects import flatten_post_init
from bot.web import WebServer

log = logging.getLogger(__name__)

# Updates handled at once; the next getUpdates (or webhook POST) waits for a free slot. A burst
# of thousands held in memory at once costs ~100 MB that the allocator never gives back
# (bench/memory.py: opened through the chat); 128 cost 3 MiB more there than 64, and with more
# in flight the store's statements share their trips to its thread (store/sqlite.py): picker
# presses 45 % of the bare bot's rate at 64, 56 % at 128 (bench.updates, 2026-12-07).
UPDATE_CONCURRENCY = 128
# The collector's thresholds while serving (gc.set_threshold): the young generation ~29 times
# the default, the older ones twice theirs.
GC_THRESHOLDS = (20_000, 20, 20)
# On a graceful stop, creates and deliveries under way get this long (together) to be answered
# and recorded: one cut off is refunded (a create) or sent again (a delivery) at the next start.
# Well within the 30 s that docker-compose.yml allows a stop.
STOP_GRACE = 10.0

# Who had the admins' menu at the last start (comma-separated ids): whoever is no longer in
# ADMIN_IDS gets it deleted at this one.
ADMIN_MENU_FLAG = "admin_menu"


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
    presence: Presence
    generations: Generations
    delivery: Delivery
    watch: CreditWatch
    callbacks: KieCallbacks | None
    payments: CreditOnArrival
    broadcaster: Broadcaster

    async def settle(self, grace: float) -> None:
        """A graceful stop's first step: the creates and deliveries under way get up to `grace`
        seconds to end (a delivery cut off would be sent again at the next start)."""
        await asyncio.gather(self.generations.stop(grace), self.tracker.settle(grace),
                             self.broadcaster.settle(grace))

    async def halt(self) -> None:
        """End the background work at once (after `settle` there is little left)."""
        await self.generations.stop(0.0)
        await self.delivery.stop()
        await self.tracker.stop()
        await self.broadcaster.stop()
        await self.presence.stop()  # last: what this instance owns passes on at once


@asynccontextmanager
async def build(settings: Settings, i18n: I18n) -> AsyncIterator[Parts]:
    """Every part of the bot, made once; on the way out, the background work halted and
    everything opened here closed, in the reverse order."""
    flatten_post_init()  # before the first update is parsed (bot/telegram_objects.py)
    async with AsyncExitStack() as opened:
        store = await Store.open(settings.store.target, pool_size=settings.store.pool_size)
        opened.push_async_callback(store.close)
        limiter = RateLimiter(settings.kie.rate_limit, settings.kie.rate_window)
        kie = KieClient(settings.kie.api_key, base_url=str(settings.kie.api_url),
                        upload_url=str(settings.kie.upload_url), limiter=limiter,
                        more_keys=settings.kie.api_keys, scope=settings.kie.rate_scope)
        opened.push_async_callback(kie.aclose)
        # Redirects are followed by Delivery itself: a few, to http(s) only.
        downloads = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        opened.push_async_callback(downloads.aclose)
        # Every secret is cut from every text the bot sends, whoever wrote it (Kie's errors).
        bot = Bot(settings.bot.token.get_secret_value(),
                  session=BotSession(api=TelegramAPIServer.from_base(
                      str(settings.bot.api_url).rstrip("/")), secrets=settings.secrets()),
                  default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                               link_preview_is_disabled=True))
        opened.push_async_callback(bot.session.close)
        payments = CreditOnArrival(store, settings.bot.starting_credits,
                                   settings.growth.referral_percent)
        bot.session.middleware(payments)  # long polling; the webhook handler credits on its own
        schedule = Schedule(settings.kie)  # learned durations: the tracker's and the status line's
        notifier = Notifier(bot, store, i18n, settings.bot.admin_ids, schedule=schedule)
        delivery = Delivery(bot, store, kie=kie, notifier=notifier, i18n=i18n, http=downloads)
        tracker = Tracker(store, kie=kie, delivery=delivery, notifier=notifier,
                          kie_settings=settings.kie, schedule=schedule,
                          delivery_deadline=settings.bot.delivery_deadline)
        presence = Presence(store, kie, after_beat=tracker.after_beat,
                            polling=None if settings.webhook.url else False)
        callback_urls = CallbackUrls.of(settings.kie.callback_url, settings.bot.token)
        generations = Generations(
            store, kie=kie, pictures=Pictures(bot, kie), notifier=notifier,
            kie_settings=settings.kie, callback_urls=callback_urls, schedule=tracker.schedule,
            limits=StartLimits(settings.bot.max_open_generations,
                               settings.bot.max_starts_per_minute),
            wake_tracker=tracker.wake, improve_price=settings.catalog.improve_price)
        improver = Improver(store, kie=kie, generations=generations,
                            price=settings.catalog.improve_price)

        broadcaster = Broadcaster(bot, store, i18n, rate=settings.growth.broadcast_rate)

        # What handlers receive by name, in either mode (polling or webhook).
        # No handler keeps a conversation state: without aiogram's FSM, no middleware looks one
        # up (and grows a record per chat) on every update.
        dp = Dispatcher(disable_fsm=True,
                        store=store, bot_settings=settings.bot, payment_settings=settings.payments,
                        growth_settings=settings.growth, web_settings=settings.web,
                        generations=generations, improver=improver, kie=kie,
                        delivery=delivery, broadcaster=broadcaster)
        dp.update.outer_middleware(ThrottleMiddleware(i18n))  # before any database write
        dp.update.outer_middleware(AccountMiddleware(store, settings.bot, i18n))  # repeats dropped too
        UserLocaleMiddleware(i18n).setup(dp)
        dp.callback_query.middleware(CallbackAnswerMiddleware())
        dp.include_router(build_router())

        parts = Parts(
            settings=settings, i18n=i18n, dispatcher=dp, bot=bot, store=store, kie=kie,
            tracker=tracker, presence=presence, generations=generations, delivery=delivery,
            watch=CreditWatch(store, kie, notifier, settings.kie.low_credit_alert),
            callbacks=(KieCallbacks(store, tracker, callback_urls, settings.kie.webhook_hmac_key)
                       if callback_urls else None),
            payments=payments, broadcaster=broadcaster)
        opened.push_async_callback(parts.halt)
        yield parts


class Application:
    """One running bot. `run()` until stopped; `stop()` ends it gracefully."""

    def __init__(self, settings: Settings, *, handle_signals: bool = True) -> None:
        self.settings = settings
        self.handle_signals = handle_signals
        self.i18n = create_i18n(settings.bot.default_language)
        self.started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: PollingRunner | WebhookRunner | None = None
        self.parts: Parts | None = None  # while it runs (tests look inside)

    async def run(self) -> None:
        settings = self.settings
        # Services and tracker reach the current I18n through its context variable.
        self.i18n.set_current(self.i18n)
        async with build(settings, self.i18n) as parts, AsyncExitStack() as running:
            self.parts = parts
            if self.handle_signals:  # from here on: the checks may wait long for Telegram
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
            if not await self._checked(parts):
                log.info("bot stopped before the start-up checks passed")
                return
            parts.dispatcher.startup.register(self._set_commands)
            if self.handle_signals:  # the process is this bot's alone
                # What start-up made (modules, the catalog, the dispatcher) lives as long as the
                # process: out of the collector's sight, a collection no longer walks it (in
                # bench.updates those walks cost ~0.4 ms of CPU an update, a fifth of it).
                gc.freeze()
                # An update allocates some thousand objects that live until it is answered, and
                # refcounting frees nearly all of them: a young collection every 700 allocations
                # (the default) walks them again and again for nothing (~0.1 ms an update).
                gc.set_threshold(*GC_THRESHOLDS)
            runner = self._runner = (
                WebhookRunner(parts.dispatcher, parts.bot, settings=settings.webhook,
                              started=self.started) if settings.webhook.url is not None else
                PollingRunner(parts.dispatcher, parts.bot, store=parts.store,
                              presence=parts.presence, concurrency=UPDATE_CONCURRENCY,
                              started=self.started))
            # Every instance tracks and delivers, whether or not it is the one polling.
            await parts.presence.start()
            await parts.tracker.start()
            parts.broadcaster.start()  # after the heartbeat: it owns what it sends by it
            parts.watch.start()
            running.push_async_callback(parts.watch.stop)
            if settings.web.port is not None:  # (webhook: the dispatcher starts with it)
                web = WebServer(settings.web, settings.webhook, parts.dispatcher, parts.bot,
                                store=parts.store,
                                tracker=parts.tracker, kie=parts.kie, callbacks=parts.callbacks,
                                payments=parts.payments, concurrency=UPDATE_CONCURRENCY,
                                dashboard=dashboard.build(
                                    store=parts.store, bot=parts.bot, i18n=parts.i18n,
                                    bot_settings=settings.bot, web_settings=settings.web,
                                    broadcaster=parts.broadcaster))
                await web.start()
                running.push_async_callback(web.stop)
            try:
                await runner.run(self._stopping)
            finally:
                # A stop asked for (a signal, stop()) lets creates and deliveries under way
                # finish; a cancelled run (its task killed) stops them at once.
                task = asyncio.current_task()
                await parts.settle(0.0 if task and task.cancelling() else STOP_GRACE)
        log.info("bot stopped")

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.stop()

    async def _checked(self, parts: Parts) -> bool:
        """The start-up checks (runners/checks.py): True once passed, False when the bot was
        stopped meanwhile; a refused setting raises SettingRefused."""
        checks = asyncio.ensure_future(run_checks(parts.bot, parts.kie, self.settings.kie))
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({checks, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            passed = checks.done()
            checks.cancel()
            stopped.cancel()
            await asyncio.gather(checks, stopped, return_exceptions=True)
        if passed:
            checks.result()
        return passed

    async def _set_commands(self, bot: Bot, store: Store) -> None:
        """The command menu in every shipped language, the default one for everyone else; then
        the admins'. A convenience: the bot works without it, so a call Telegram refuses is
        logged and the others go on."""
        for locale in (None, *self.i18n.available_locales):
            await _menu_call(bot.set_my_commands(
                self._menu(COMMANDS, locale or self.i18n.default_locale), language_code=locale),
                f"the command menu ({locale or 'default'})")
        await self._set_admin_menus(bot, store)

    async def _set_admin_menus(self, bot: Bot, store: Store) -> None:
        """Each admin's private chat: everyone's commands and the admins', in that admin's
        language (as the bot knows it now: a later /language shows at the next start). Whoever
        left ADMIN_IDS since the last start loses that menu."""
        admins = self.settings.bot.admin_ids
        for admin in admins:
            locale = locale_of(await store.get_user(admin), self.i18n)
            await _menu_call(bot.set_my_commands(
                self._menu(ADMIN_MENU, locale),
                scope=BotCommandScopeChat(chat_id=admin)), f"the admins' menu of {admin}")
        former = {int(admin) for admin in (await store.get_flag(ADMIN_MENU_FLAG) or "").split(",")
                  if admin} - admins
        kept = set()  # a delete that may work on another try: again at the next start
        for admin in former:
            try:
                await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=admin))
            except TelegramBadRequest as error:  # no such chat: no menu in it either
                log.info("the admins' menu of %s was not deleted: %s", admin, error)
            except TelegramAPIError as error:
                log.warning("the admins' menu of %s was not deleted: %s", admin, error)
                kept.add(admin)
        await store.set_flag(ADMIN_MENU_FLAG, ",".join(map(str, sorted(admins | kept))) or None)

    def _menu(self, commands: Iterable[tuple[str, str]], locale: str) -> list[BotCommand]:
        with self.i18n.use_locale(locale):
            return [BotCommand(command=name, description=self.i18n.gettext(text))
                    for name, text in commands]


async def _menu_call(call: Awaitable[bool], what: str) -> None:
    try:
        await call
    except TelegramAPIError as error:
        log.warning("%s was not set: %s", what, error)
