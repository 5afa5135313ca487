"""This instance among those sharing the database: its heartbeat (every HEARTBEAT seconds;
store.INSTANCE_TIMEOUT without one and it is gone), how many are alive, whether it polls, and
so its part of Kie's budget. The tracker tracks; this says who is there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.kie import KieClient
from bot.services.background import Errands
from bot.store import Store

log = logging.getLogger(__name__)

HEARTBEAT = 10.0


class Presence:
    def __init__(self, store: Store, kie: KieClient, *, after_beat: Callable[[], Awaitable[None]],
                 polling: bool | None, clock: Callable[[], float] = time.time) -> None:
        """`after_beat`: what to do after each heartbeat (the tracker takes over what gone
        instances left). `polling`: None with a webhook (every instance takes updates), else
        whether this instance polls (it then makes every create)."""
        self.store = store
        self.kie = kie
        self.after_beat = after_beat
        self.polling = polling
        self._clock = clock
        self._errands = Errands()
        self._beating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Alive from now on; the others are told, and this one hears of their comings and
        goings (LISTEN), recounting its part at once."""
        self.store.listen_for_instances(self._recount_soon)
        await self._beat()
        self._beating = asyncio.create_task(self._keep_beating(), name="heartbeat")

    async def stop(self) -> None:
        """Gone: what this instance owns passes to the others at once."""
        if self._beating is None:
            return
        self._beating.cancel()
        await asyncio.gather(self._beating, return_exceptions=True)
        await self._errands.stop()
        try:
            await self.store.retire()
        except Exception as error:  # the database gone: the others wait for the timeout
            log.warning("retiring this instance failed: %s", error)

    def polls(self, polling: bool) -> None:
        """This instance now polls Telegram, or no longer does: its part of the budget changes."""
        self.polling = polling
        self._recount_soon()

    async def _beat(self) -> None:
        await self.store.heartbeat(self._clock())
        await self._recount()

    async def _keep_beating(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
                await self.after_beat()
            except Exception:  # the database away for a moment: try again next beat
                log.exception("heartbeat failed")

    async def _recount(self) -> None:
        """All instances together stay within KIE_RATE_LIMIT: each spends its part, recounted
        when one notifies that it starts or stops, and every HEARTBEAT (one killed says
        nothing)."""
        self.kie.share_budget(await self.store.live_instances(self._clock()),
                              polling=self.polling)

    def _recount_soon(self) -> None:
        self._errands.start(self._recount(), "recount")
