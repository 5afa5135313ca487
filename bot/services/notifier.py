"""Telling people what happens: the moving status line, failures, and alerts for admins."""

from __future__ import annotations

import asyncio
import html
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from bot import texts
from bot.catalog import get_model
from bot.i18n import N_, locale_of
from bot.keyboards import cancel_keyboard, failure_keyboard
from bot.services.schedule import Schedule
from bot.services.telegram import ATTEMPTS, edit_or_send, with_retry
from bot.store import Generation, GenerationState, Store

log = logging.getLogger(__name__)

STATUS_EDIT_GAP = 5.0        # seconds between two edits of one status message (Telegram limits)
CHAT_EDIT_GAP = 1.0          # Telegram's pace in one chat: about a message a second
# The waiting lines' redraws, all together, per second at most (Notifier.tick): Telegram takes
# about 30 messages a second from a bot in all, and results and answers come first. A thousand
# people in line would otherwise ask for 200 edits a second.
LINE_TICKS_PER_SECOND = 5.0
ADMIN_ALERT_GAP = 3600.0     # one alert per cause per hour, not one per user


def model_name(generation: Generation) -> str:
    model = get_model(generation.model)
    return texts.model_title(model) if model else generation.model


class Notifier:
    def __init__(self, bot: Bot, store: Store, i18n: I18n, admin_ids: Iterable[int], *,
                 schedule: Schedule, clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.store = store
        self.schedule = schedule  # each model's usual duration, for the status line
        self.i18n = i18n
        self.admin_ids = tuple(admin_ids)
        self._clock = clock
        self._status_sent: dict[int, tuple[float, str]] = {}
        self._ticked: set[int] = set()  # generations whose line a tick redrew with ✖ Cancel
        self._status_locale: dict[int, str] = {}  # by generation, while its status line moves
        self._alerted: dict[str, float] = {}
        # Groups that removed the bot, seen by a refused edit: no more status ticks there.
        self._gone: set[int] = set()
        # Chats whose status edits met flood control: no tick there until then (by chat).
        self._held: dict[int, float] = {}
        self._ticks: dict[int, asyncio.Task[None]] = {}  # by generation: see tick
        self._tick_tokens, self._tick_at = 0.0, time.monotonic()  # LINE_TICKS_PER_SECOND's

    async def locale(self, user_id: int) -> str:
        return locale_of(await self.store.get_user(user_id), self.i18n)

    async def status(self, generation: Generation, *, force: bool = False,
                     sent: bool = False) -> bool:
        """Edit the status line, at most every STATUS_EDIT_GAP seconds and only when it changes.
        `sent`: its create has just gone out after a wait long enough for its line to tick; that
        line, with its ✖ Cancel, is replaced as soon as Telegram's pace in the chat allows
        (CHAT_EDIT_GAP), not a gap after the last tick. (A create that went at once leaves the ✖
        drawn at ✅ to the tracker's first redraw, as an edit more for each generation would
        cost Telegram's rate; a press meanwhile is told it went out.)
        False when the line no longer moves: `generation` says its create waits in the bot's
        line but it has left it (sent, cancelled, refunded: Store.line_position), or its chat
        refuses the bot."""
        if generation.chat_id in self._gone:
            return False
        now = self._clock()
        last_time, last_text = self._status_sent.get(generation.id, (0.0, ""))
        held = self._held.get(generation.chat_id)
        if held is not None and now >= held:
            del self._held[generation.chat_id]  # flood control over: forgotten
        elif held is not None and not force:
            return True
        if not force and now - last_time < STATUS_EDIT_GAP:  # before any database read
            if not (sent and generation.id in self._ticked):
                return True
            await asyncio.sleep(last_time + min(CHAT_EDIT_GAP, STATUS_EDIT_GAP) - now)
            now = self._clock()
        locale = self._status_locale.get(generation.id)
        if locale is None:  # read once per generation, kept with its status line
            locale = self._status_locale[generation.id] = await self.locale(generation.user_id)
        # Until its create goes out it waits in the bot's own line and can be cancelled.
        waiting = generation.state is GenerationState.PENDING and generation.kie_state is None
        position = await self.store.line_position(generation) if waiting else None
        if waiting and position is None:  # not to be drawn as waiting over what replaced it
            return False
        model = get_model(generation.model)
        with self.i18n.use_locale(locale):
            text = texts.status_line(
                model_name(generation), generation.kie_state, now - generation.created_at,
                usual=self.schedule.usual(model) if model else None, position=position)
            markup = cancel_keyboard(generation.id) if waiting else None
        if text == last_text:
            return True
        self._status_sent[generation.id] = (now, text)
        if not waiting:
            self._ticked.discard(generation.id)
        elif not force:  # a tick's (the ✅'s is forced)
            self._ticked.add(generation.id)
        return await self._show(generation, text, retry=False, markup=markup)

    def tick(self, generation: Generation) -> None:
        """While `generation`'s create waits for Kie's budget (Generations.submit), its status
        line is redrawn every STATUS_EDIT_GAP so that "in line: N" counts down as those ahead
        go out (else it is drawn at ✅ and not again until sent). The first tick comes a gap
        after ✅: a create that goes at once, the common case, costs nothing; then one count
        per gap at most (status). Ends at untick (the fence: the create goes out; or its submit
        ends, a stop's cancel included), at the line's final text (finished: ✖ Cancel, a
        refund), or when status finds it gone from the line (settled by another instance)."""
        self._ticks[generation.id] = asyncio.create_task(self._tick(generation),
                                                         name=f"line-{generation.id}")

    async def untick(self, generation_id: int) -> None:
        """Stop its ticks, and let an edit under way end first: none lands after what the
        caller draws next."""
        task = self._ticks.pop(generation_id, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def _tick(self, generation: Generation) -> None:
        try:
            while True:
                # Jittered, so that a line longer than the ticks' budget is not always redrawn
                # in the same order (its back never).
                await asyncio.sleep(STATUS_EDIT_GAP * random.uniform(1.0, 1.5))
                if self._tick_allowed() and not await self.status(generation):
                    return
        except Exception:  # cosmetic: no failure of a tick may reach the create it runs beside
            log.warning("status line of generation %s stopped moving", generation.id,
                        exc_info=True)
        finally:
            if self._ticks.get(generation.id) is asyncio.current_task():
                del self._ticks[generation.id]

    def _tick_allowed(self) -> bool:
        """A token of the lines' shared budget (LINE_TICKS_PER_SECOND), if one is left."""
        now, rate = time.monotonic(), LINE_TICKS_PER_SECOND
        self._tick_tokens = min(max(rate, 1.0), self._tick_tokens + (now - self._tick_at) * rate)
        self._tick_at = now
        if self._tick_tokens < 1.0:
            return False
        self._tick_tokens -= 1.0
        return True

    async def finished(self, generation: Generation, text: str,
                       markup: InlineKeyboardMarkup | None = None) -> None:
        """Replace the status line with a final text (done, or refunded)."""
        await self.untick(generation.id)
        self._status_sent.pop(generation.id, None)
        self._status_locale.pop(generation.id, None)
        self._ticked.discard(generation.id)
        await self._show(generation, text, retry=True, markup=markup)

    async def failed(self, generation: Generation) -> None:
        """Refunded: why, with 🔁 Try again and another model (a failure is no dead end)."""
        with self.i18n.use_locale(await self.locale(generation.user_id)):
            text = texts.refunded(model_name(generation), generation.failure or "kie_failed",
                                  generation.failure_detail, generation.price)
            markup = failure_keyboard(generation.id, generation.price,
                                      change_model=generation.source_id is None)
        await self.finished(generation, text, markup)

    async def _show(self, generation: Generation, text: str, *, retry: bool,
                    markup: InlineKeyboardMarkup | None = None) -> bool:
        """False when the chat refuses the bot (blocked, or removed from the group)."""
        try:
            # A status tick is cosmetic: it never waits out flood control.
            message_id = await edit_or_send(
                self.bot, generation.chat_id, generation.status_message_id, text,
                reply_to=generation.request_message_id, markup=markup,
                attempts=ATTEMPTS if retry else 1)
        except TelegramMigrateToChat as error:  # the group became a supergroup: follow it
            await self.store.migrate_chat(generation.chat_id, error.migrate_to_chat_id)
            return await self._show(replace(generation, chat_id=error.migrate_to_chat_id), text,
                                    retry=retry, markup=markup)
        except TelegramForbiddenError:
            if generation.chat_id == generation.user_id:
                await self.store.set_blocked(generation.user_id)
            else:  # a group removed the bot: the person may still be reachable privately
                self._gone.add(generation.chat_id)
                await self.store.set_chat_unreachable(generation.chat_id)
            return False
        except TelegramAPIError as error:
            if isinstance(error, TelegramRetryAfter):  # the chat's ticks wait it out (status)
                self._held[generation.chat_id] = self._clock() + error.retry_after
            log.warning("status message of generation %s not updated: %s", generation.id, error)
            return True
        self._held.pop(generation.chat_id, None)
        if message_id is not None and message_id != generation.status_message_id:
            await self.store.set_status_message(generation.id, message_id)
        return True

    async def alert_admins(self, cause: str, message: str, **params: str) -> None:
        """Tell every admin about an operator problem, once per cause per hour.
        `message` is a message id, translated for each admin; `params` are escaped."""
        now = self._clock()
        if now - self._alerted.get(cause, -ADMIN_ALERT_GAP) < ADMIN_ALERT_GAP:
            return
        self._alerted[cause] = now
        log.error("admin alert (%s): %s", cause, message.format(**params))
        safe = {key: html.escape(value) for key, value in params.items()}
        for admin_id in self.admin_ids:
            text = "⚠️ " + self.i18n.gettext(message, locale=await self.locale(admin_id)).format(**safe)
            try:
                await with_retry(partial(self.bot.send_message, admin_id, text))
            except TelegramAPIError as error:
                log.warning("admin %s not alerted: %s", admin_id, error)

    async def key_refused(self, key: str, reason: str) -> None:
        """Kie refuses one key of the pool (`key`: its id; `reason`: Kie's code): it has left the
        pool. Told once per key, whoever (a create, a status read) met the refusal first."""
        await self.alert_admins(
            f"key:{key}", N_("Kie.ai refuses the key {key} ({reason}): no new task goes to it "
                             "until the bot restarts. The other keys go on."),
            key=key, reason=reason)

    async def auth_refused(self) -> None:
        """Kie refuses the last key left (the bot's only one): nothing can be made or read."""
        await self.alert_admins(
            "auth", N_("Kie.ai refuses the API key (KIE_API_KEY). Generations are refunded."))
