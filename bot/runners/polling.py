"""Long polling, by one instance at a time among those sharing a database: Telegram serves one
getUpdates at a time, so the poller holds an advisory lock for as long as its session lives;
the others stand by, and the first to get the lock takes over when the poller goes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError

from bot.services.presence import Presence
from bot.store import Store

log = logging.getLogger(__name__)

# The advisory lock held by the instance that polls, among those sharing a database.
POLLING_LOCK = "kie-bot polling"


class PollingRunner:

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, store: Store, presence: Presence,
                 concurrency: int, started: asyncio.Event) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.store = store
        self.presence = presence
        self.concurrency = concurrency
        self.started = started
        dispatcher.startup.register(self._on_startup)

    async def run(self, stopping: asyncio.Event) -> None:
        dp = self.dispatcher
        while not stopping.is_set():
            lock = asyncio.ensure_future(self.store.advisory_lock(POLLING_LOCK))
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({lock, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not lock.done():  # stopped while standing by
                lock.cancel()
                await asyncio.gather(lock, return_exceptions=True)
                return
            watch = asyncio.ensure_future(self._watch_lock(lock.result()))
            self.presence.polls(True)  # it makes every create now
            try:
                await dp.start_polling(self.bot, allowed_updates=dp.resolve_used_update_types(),
                                       handle_signals=False, close_bot_session=False,
                                       tasks_concurrency_limit=self.concurrency)
            finally:
                self.presence.polls(False)
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # standing by: not polling
            await self.dispatcher.stop_polling()

    async def _watch_lock(self, lost: asyncio.Event) -> None:
        """Polling ends when this instance loses the lock (its session broke): another may
        hold it by now."""
        await lost.wait()
        log.warning("this instance lost the polling lock; standing by")
        await self.dispatcher.stop_polling()

    async def _on_startup(self, bot: Bot) -> None:
        # A webhook left from an earlier run would make every getUpdates fail (409). Not fatal
        # if refused: polling then says what is wrong, and retries.
        try:
            await bot.delete_webhook(drop_pending_updates=False)
        except TelegramAPIError as error:
            log.warning("deleteWebhook failed: %s", error)
        self.started.set()
        log.info("bot started (long polling)")
