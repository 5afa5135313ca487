"""Admin work on accounts: finding the user a command names, checking the amount."""

from __future__ import annotations

from aiogram.types import User as TelegramUser

from bot.config import Settings
from bot.i18n import N_
from bot.store import Store, User

MAX_TOPUP = 1_000_000


class UsageError(Exception):
    """A command used wrongly; `message` is a message id, `params` fill it in."""

    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


def parse_amount(token: str) -> int:
    if not token.lstrip("+").isdigit():
        raise UsageError(N_("The amount must be a whole number of credits."))
    amount = int(token)
    if not 1 <= amount <= MAX_TOPUP:
        raise UsageError(N_("The amount must be between 1 and {max}."), max=str(MAX_TOPUP))
    return amount


async def find_target(store: Store, settings: Settings, token: str | None,
                      replied_to: TelegramUser | None) -> User:
    """The user named by an id or @username, or the author of the replied-to message."""
    if token is None:
        if replied_to is None or replied_to.is_bot:
            raise UsageError(N_("Say whom to top up."))
        user, _ = await store.upsert_user(
            replied_to.id, username=replied_to.username, first_name=replied_to.first_name,
            last_name=replied_to.last_name, tg_language=replied_to.language_code,
            starting_credits=settings.starting_credits)
        return user
    if token.startswith("@") and len(token) > 1:
        user = await store.find_user(token)
    elif token.lstrip("-").isdigit():
        user = await store.get_user(int(token))
    else:
        raise UsageError(N_("Name the user by Telegram id or @username, or reply to their message."))
    if user is None:
        raise UsageError(N_("I don't know the user {user}: they have to start the bot first."),
                         user=token)
    return user


async def parse_topup(store: Store, settings: Settings, args: str | None,
                      replied_to: TelegramUser | None) -> tuple[User, int]:
    """`<user> <amount>`, or just `<amount>` in a reply."""
    tokens = (args or "").split()
    if len(tokens) == 2:
        amount = parse_amount(tokens[1])
        return await find_target(store, settings, tokens[0], None), amount
    if len(tokens) == 1 and replied_to is not None:
        amount = parse_amount(tokens[0])
        return await find_target(store, settings, None, replied_to), amount
    raise UsageError(N_("Say whom to top up and by how much."))
