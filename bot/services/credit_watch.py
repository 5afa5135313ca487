"""Watching the Kie.ai account's credits: admins hear once each time they fall below
KIE_LOW_CREDIT_ALERT, not at every check while they stay low."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bot.i18n import N_
from bot.kie import KieClient
from bot.kie.errors import KieError
from bot.services.notifier import Notifier
from bot.store import Store

log = logging.getLogger(__name__)

# The check goes through the shared rate budget like any read: a few minutes apart is plenty.
CHECK_INTERVAL = 300.0
# Set while the credits are below the threshold (kept in the database: a restart while low
# does not alert again).
LOW_FLAG = "kie_low_credit"


class CreditWatch:
    def __init__(self, store: Store, kie: KieClient, notifier: Notifier, threshold: float,
                 interval: float = CHECK_INTERVAL) -> None:
        self.store = store
        self.kie = kie
        self.notifier = notifier
        self.threshold = threshold
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> None:
        try:
            remaining = await self.kie.get_credits()
        except KieError as error:
            log.warning("Kie.ai credits not read: %s", error)
            return
        was_low = await self.store.get_flag(LOW_FLAG) is not None
        if remaining < self.threshold and not was_low:
            await self.store.set_flag(LOW_FLAG, str(remaining))
            # A cause of its own per crossing: the notifier's hourly dedup must not swallow it.
            await self.notifier.alert_admins(
                f"low-credit:{time.time()}",
                N_("The Kie.ai account has {credits} credits left, below {threshold}. Top it "
                   "up before generations start failing."),
                credits=f"{remaining:g}", threshold=f"{self.threshold:g}")
        elif remaining >= self.threshold and was_low:
            await self.store.set_flag(LOW_FLAG, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="credit-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup must not end the watch
                log.exception("Kie.ai credit check failed")
            await asyncio.sleep(self.interval)
