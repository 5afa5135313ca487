"""/history: a person's generations, newest first, a page at a time; a delivered result can be
sent again (no charge, no new Kie task) while Kie still keeps its files."""

from __future__ import annotations

import html
import logging
import time
from datetime import UTC, datetime

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.errors import Refusal
from bot.i18n import N_
from bot.keyboards import HistoryPage, Resend, history_keyboard
from bot.services.delivery import RESULT_RETENTION, Delivery
from bot.services.notifier import model_name
from bot.services.telegram import is_not_modified
from bot.store import Generation, GenerationState, Store, User

log = logging.getLogger(__name__)

PAGE_SIZE = 5
PROMPT_PREVIEW = 60

# What each state means to the person who asked.
STATES = {
    GenerationState.PENDING: N_("starting"),
    GenerationState.RUNNING: N_("in progress"),
    GenerationState.SUCCEEDED: N_("being sent"),
    GenerationState.DELIVERED: N_("delivered"),
    GenerationState.UNDELIVERABLE: N_("finished, not delivered"),
}

# Made and paid for: sent again (or at last, to someone who could not be reached) on request.
SENDABLE = (GenerationState.DELIVERED, GenerationState.UNDELIVERABLE)
EXPIRED = N_("This result has expired: results are kept for about 24 hours.")
NOT_YOURS = N_("This menu belongs to someone else. Send your own command.")
OUTDATED = N_("This menu is out of date.")


async def history(message: Message, account: User, store: Store) -> None:
    text, markup = await page_of(store, account.id, 0, chat=message.chat)
    await message.answer(text, reply_markup=markup)


async def turn(query: CallbackQuery, callback_data: HistoryPage, account: User,
               store: Store) -> None:
    if callback_data.owner != account.id:
        raise Refusal(NOT_YOURS)
    if not isinstance(query.message, Message):  # too old for Telegram to include it
        raise Refusal(OUTDATED)
    text, markup = await page_of(store, account.id, callback_data.page,
                                 chat=query.message.chat)
    try:
        await query.message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if not is_not_modified(error):
            raise
    except TelegramRetryAfter:  # flood control in this chat: the press may simply be repeated
        raise Refusal(texts.SLOW_DOWN) from None


async def resend(query: CallbackQuery, *, callback_data: Resend, account: User, store: Store,
                 delivery: Delivery) -> None:
    generation = await store.get_generation(callback_data.generation)
    if generation is None or not isinstance(query.message, Message):
        raise Refusal(OUTDATED)
    if generation.user_id != account.id:  # someone else's menu, or forged data
        raise Refusal(NOT_YOURS)
    if generation.state not in SENDABLE:
        raise Refusal(N_("Only a finished result can be sent again."))
    if time.time() - (generation.finished_at or generation.created_at) > RESULT_RETENTION:
        raise Refusal(EXPIRED)  # known gone: no need to ask Kie
    if not delivery.resend_soon(generation, chat_id=query.message.chat.id,
                                reply_to=query.message.message_id):
        raise Refusal(N_("It is on its way already."))


async def page_of(store: Store, user_id: int, page: int, *,
                  chat: Chat) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of the list and its buttons; `chat` is where it is shown."""
    total = await store.count_generations(user_id)
    if total == 0:
        return _("You have no generations yet. Try /image, /video or /music."), None
    pages = -(-total // PAGE_SIZE)
    page = min(page, pages - 1)  # forged data, or a list that was never that long
    generations = await store.generations_of(user_id, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
    # In a group, prompts asked elsewhere (a private chat) stay private: only their model shows.
    private = chat.type == ChatType.PRIVATE
    lines = [_("<b>Your generations</b>, page {page} of {pages}").format(page=page + 1, pages=pages)]
    resendable = []
    for number, generation in enumerate(generations, page * PAGE_SIZE + 1):
        lines += ["", f"{number}. {entry(generation)}"]
        if private or generation.chat_id == chat.id:
            lines.append(f"<i>{texts.quote(generation.prompt, PROMPT_PREVIEW)}</i>")
        if generation.state in SENDABLE:
            resendable.append((number, generation.id))
    return "\n".join(lines), history_keyboard(user_id, page, pages, resendable)


def entry(generation: Generation) -> str:
    """🖼 <b>Imagen 4</b> · delivered · 40 credits · 2026-01-31 12:00 UTC"""
    if generation.state == GenerationState.FAILED:
        state = _("failed ({reason}), refunded").format(
            reason=texts.failure(generation.failure or "kie_failed", generation.failure_detail))
    else:
        state = _(STATES[generation.state])
    when = datetime.fromtimestamp(generation.created_at, UTC).strftime("%Y-%m-%d %H:%M")
    icon = texts.KIND_ICONS.get(generation.kind, "")
    return (f"{icon} <b>{html.escape(model_name(generation))}</b> · {state} · "
            f"{texts.credits(generation.price)} · {when} UTC")


def make_router() -> Router:
    router = Router(name="history")
    router.message.register(history, Command("history"))
    router.callback_query.register(turn, HistoryPage.filter())
    router.callback_query.register(resend, Resend.filter())
    return router
