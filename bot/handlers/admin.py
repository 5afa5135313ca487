"""Admin commands: /topup."""

from __future__ import annotations

import html
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import Settings
from bot.errors import Refusal
from bot.i18n import N_, locale_of
from bot.services.accounts import parse_topup
from bot.store import Store, User


async def topup(message: Message, *, command: CommandObject, is_admin: bool, account: User,
                store: Store, settings: Settings, bot: Bot, i18n: I18n) -> None:
    if not is_admin:
        raise Refusal(N_("This command is for admins only."))
    replied = message.reply_to_message.from_user if message.reply_to_message else None
    target, amount = await parse_topup(store, settings, command.args, replied)
    row = await store.topup(target.id, amount, admin_id=account.id,
                            source=f"topup:{message.chat.id}:{message.message_id}")
    if row is None:  # Telegram sent this command again: it was applied and answered the first time
        return
    await message.answer(_("Added {credits} to {user}. Their balance: {balance}.").format(
        credits=texts.credits(amount), user=html.escape(target.display_name),
        balance=texts.credits(row.balance_after)))
    with i18n.use_locale(locale_of(target, i18n)):
        notice = _("An admin added {credits} to your balance. Balance: {balance}.").format(
            credits=texts.credits(amount), balance=texts.credits(row.balance_after))
    # Never started a private chat, or blocked the bot: the credits are there anyway.
    with suppress(TelegramAPIError):
        await bot.send_message(target.id, notice)


def make_router() -> Router:
    router = Router(name="admin")
    router.message.register(topup, Command("topup"))
    return router
