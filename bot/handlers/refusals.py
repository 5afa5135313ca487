"""How a person is told no: refusals raised under any handler, the last-resort error handler,
and fallbacks for presses and commands nothing else took."""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, ErrorEvent, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.errors import Refusal
from bot.middlewares import Handler, typed_by_a_person
from bot.store import InsufficientCredits

log = logging.getLogger(__name__)

# What Telegram accepts as a command name; "/usr/bin" in a sentence is none.
COMMAND_NAME = re.compile(r"[A-Za-z0-9_]{1,32}\Z")


class RefusalMiddleware(BaseMiddleware):
    """Inner middleware of the root router: a Refusal (or too few credits) becomes the answer —
    a message, or the press's alert. It has to be a middleware, not an error handler:
    CallbackAnswerMiddleware answers the press on its way out, before error handlers run."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except Refusal as refusal:
            text = refusal.text(_)
        except InsufficientCredits as error:
            text = texts.not_enough(error.price, error.balance)
        except Exception:
            # `unexpected` answers the press with an alert; the automatic empty answer would come
            # first and leave it nothing to say.
            automatic: CallbackAnswer | None = data.get("callback_answer")
            if automatic is not None and not automatic.disabled:
                automatic.disable()
            raise
        if isinstance(event, CallbackQuery):
            answer: CallbackAnswer = data["callback_answer"]
            answer.text, answer.show_alert = text, True
        elif isinstance(event, Message):
            await event.answer(text)
        return None


async def unexpected(event: ErrorEvent) -> None:
    """The last resort: log it once with its traceback, and tell the person (not a chat about
    a service message: nobody asked anything there)."""
    update = event.update
    log.error("update %s failed", update.update_id, exc_info=event.exception)
    if not typed_by_a_person(update):
        return
    text = _("Something went wrong on my side. Your credits are safe; try again in a minute.")
    with suppress(TelegramAPIError):  # what failed may fail this answer too; it is logged above
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.message is not None:
            await update.message.answer(text)


async def outdated(query: CallbackQuery) -> None:
    """A press no handler took: an old keyboard, or forged data."""
    raise Refusal(texts.OUTDATED)


async def unknown_command(message: Message, command: CommandObject) -> None:
    # In a group, a bare /command may be meant for another bot.
    if message.chat.type == ChatType.PRIVATE or command.mention:
        await message.answer(_("I don't know /{command}. /help lists what I can do.").format(
            command=command.command))


def setup(root: Router) -> None:
    """Refusals and unexpected errors are answered for every router under `root`."""
    refusals = RefusalMiddleware()
    root.message.middleware(refusals)
    root.callback_query.middleware(refusals)
    root.errors.register(unexpected)


def make_fallback_router() -> Router:
    """Include it last: it takes whatever the other routers left."""
    router = Router(name="fallback")
    router.callback_query.register(outdated)
    router.message.register(unknown_command, Command(COMMAND_NAME))
    return router
