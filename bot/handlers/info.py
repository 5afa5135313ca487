"""Everyone's commands: /start, /help, /models, /balance."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import BotSettings
from bot.services.delivery import Delivery
from bot.services.offers import current_offer
from bot.store import Store, User

BALANCE_ROWS = 5


async def start(message: Message, account: User, delivery: Delivery, bot_settings: BotSettings) -> None:
    await message.answer(
        _("Hi, {name}! Your balance: {credits}.").format(
            name=html.escape(account.first_name), credits=texts.credits(account.balance))
        + "\n\n" + _("Send /image and a description, for example:\n<code>/image a red fox in snow</code>")
        + "\n" + _("/help lists everything I can do."))
    if message.chat.type == ChatType.PRIVATE:  # results that found them nowhere come now
        await delivery.resume_undelivered(account.id, deadline=bot_settings.delivery_deadline)


async def help_(message: Message, store: Store) -> None:
    lines = [
        _("<b>What I can do</b>"),
        _("/image &lt;prompt&gt; — create a picture"),
        _("/video &lt;prompt&gt; — create a video"),
        _("/music &lt;prompt&gt; — create music, or speech from a text"),
        _("/models — the models and their prices"),
        _("/balance — your credits and their history"),
        _("/history — your last generations; send a result again"),
        _("/language — choose the language"),
        _("/buy — buy credits with Telegram Stars; /paysupport — help with a payment"),
        "",
        texts.price_list(await current_offer(store)),
        "",
        _("Each generation is paid from your balance; if it fails, the credits come back. "
          "To get credits, /buy them or ask an admin of this bot."),
    ]
    await message.answer("\n".join(lines))


async def models(message: Message, store: Store) -> None:
    await message.answer(texts.price_list(await current_offer(store)))


async def balance(message: Message, account: User, store: Store) -> None:
    lines = [_("Your balance: <b>{credits}</b>").format(credits=texts.credits(account.balance))]
    rows = await store.ledger(account.id, BALANCE_ROWS)
    if rows:
        lines.append("")
        lines.append(_("Latest changes:"))
        for row in rows:
            when = datetime.fromtimestamp(row.created_at, UTC).strftime("%Y-%m-%d %H:%M")
            lines.append(f"{row.amount:+d} · {texts.ledger_kind(row.kind)} · {when} UTC")
    await message.answer("\n".join(lines))


def make_router() -> Router:
    router = Router(name="info")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(models, Command("models"))
    router.message.register(balance, Command("balance"))
    return router
