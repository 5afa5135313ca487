"""Admin commands: /topup."""

from __future__ import annotations

import html

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import Settings
from bot.i18n import locale_of
from bot.services.accounts import UsageError, parse_topup
from bot.store import Store, User


async def topup(message: Message, command: CommandObject, is_admin: bool, account: User,
                store: Store, settings: Settings, bot: Bot, i18n: I18n) -> None:
    if not is_admin:
        await message.answer(_("This command is for admins only."))
        return
    replied = message.reply_to_message.from_user if message.reply_to_message else None
    try:
        target, amount = await parse_topup(store, settings, command.args, replied)
    except UsageError as error:
        safe = {key: html.escape(value) for key, value in error.params.items()}
        await message.answer(_(error.message).format(**safe) + "\n\n" + _(
            "Usage: <code>/topup &lt;user&gt; &lt;amount&gt;</code>, where the user is a "
            "Telegram id or @username; or reply to their message with "
            "<code>/topup &lt;amount&gt;</code>.\nExample: <code>/topup 123456789 100</code>"))
        return
    row = await store.topup(target.id, amount, admin_id=account.id)
    await message.answer(_("Added {credits} to {user}. Their balance: {balance}.").format(
        credits=texts.credits(amount), user=html.escape(target.display_name),
        balance=texts.credits(row.balance_after)))
    with i18n.use_locale(locale_of(target, i18n)):
        notice = _("An admin added {credits} to your balance. Balance: {balance}.").format(
            credits=texts.credits(amount), balance=texts.credits(row.balance_after))
    try:
        await bot.send_message(target.id, notice)
    except TelegramAPIError:
        pass  # never started a private chat, or blocked the bot: the credits are there anyway


def make_router() -> Router:
    router = Router(name="admin")
    router.message.register(topup, Command("topup"))
    return router
