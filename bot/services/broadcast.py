"""Broadcasts: the runner that copies an admin's message to each recipient, and what the admin
is told (the preview's words, the progress line, the report).

One loop per instance takes the oldest broadcast not yet reported (store/broadcasts.py: one
instance owns it, the others wait) and copies the message to its recipients one at a time, each
copy starting at least 1/BROADCAST_RATE seconds after the one before, retries included: with
Telegram's limit near 30 messages a second in all, the rest stays for generations. A 429 holds
the whole broadcast for its retry_after. Every recipient is marked `sending` before its copy
goes out, so a crash can cost a copy but never send one twice.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable
from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.i18n import N_, locale_of
from bot.services.delivery import blocked_by_user
from bot.services.telegram import ATTEMPTS, with_retry
from bot.store import Store
from bot.store.broadcasts import Audience, Broadcast, BroadcastState, Languages, RecipientState

log = logging.getLogger(__name__)

PROGRESS_GAP = 5.0   # seconds between two edits of the progress line (not one per copy)
IDLE_LOOK = 5.0      # an idle runner looks this often for a broadcast a gone instance left
FAILURE_PAUSE = 5.0  # after the database failed the loop
SERVER_RETRY_FIRST = 1.0  # the first retry of a copy after a 5xx; doubled at each further one

AUDIENCES = {
    Audience.ALL: N_("everyone"),
    Audience.PAYING: N_("people who bought credits"),
    Audience.ACTIVE: N_("people active in the last 30 days"),
    Audience.EN: N_("people the bot speaks English to"),
    Audience.RU: N_("people the bot speaks Russian to"),
}


def audience_name(audience: str) -> str:
    return _(AUDIENCES[Audience(audience)])


class Pace:
    """Calls at most `rate` a second: each starts at least 1/rate seconds after the one before
    (so no second holds more than rate + 1), and none before a flood-control pause ends."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        """Return when the next call may start (it is counted as started)."""
        delay = self._next - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next = max(self._next, self._clock()) + self.gap

    def hold(self, seconds: float) -> None:
        """Nothing starts in the next `seconds` (Telegram's retry_after)."""
        self._next = max(self._next, self._clock() + seconds)


class Broadcaster:
    def __init__(self, bot: Bot, store: Store, i18n: I18n, *, rate: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.store = store
        self.broadcasts = store.broadcasts
        self.i18n = i18n
        self.pace = Pace(rate)
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def languages(self) -> Languages:
        return Languages(self.i18n.available_locales, self.i18n.default_locale)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="broadcasts")

    def wake(self) -> None:
        """A broadcast was made here: no need to wait for the next look."""
        self._wakeup.set()

    async def settle(self, grace: float) -> None:
        """A graceful stop: no new copy starts; the one on its way gets up to `grace` seconds
        to be answered and recorded (cut off, it would count as unknown)."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=grace)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                broadcast = await self.broadcasts.take(self._clock())
                if broadcast is not None:
                    await self._send(broadcast)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: the broadcast waits in it
                log.exception("the broadcast loop failed")
                await asyncio.sleep(FAILURE_PAUSE)
                continue
            self._wakeup.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), IDLE_LOOK)

    async def _send(self, broadcast: Broadcast) -> None:
        """Copy to each recipient left, then report; returns early when stopping (the next
        start, or another instance, goes on)."""
        progress_at = self._clock()
        while not self._stopping:
            await self.pace.wait()  # before the claim: nobody is `sending` during a pause
            if self._stopping:
                return
            user_id = await self.broadcasts.claim(broadcast.id, self._clock())
            if user_id is None:
                finished = await self.broadcasts.finish(broadcast.id, self._clock())
                if finished is not None:
                    await self._report(finished)
                return
            state = await self._copy(broadcast, user_id)
            if state is RecipientState.PENDING:
                await self.broadcasts.release(broadcast.id, user_id, self._clock())
            else:
                await self.broadcasts.record(broadcast.id, user_id, state, self._clock())
            if self._clock() - progress_at >= PROGRESS_GAP:
                progress_at = self._clock()
                await self._progress(broadcast)

    async def _copy(self, broadcast: Broadcast, user_id: int) -> RecipientState:
        """One copy and its retries, each paced: what became of it (PENDING: flood control,
        not sent; it goes again once the pause is over)."""
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1:
                await self.pace.wait()
            try:
                await self.bot.copy_message(chat_id=user_id, from_chat_id=broadcast.chat_id,
                                            message_id=broadcast.message_id)
                return RecipientState.SENT
            except TelegramRetryAfter as error:  # not sent: the whole broadcast waits
                log.info("broadcast %s: flood control, waiting %ss", broadcast.id,
                         error.retry_after)
                self.pace.hold(error.retry_after)
                return RecipientState.PENDING
            except TelegramServerError as error:  # not sent: a few more tries, further apart
                log.warning("broadcast %s: copy to %s failed (%s)", broadcast.id, user_id, error)
                self.pace.hold(SERVER_RETRY_FIRST * 2 ** (attempt - 1))
            except TelegramNetworkError as error:
                # The request may have reached Telegram: another try could be a second copy.
                log.warning("broadcast %s: copy to %s cut off (%s)", broadcast.id, user_id, error)
                return RecipientState.UNKNOWN
            except TelegramForbiddenError as error:  # blocked the bot, or never opened a chat
                return RecipientState.BLOCKED if blocked_by_user(error) else RecipientState.FAILED
            except TelegramAPIError as error:  # chat not found, ...
                log.info("broadcast %s: copy to %s refused (%s)", broadcast.id, user_id, error)
                return RecipientState.FAILED
        return RecipientState.FAILED

    async def _locale(self, broadcast: Broadcast) -> str:
        return locale_of(await self.store.get_user(broadcast.admin_id), self.i18n)

    async def _progress(self, broadcast: Broadcast) -> None:
        """The preview, now the progress line, edited (a courtesy: a refusal changes nothing)."""
        tally = await self.broadcasts.tally(broadcast.id)
        with self.i18n.use_locale(await self._locale(broadcast)):
            text = progress_text(broadcast, tally.done, tally.total, tally[RecipientState.SENT])
        with suppress(TelegramAPIError):
            await self.bot.edit_message_text(text=text, chat_id=broadcast.chat_id,
                                             message_id=broadcast.status_message_id)

    async def _report(self, broadcast: Broadcast) -> None:
        """The report, to the admin who pressed ✅, in the chat where they did."""
        tally = await self.broadcasts.tally(broadcast.id)
        with self.i18n.use_locale(await self._locale(broadcast)):
            head = (_("📣 Broadcast #{id} stopped.") if broadcast.state == BroadcastState.STOPPED
                    else _("📣 Broadcast #{id} finished.")).format(id=broadcast.id)
            lines = [head, _("To: {audience}, {total} in all.").format(
                audience=audience_name(broadcast.audience), total=tally.total),
                _("Sent: {n}").format(n=tally[RecipientState.SENT]),
                _("Blocked the bot: {n}").format(n=tally[RecipientState.BLOCKED]),
                _("Failed: {n}").format(n=tally[RecipientState.FAILED]
                                        + tally[RecipientState.UNKNOWN])]
            if tally[RecipientState.UNKNOWN]:
                lines.append(_("Of them cut off by a restart, maybe delivered (never sent "
                               "twice): {n}").format(n=tally[RecipientState.UNKNOWN]))
            if tally[RecipientState.PENDING]:
                lines.append(_("Not sent, stopped before: {n}").format(
                    n=tally[RecipientState.PENDING]))
            text = "\n".join(lines)
            status = progress_text(broadcast, tally.done, tally.total, tally[RecipientState.SENT],
                                   running=False)
        with suppress(TelegramAPIError):
            await self.bot.edit_message_text(text=status, chat_id=broadcast.chat_id,
                                             message_id=broadcast.status_message_id)
        try:
            await with_retry(lambda: self.bot.send_message(broadcast.chat_id, text))
        except TelegramAPIError as error:
            log.warning("the report of broadcast %s was not sent: %s", broadcast.id, error)


def progress_text(broadcast: Broadcast, done: int, total: int, sent: int, *,
                  running: bool = True) -> str:
    """The progress line (the preview's message, edited), in the current language."""
    line = "📣 " + _("Broadcast #{id} to {audience}: {done} of {total} done, {sent} sent.").format(
        id=broadcast.id, audience=html.escape(audience_name(broadcast.audience)), done=done,
        total=total, sent=sent)
    return line + "\n" + _("<code>/broadcast stop</code> stops it.") if running else line
