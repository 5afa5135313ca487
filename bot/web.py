"""The bot's own web server (WEB_HOST/WEB_PORT): GET /healthz, Kie.ai's callbacks, and in
webhook mode Telegram's webhook, mounted with aiogram's own handler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.config import Settings
from bot.kie import KieClient
from bot.services.callback_url import route as callback_route
from bot.services.callbacks import KieCallbacks
from bot.services.payments import CreditOnArrival
from bot.services.tracker import Tracker
from bot.store import Store

log = logging.getLogger(__name__)


class WebhookHandler(SimpleRequestHandler):
    """aiogram's webhook handler (answers at once, handles in the background), except that a
    payment is credited before the answer: once Telegram has its 200 it never sends the update
    again. If the store cannot take it, Telegram gets a 500 and retries later."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str | None,
                 payments: CreditOnArrival, concurrency: int) -> None:
        super().__init__(dispatcher, bot, secret_token=secret_token)
        self.payments = payments
        # Updates handled at once: past that, the POST waits, and Telegram's own connection
        # limit holds the rest back (as the concurrency limit does for long polling).
        self._slots = asyncio.Semaphore(concurrency)

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # aiogram's compare_digest raises TypeError (a 500) on a non-ASCII header; Telegram
        # never sends one (a secret_token is A-Z a-z 0-9 _ - only): refused, a 401.
        return telegram_secret_token.isascii() and super().verify_secret(telegram_secret_token,
                                                                          bot)

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        raw = await request.json(loads=bot.session.json_loads)
        message = raw.get("message") if isinstance(raw, dict) else None
        if isinstance(message, dict) and "successful_payment" in message:
            try:
                await self.payments.credit(Update.model_validate(raw, context={"bot": bot}))
            except Exception:
                log.exception("update %s: payment not credited; Telegram will send it again",
                              raw.get("update_id"))
                return web.Response(status=500)
        # The body is read already: hand aiogram the parsed update.
        await self._slots.acquire()
        task = asyncio.create_task(self._background_feed_update(bot=bot, update=raw))
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)
        task.add_done_callback(lambda _: self._slots.release())
        return web.json_response({}, dumps=bot.session.json_dumps)


class WebServer:
    def __init__(self, settings: Settings, dispatcher: Dispatcher, bot: Bot, *, store: Store,
                 tracker: Tracker, kie: KieClient, callbacks: KieCallbacks | None,
                 payments: CreditOnArrival, concurrency: int) -> None:
        self.settings = settings
        self.store = store
        self.tracker = tracker
        self.kie = kie
        self.callbacks = callbacks
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        if callbacks is not None:
            self.app.router.add_post(callback_route(settings), self.kie_callback)
        if settings.webhook.url is not None:
            # First the dispatcher's startup and shutdown (tracker included), tied to the
            # server's; then the webhook route, which closes the bot's session at shutdown.
            setup_application(self.app, dispatcher, bot=bot)
            secret = settings.webhook.secret.get_secret_value() if settings.webhook.secret else None
            WebhookHandler(dispatcher, bot, secret_token=secret, payments=payments,
                           concurrency=concurrency).register(
                self.app, path=urlsplit(str(settings.webhook.url)).path or "/")
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        log.info("web server listening on %s:%s", self.settings.web.host or "*",
                 self.settings.web.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        """Alive or not, without touching Kie (no wait for its rate budget)."""
        body: dict[str, Any] = {
            "database": True,
            "tracker": {"alive": self.tracker.alive, "last_run": self.tracker.last_run_at},
            "open_generations": None,
            "kie": {"last_success": self.kie.last_success_at},
        }
        try:
            body["open_generations"] = await self.store.count_open()
        except Exception as error:  # whatever the database says, the answer is "not healthy"
            log.error("/healthz: the database does not answer: %s", error)
            body["database"] = False
        body["ok"] = body["database"] and self.tracker.alive
        return web.json_response(body, status=200 if body["ok"] else 503)

    async def kie_callback(self, request: web.Request) -> web.Response:
        assert self.callbacks is not None
        generation_id = self.callbacks.addressed(request.match_info["secret"],
                                                 request.match_info["generation"])
        if generation_id is None:  # answered before the body is read: a stranger costs nothing
            return web.Response(status=404)
        try:
            body = await request.read()
        except (ConnectionError, web.RequestPayloadError) as error:
            # A client gone (or a broken body) mid-read: one line, not aiohttp's traceback.
            # The answer goes nowhere if the connection is gone; aiohttp drops it silently.
            log.info("callback for generation %s: body not received (%s)", generation_id,
                     error.__class__.__name__)
            return web.Response(status=400)
        return web.Response(status=await self.callbacks.receive(generation_id, body,
                                                                request.headers))
