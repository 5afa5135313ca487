"""Middlewares: a flood is dropped first, then an update seen before; every other update
registers its user (the same step), and banned users, anonymous admins and channels get one
short answer."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n

from bot import texts
from bot.config import BotSettings
from bot.i18n import N_, locale_of
from bot.store import Store

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Each person's messages and presses fill two token buckets: this many at once, then RATE a
# second. Presses come in quicker runs (a person tapping through a picker) and cost at most an
# edit; a command opens a draft and sends a message.
MESSAGE_BURST = 10
PRESS_BURST = 20
RATE = 1.0
# A bucket unseen this long is full again, as good as none: it is forgotten.
FORGET_AFTER = max(MESSAGE_BURST, PRESS_BURST) / RATE


@dataclass
class _Bucket:
    tokens: float
    seen: float
    warned: bool = False  # this throttled period's notice went out


class ThrottleMiddleware(BaseMiddleware):
    """Outer update middleware, before AccountMiddleware: a flood is dropped before it costs a
    database write or a message. A dropped command gets one notice per throttled period; every
    dropped press is answered, so no button keeps spinning. Admins are exempt: their batch of
    commands (twenty /topup lines pasted at once) is work, not a flood, and a command dropped
    after one notice would leave them guessing which ones were done."""

    def __init__(self, i18n: I18n) -> None:
        self.i18n = i18n
        self._buckets: OrderedDict[tuple[int, bool], _Bucket] = OrderedDict()  # oldest first

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update = cast(Update, event)  # registered on dp.update
        sender: TelegramUser | None = data.get("event_from_user")
        settings: BotSettings = data["bot_settings"]  # the dispatcher's, as handlers get it
        if sender is None or not typed_by_a_person(update) \
                or sender.id in settings.admin_ids:
            return await handler(event, data)
        press = update.callback_query is not None
        allowed, first_refusal = self._take(sender.id, press)
        if allowed:
            return await handler(event, data)
        if press or (first_refusal and _is_command(update.message)):
            locale = locale_of(None, self.i18n, sender.language_code)
            with suppress(TelegramAPIError):  # a courtesy; the flood may have blocked the chat
                await _answer(update, self.i18n.gettext(texts.SLOW_DOWN, locale=locale))
        return None

    def _take(self, user_id: int, press: bool) -> tuple[bool, bool]:
        """(allowed, first refusal since this bucket last allowed one)."""
        now = time.monotonic()
        while self._buckets and now - next(iter(self._buckets.values())).seen >= FORGET_AFTER:
            self._buckets.popitem(last=False)
        burst = PRESS_BURST if press else MESSAGE_BURST
        bucket = self._buckets.pop((user_id, press), None) or _Bucket(tokens=burst, seen=now)
        self._buckets[user_id, press] = bucket
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.seen) * RATE)
        bucket.seen = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return True, False
        first_refusal, bucket.warned = not bucket.warned, True
        return False, first_refusal


class AccountMiddleware(BaseMiddleware):
    """Outer update middleware, after ThrottleMiddleware: an update seen before is dropped, and
    `account` (the stored user, registered or refreshed) reaches every handler that acts for a
    person. For a person's update both are one statement as a rule (Store.see_update).

    Telegram sends an update again when a poller died before confirming its offset, or a
    webhook answered too slowly: its id, kept in the database (so a restart remembers), drops
    it. Every balance change is also keyed on its own source; this keeps the rest (a second
    picker, a second answer) from happening. A checkout is answered again when repeated
    (harmless); a payment is credited on arrival (services/payments.CreditOnArrival), here
    only its confirmation is at most once.

    An anonymous admin or a post as a channel (`from` is a bot) has no balance: its commands
    get one short answer, and only service messages (say, a group upgraded by an anonymous
    admin) go on, without an `account`."""

    def __init__(self, store: Store, settings: BotSettings, i18n: I18n) -> None:
        self.store = store
        self.settings = settings
        self.i18n = i18n

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update = cast(Update, event)  # registered on dp.update
        update_id = None if update.pre_checkout_query is not None else update.update_id
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            if update_id is not None and not await self.store.first_sight_of_update(update_id):
                return _repeated(update_id)
            if not _is_request(update):
                return await handler(event, data)
            text = self.i18n.gettext(
                N_("Send commands from your own account: an anonymous admin or a channel has no "
                   "balance here."), locale=self.i18n.default_locale)
            return await _answer(update, text)
        account = await self.store.see_update(
            update_id, sender.id, username=sender.username, first_name=sender.first_name,
            last_name=sender.last_name, tg_language=sender.language_code,
            starting_credits=self.settings.starting_credits)
        if account is None:
            return _repeated(update.update_id)
        data["account"] = account
        data["is_admin"] = sender.id in self.settings.admin_ids
        # A banned user's payment goes on: the checkout must be answered (the handler refuses
        # it, with the reason), and a payment made is credited.
        if account.banned and not data["is_admin"] and not is_payment(update):
            if _is_request(update):
                await _answer(update, self.i18n.gettext(N_("You are banned from using this bot."),
                                                        locale=locale_of(account, self.i18n)))
            return None
        return await handler(event, data)


def _repeated(update_id: int) -> None:
    log.info("update %s was handled before: dropped", update_id)


def typed_by_a_person(update: Update) -> bool:
    """A press, or a message with text or a caption: what a person can flood, and what is
    worth an answer. Service messages (a payment, a member joining) are neither."""
    if update.callback_query is not None:
        return True
    return update.message is not None and bool(update.message.text or update.message.caption)


def is_payment(update: Update) -> bool:
    """A Stars checkout, or the message saying it was paid."""
    return update.pre_checkout_query is not None or (
        update.message is not None and update.message.successful_payment is not None)


def _is_command(message: Message | None) -> bool:
    return message is not None and (message.text or message.caption or "").startswith("/")


def _is_request(update: Update) -> bool:
    """A command or a press: what asks the bot to act for someone."""
    return update.callback_query is not None or _is_command(update.message)


async def _answer(update: Update, text: str) -> None:
    """A short answer to a request: the press's alert, or a message into the command's chat."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    elif update.message is not None:
        await update.message.answer(text)
