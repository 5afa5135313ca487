"""Admin work on accounts: finding the user a command names, checking the amount, telling the
person of a top-up."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.errors import Refusal
from bot.i18n import N_, locale_of
from bot.store import LedgerRow, Store, User

MAX_TOPUP = 1_000_000
# Telegram's user ids are positive and stay below 2**52; a bigger number is a typo (and past
# 2**63 it would overflow SQLite).
MAX_TELEGRAM_ID = 2**52

TOPUP_USAGE = N_("Usage: <code>/topup &lt;user&gt; &lt;amount&gt;</code>, where the user is a "
                 "Telegram id or @username; or reply to their message with "
                 "<code>/topup &lt;amount&gt;</code>.\nExample: <code>/topup 123456789 100</code>")


class UsageError(Refusal):
    """A command used wrongly: the reason, then `usage` (a message id) with an example."""

    def __init__(self, message: str, *, usage: str, **params: object) -> None:
        super().__init__(message, **params)
        self.usage = usage

    def text(self, translate: Callable[[str], str]) -> str:
        return super().text(translate) + "\n\n" + translate(self.usage)


def ascii_number(token: str) -> int | None:
    """The token's value when it is ASCII digits only. `str.isdigit()` alone also passes '²'
    (which int() refuses), and int() also reads other scripts' digits ('٤', '５')."""
    return int(token) if token.isascii() and token.isdigit() else None


def parse_amount(token: str) -> int:
    amount = ascii_number(token)
    if amount is None:
        raise UsageError(N_("The amount must be a whole number of credits."), usage=TOPUP_USAGE)
    if not 1 <= amount <= MAX_TOPUP:
        raise UsageError(N_("The amount must be between 1 and {max}."), usage=TOPUP_USAGE,
                         max=MAX_TOPUP)
    return amount


async def find_target(store: Store, starting_credits: int, token: str | None,
                      replied_to: TelegramUser | None, *, usage: str = TOPUP_USAGE) -> User:
    """The user named by an id or @username, or the author of the replied-to message.
    `usage` is the command's usage, shown when the user cannot be found."""
    if token is None:
        if replied_to is None or replied_to.is_bot:
            raise UsageError(N_("Say which user: a Telegram id or @username, or reply to their "
                                "message."), usage=usage)
        author, _created = await store.upsert_user(
            replied_to.id, username=replied_to.username, first_name=replied_to.first_name,
            last_name=replied_to.last_name, tg_language=replied_to.language_code,
            starting_credits=starting_credits)
        return author
    user_id = ascii_number(token)
    user: User | None
    if token.startswith("@") and len(token) > 1:
        user = await store.find_user(token)
    elif user_id is not None and 0 < user_id < MAX_TELEGRAM_ID:
        user = await store.get_user(user_id)
    else:
        raise UsageError(
            N_("Name the user by Telegram id or @username, or reply to their message."),
            usage=usage)
    if user is None:
        raise UsageError(N_("I don't know the user {user}: they have to start the bot first."),
                         usage=usage, user=token)
    return user


async def parse_topup(store: Store, starting_credits: int, args: str | None,
                      replied_to: TelegramUser | None) -> tuple[User, int]:
    """`<user> <amount>`, or just `<amount>` in a reply."""
    tokens = (args or "").split()
    if len(tokens) == 2:
        amount = parse_amount(tokens[1])
        return await find_target(store, starting_credits, tokens[0], None), amount
    if len(tokens) == 1 and replied_to is not None:
        amount = parse_amount(tokens[0])
        return await find_target(store, starting_credits, None, replied_to), amount
    raise UsageError(N_("Say whom to top up and by how much."), usage=TOPUP_USAGE)


async def tell_topped_up(bot: Bot, i18n: I18n, target: User, row: LedgerRow) -> None:
    """The person told of an admin's top-up, in their language (/topup's and the dashboard's)."""
    with i18n.use_locale(locale_of(target, i18n)):
        notice = _("An admin added {credits} to your balance. Balance: {balance}.").format(
            credits=texts.credits(row.amount), balance=texts.credits(row.balance_after))
    # Never started a private chat, or blocked the bot: the credits are there anyway.
    with suppress(TelegramAPIError):
        await bot.send_message(target.id, notice)
