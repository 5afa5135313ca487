"""Watching the Kie.ai account's credits: every key's balance recorded at each check (the Kie
spend per day of /stats, store/daily.py), and admins told once each time KIE_API_KEY's falls
below KIE_LOW_CREDIT_ALERT, not at every check while it stays low."""

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
from bot.store.daily import record_kie_reading

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
        readings = {key: await self._read(key) for key in self.kie.key_ids()}
        remaining = readings[self.kie.key_ids()[0]]  # KIE_API_KEY's
        if remaining is None or self.threshold <= 0:
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

    async def _read(self, key: str) -> float | None:
        """The key's credits, recorded; None if Kie did not say."""
        try:
            credits = await self.kie.get_credits(key)
        except KieError as error:
            log.warning("Kie.ai credits of key %s not read: %s", key, error)
            return None
        await record_kie_reading(self.store, key, credits, now=time.time())
        return credits

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="credit-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self.threshold <= 0:  # no alert to give: the start-up check has just read the keys
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup must not end the watch
                log.exception("Kie.ai credit check failed")
            await asyncio.sleep(self.interval)
