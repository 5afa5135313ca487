"""The bot's own web server (WEB_HOST/WEB_PORT): GET /healthz, Kie.ai's callbacks, the
dashboard (bot/dashboard/), and in webhook mode Telegram's webhook."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web

from bot.config import WebhookSettings, WebSettings
from bot.dashboard.routes import mount
from bot.kie import KieClient
from bot.services.callbacks import KieCallbacks
from bot.services.payments import CreditOnArrival
from bot.services.tracker import Tracker
from bot.store import Store

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramWebhook:
    """Telegram's POSTs (aiogram's public API only: `feed_raw_update`): the secret header
    checked, a payment credited before the answer (once Telegram has its 200 it never sends the
    update again; if the store cannot take it, Telegram gets a 500 and retries later), then
    the update handled in the background, at most `concurrency` at once: past that, the POST
    waits, and Telegram's own connection limit holds the rest back (as the concurrency limit
    does for long polling)."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret: str | None,
                 payments: CreditOnArrival, concurrency: int) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.secret = secret
        self.payments = payments
        self._slots = asyncio.Semaphore(concurrency)
        self._feeding: set[asyncio.Task[None]] = set()

    def register(self, app: web.Application, path: str) -> None:
        app.router.add_post(path, self.handle)
        app.on_shutdown.append(self._close)

    def _secret_ok(self, given: str) -> bool:
        # A secret_token is A-Z a-z 0-9 _ - only: a non-ASCII header is nobody's (and would
        # make compare_digest raise).
        return self.secret is None or (given.isascii() and hmac.compare_digest(given, self.secret))

    async def handle(self, request: web.Request) -> web.Response:
        if not self._secret_ok(request.headers.get(SECRET_HEADER, "")):
            return web.Response(body="Unauthorized", status=401)
        raw = await request.json(loads=self.bot.session.json_loads)
        message = raw.get("message") if isinstance(raw, dict) else None
        if isinstance(message, dict) and "successful_payment" in message:
            try:
                await self.payments.credit(Update.model_validate(raw, context={"bot": self.bot}))
            except Exception:
                log.exception("update %s: payment not credited; Telegram will send it again",
                              raw.get("update_id"))
                return web.Response(status=500)
        await self._slots.acquire()
        task = asyncio.create_task(self._feed(raw))
        self._feeding.add(task)
        task.add_done_callback(self._feeding.discard)
        task.add_done_callback(lambda _: self._slots.release())
        return web.json_response({}, dumps=self.bot.session.json_dumps)

    async def _feed(self, raw: dict[str, Any]) -> None:
        result = await self.dispatcher.feed_raw_update(self.bot, raw)
        if isinstance(result, TelegramMethod):  # a handler's answer as a method: made here
            await self.dispatcher.silent_call_request(self.bot, result)

    async def _close(self, _: web.Application) -> None:
        """The updates still being handled end with the server."""
        tasks = list(self._feeding)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class WebServer:
    def __init__(self, web_settings: WebSettings, webhook: WebhookSettings,
                 dispatcher: Dispatcher, bot: Bot, *, store: Store,
                 tracker: Tracker, kie: KieClient, callbacks: KieCallbacks | None,
                 payments: CreditOnArrival, concurrency: int,
                 dashboard: web.Application | None = None) -> None:
        self.web_settings = web_settings
        self.store = store
        self.tracker = tracker
        self.kie = kie
        self.callbacks = callbacks
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        if callbacks is not None:
            self.app.router.add_post(callbacks.urls.route, self.kie_callback)
        if webhook.url is not None:
            # The dispatcher's startup and shutdown tied to the server's, then the route.
            setup_application(self.app, dispatcher, bot=bot)
            secret = webhook.secret.get_secret_value() if webhook.secret else None
            TelegramWebhook(dispatcher, bot, secret=secret, payments=payments,
                            concurrency=concurrency).register(
                self.app, urlsplit(str(webhook.url)).path or "/")
        if dashboard is not None:
            mount(self.app, dashboard)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        host, port = self.web_settings.host, self.web_settings.port
        await web.TCPSite(self._runner, host, port).start()
        log.info("web server listening on %s:%s", host or "*", port)

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
