"""Everyone's commands: /start, /help, /models, /balance."""

from __future__ import annotations

import html
from collections.abc import Iterable

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message, Update
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import BotSettings, GrowthSettings
from bot.handlers.growth import start_link
from bot.keyboards import start_keyboard
from bot.menu import ADMIN_COMMANDS, COMMANDS
from bot.services.delivery import Delivery
from bot.services.offers import current_offer
from bot.services.private import send_privately
from bot.store import Store, User

BALANCE_ROWS = 5
UNLISTED = ("start", "help")  # what /help need not tell about


async def start(message: Message, account: User, delivery: Delivery, *, store: Store,
                bot_settings: BotSettings, growth_settings: GrowthSettings,
                command: CommandObject, event_update: Update) -> None:
    note = None
    if message.chat.type == ChatType.PRIVATE and command.args:  # a t.me/<bot>?start=... link
        note, account = await start_link(account, store, command.args,
                                         update_id=event_update.update_id,
                                         growth_settings=growth_settings)
    name = html.escape(account.first_name)
    if message.chat.type == ChatType.PRIVATE:
        greeting = _("Hi, {name}! Your balance: {credits}.").format(
            name=name, credits=texts.credits(account.balance))
        how = _("Describe what you want in a message, and I will offer to make it a picture, "
                "a video or music. Or choose here first:")
    else:  # money stays private: no balance in a group
        greeting = _("Hi, {name}!").format(name=name)
        how = _("Choose what to make, or send a command with a description, for example "
                "<code>/image {example}</code>.").format(
            example=texts.quote(texts.prompt_placeholder("image")))
    await message.answer("\n\n".join([*([note] if note else []), greeting, how,
                                      _("/help lists everything I can do.")]),
                         reply_markup=start_keyboard())
    if message.chat.type == ChatType.PRIVATE:  # results that found them nowhere come now
        await delivery.resume_undelivered(account.id, deadline=bot_settings.delivery_deadline)


async def help_(message: Message, is_admin: bool) -> None:
    """The commands as the menu describes them; prices are /models'."""
    lines = [_("<b>What I can do</b>"),
             _("Send me a description and choose what to make of it, or use a command:"),
             *_command_lines(command for command in COMMANDS if command[0] not in UNLISTED),
             "", _("Each generation is paid from your balance at the price on its button; if "
                   "it fails, the credits come back.")]
    if is_admin:
        lines += ["", "<b>" + _("For admins") + "</b>", *_command_lines(ADMIN_COMMANDS)]
    await message.answer("\n".join(lines))


def _command_lines(commands: Iterable[tuple[str, str]]) -> list[str]:
    return [f"/{name} — {_(description)}" for name, description in commands]


async def models(message: Message, store: Store) -> None:
    await message.answer(texts.price_list(await current_offer(store)))


async def balance(message: Message, account: User, store: Store, bot: Bot) -> None:
    lines = [_("Your balance: <b>{credits}</b>").format(credits=texts.credits(account.balance))]
    rows = await store.ledger(account.id, BALANCE_ROWS)
    if rows:
        lines += ["", _("Latest changes (times in UTC):")]
        lines += [f"{row.amount:+d} · {texts.ledger_kind(row.kind)} · {texts.when(row.created_at)}"
                  for row in rows]
    await send_privately(bot, account, message, "\n".join(lines))


def make_router() -> Router:
    router = Router(name="info")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(models, Command("models"))
    router.message.register(balance, Command("balance"))
    return router
