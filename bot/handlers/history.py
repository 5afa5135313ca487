"""/history: a person's generations, newest first, a page at a time; a delivered result can be
sent again (no charge, no new Kie task): from the file Telegram keeps of it, with no expiry, or,
where Telegram holds none, from Kie's link while Kie keeps it (about a day). 📤 is shown only
where one of the two can work."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Sequence

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.errors import Refusal
from bot.i18n import N_
from bot.keyboards import HistoryPage, Resend, history_keyboard
from bot.services.delivery import Delivery, kie_keeps
from bot.services.notifier import model_name
from bot.services.private import send_privately
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


async def history(message: Message, account: User, store: Store, bot: Bot) -> None:
    # Shown in the person's private chat, whoever's group it was asked in.
    private = Chat(id=account.id, type=ChatType.PRIVATE)
    text, markup = await page_of(store, account.id, 0, chat=private)
    await send_privately(bot, account, message, text, markup)


async def turn(query: CallbackQuery, callback_data: HistoryPage, account: User,
               store: Store) -> None:
    if callback_data.owner != account.id:
        raise Refusal(texts.NOT_YOURS)
    if not isinstance(query.message, Message):  # too old for Telegram to include it
        raise Refusal(texts.OUTDATED)
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
        raise Refusal(texts.OUTDATED)
    if generation.user_id != account.id:  # someone else's menu, or forged data
        raise Refusal(texts.NOT_YOURS)
    if generation.state not in SENDABLE:
        raise Refusal(N_("Only a finished result can be sent again."))
    if generation.id not in await sendable(store, [generation]):
        raise Refusal(EXPIRED)  # no file in Telegram, and Kie's known gone: no need to ask it
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
    lines = [_("<b>Your generations</b>, page {page} of {pages} (times in UTC)").format(
        page=page + 1, pages=pages)]
    can_send = await sendable(store, generations)
    resendable = []
    for number, generation in enumerate(generations, page * PAGE_SIZE + 1):
        lines += ["", f"{number}. {entry(generation)}"]
        if private or generation.chat_id == chat.id:
            lines.append(f"<i>{texts.quote(generation.prompt, PROMPT_PREVIEW)}</i>")
        if generation.id in can_send:
            resendable.append((number, generation.id))
    return "\n".join(lines), history_keyboard(user_id, page, pages, resendable)


async def sendable(store: Store, generations: Sequence[Generation]) -> set[int]:
    """Those of `generations` a re-send can work for: made and paid for, and either held by
    Telegram (a stored file_id) or still at Kie."""
    finished = [g for g in generations if g.state in SENDABLE]
    stored = await store.with_delivered_files([g.id for g in finished])
    now = time.time()
    return {g.id for g in finished if g.id in stored or kie_keeps(g, now)}


def entry(generation: Generation) -> str:
    """🖼 <b>Imagen 4</b> · delivered · 40 credits · 31 Jan, 12:00 (UTC, as the list says)"""
    if generation.state == GenerationState.FAILED:
        state = _("failed ({reason}), refunded").format(
            reason=texts.failure(generation.failure or "kie_failed", generation.failure_detail))
    else:
        state = _(STATES[generation.state])
    icon = texts.KIND_ICONS.get(generation.kind, "")
    return (f"{icon} <b>{html.escape(model_name(generation))}</b> · {state} · "
            f"{texts.credits(generation.price)} · {texts.when(generation.created_at)}")


def make_router() -> Router:
    router = Router(name="history")
    router.message.register(history, Command("history"))
    router.callback_query.register(turn, HistoryPage.filter())
    router.callback_query.register(resend, Resend.filter())
    return router
