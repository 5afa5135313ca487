"""/broadcast for admins: as a reply to any message, a preview (the message copied back, the
audience and its count, ✅ Send to N / ✖ Cancel); ✅ makes the broadcast, which the runner
(services/broadcast.py) sends; `/broadcast stop` stops the one under way."""

from __future__ import annotations

import html
import time

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.errors import Refusal
from bot.handlers.admin import AdminsOnly
from bot.i18n import N_
from bot.keyboards import BroadcastPress, broadcast_keyboard
from bot.services.accounts import UsageError
from bot.services.broadcast import Broadcaster, audience_name, progress_text
from bot.services.telegram import reply_kwargs
from bot.store import User
from bot.store.broadcasts import Audience

USAGE = N_("Usage: reply to the message to send with <code>/broadcast [all|paying|active|en|ru]"
           "</code> (everyone when left out): you see it as people will, and how many they are, "
           "before anything is sent. <code>/broadcast stop</code> stops the one under way.\n"
           "Example: <code>/broadcast paying</code>")


async def broadcast(message: Message, *, command: CommandObject, bot: Bot,
                    broadcaster: Broadcaster) -> None:
    tokens = (command.args or "").lower().split()
    if tokens == ["stop"]:
        await stop(message, broadcaster)
        return
    if len(tokens) > 1 or (tokens and tokens[0] not in set(Audience)):
        raise UsageError(N_("Say one audience: all, paying, active, en or ru."), usage=USAGE)
    source = message.reply_to_message
    if source is None:
        raise UsageError(N_("Reply with /broadcast to the message to send."), usage=USAGE)
    audience = Audience(tokens[0]) if tokens else Audience.ALL
    count = await broadcaster.broadcasts.count(audience, broadcaster.languages, time.time())
    try:  # what people will get, exactly: Telegram's copy of it
        preview = await bot.copy_message(message.chat.id, message.chat.id, source.message_id)
    except TelegramBadRequest as error:  # a service message, a poll of the bot's, ...
        raise Refusal(N_("Telegram cannot copy this message: {error}"),
                      error=error.message) from error
    name = html.escape(audience_name(audience))
    if count == 0:
        await message.answer("📣 " + _("Nobody to send it to: {audience} — 0 people.").format(
            audience=name))
        return
    await message.answer(
        "📣 " + ngettext("Above is what {audience} will get: {n} person. Send it?",
                         "Above is what {audience} will get: {n} people. Send it?",
                         count).format(audience=name, n=count),
        **reply_kwargs(preview.message_id),
        reply_markup=broadcast_keyboard(audience, source.message_id, count))


async def stop(message: Message, broadcaster: Broadcaster) -> None:
    stopped = await broadcaster.broadcasts.stop(time.time())
    if stopped is None:
        await message.answer(_("No broadcast is under way."))
        return
    broadcaster.wake()
    await message.answer(_("Broadcast #{id} stops: nobody else gets it. The report follows.")
                         .format(id=stopped.id))


async def press(query: CallbackQuery, callback_data: BroadcastPress, *, account: User,
                broadcaster: Broadcaster) -> None:
    preview = query.message
    if not isinstance(preview, Message):  # too old for Telegram to include it
        raise Refusal(N_("This preview is too old: send /broadcast again."))
    if callback_data.act == "x":
        await preview.edit_text(_("Broadcast cancelled: nothing was sent."))
        return
    made, new = await broadcaster.broadcasts.create(
        admin_id=account.id, chat_id=preview.chat.id, message_id=callback_data.message,
        status_message_id=preview.message_id, audience=callback_data.audience,
        languages=broadcaster.languages, now=time.time())
    if not new:  # a second press, or the same press again
        raise Refusal(N_("Broadcast #{id} was made with this button already."), id=made.id)
    tally = await broadcaster.broadcasts.tally(made.id)
    text = progress_text(made, 0, tally.total, 0)
    ahead = await broadcaster.broadcasts.ahead_of(made.id)
    if ahead:
        text += "\n" + ngettext("It starts when the {n} broadcast before it has ended.",
                                 "It starts when the {n} broadcasts before it have ended.",
                                 ahead).format(n=ahead)
    await preview.edit_text(text)  # first: the runner's progress edits come after this one
    broadcaster.wake()


def make_router() -> Router:
    router = Router(name="broadcast")
    router.message.middleware(AdminsOnly())
    router.callback_query.middleware(AdminsOnly())
    router.message.register(broadcast, Command("broadcast"))
    router.callback_query.register(press, BroadcastPress.filter())
    return router
