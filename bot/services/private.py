"""Money stays private: what a person asks about their credits in a group (/balance, /buy,
/history, a payment's confirmation, the out-of-credits message) is answered in their private
chat with the bot, and the group gets one short line saying where it went — or, when the bot
cannot write to them there, how to open that chat."""

from __future__ import annotations

import html
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot.services.delivery import blocked_by_user
from bot.services.telegram import reply_kwargs, with_retry
from bot.store import User

log = logging.getLogger(__name__)


async def send_privately(bot: Bot, person: User, where: Message, text: str,
                         markup: InlineKeyboardMarkup | None = None) -> bool:
    """`text` (and `markup`) for `person`, who asked in the chat of `where` (their message, or
    the bot's message whose button they pressed). Their private chat gets it: as the answer
    when they asked there; from a group, sent there, with one line in the group saying so. When
    Telegram refuses the private chat (403: they never opened it, or blocked the bot), the
    group line says how to open it instead, with a button to it. Texts in the current locale
    (the person's). True when the text reached them."""
    if where.chat.id == person.id:
        await where.answer(text, reply_markup=markup)
        return True
    try:
        await with_retry(lambda: bot.send_message(person.id, text, reply_markup=markup))
    except TelegramForbiddenError as error:
        log.info("user %s cannot be written to privately: %s", person.id, error.message)
        await where.answer(_unreachable_line(person, blocked=blocked_by_user(error)),
                           reply_markup=await _open_chat_keyboard(bot),
                           **reply_kwargs(where.message_id))
        return False
    await where.answer("📬 " + _("{name}, I sent it to you in our private chat.").format(
        name=html.escape(person.first_name)), **reply_kwargs(where.message_id))
    return True


def _unreachable_line(person: User, *, blocked: bool) -> str:
    if blocked:
        text = _("{name}, you have blocked me, so I cannot answer you privately. Open our chat "
                 "with the button, unblock me, and try again.")
    else:
        text = _("{name}, I answer this only in a private chat, and you have not opened one "
                 "with me yet. Open it with the button, press Start, and try again.")
    return "🔒 " + text.format(name=html.escape(person.first_name))


async def _open_chat_keyboard(bot: Bot) -> InlineKeyboardMarkup:
    me = await bot.me()  # getMe once; aiogram keeps the answer
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text="💬 " + _("Open the chat with me"), url=f"https://t.me/{me.username}")]])
