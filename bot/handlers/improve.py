"""✨ Improve on a picker: charged, Kie's chat model asked while the picker says so, then the
improved prompt beside the person's own with Use it / Keep mine."""

from __future__ import annotations

import html
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.errors import Refusal
from bot.handlers.generate import short_of_credits
from bot.handlers.picker import edit, render
from bot.keyboards import Improve, improved_keyboard
from bot.services.generation import PickerChanged, ShortOfCredits
from bot.services.improve import Improver, Outcome
from bot.store import User

log = logging.getLogger(__name__)

# How much of the improved prompt the message shows (with the person's own, within Telegram's
# 4096 characters); Use it takes all of it.
IMPROVED_PREVIEW = 3000


def improved_text(outcome: Outcome) -> str:
    improvement = outcome.improvement
    return "\n".join([
        "✨ <b>" + html.escape(_("Improved prompt:")) + "</b>",
        f"<i>{texts.quote(improvement.improved or '', IMPROVED_PREVIEW)}</i>", "",
        "<b>" + html.escape(_("Yours:")) + "</b>",
        f"<i>{texts.quote(improvement.original)}</i>"])


def failed_line(price: int) -> str:
    line = "❗ " + _("I could not improve the prompt this time; it is unchanged.")
    if price:
        line += " " + _("{credits} returned to your balance.").format(credits=texts.credits(price))
    return line


async def improve(query: CallbackQuery, *, callback_data: Improve, account: User,
                  improver: Improver, callback_answer: CallbackAnswer, bot: Bot) -> None:
    if callback_data.act != "go":
        picker = await improver.decide(callback_data.draft, account.id, callback_data.attempt,
                                       use=callback_data.act == "use")
        await edit(query, *render(picker))
        return
    try:
        improvement, picker = await improver.begin(callback_data.draft, account.id,
                                                   callback_data.attempt)
    except PickerChanged as changed:  # show the picker as it is now, then refuse the press
        await edit(query, *render(changed.picker))
        raise
    except ShortOfCredits as short:
        await short_of_credits(bot, query, account, short)
        raise
    # Charged: whatever Telegram says from here on, the attempt runs to its end (or refund).
    text, markup = render(picker)
    await _show(query, text + "\n\n✨ " + _("Improving your prompt…"), markup)
    callback_answer.disable()
    try:
        await query.answer()
    except TelegramAPIError as error:
        log.warning("draft %s: the ✨ press was not answered: %s", improvement.draft_id, error)
    draft = picker.draft
    outcome = await improver.run(improvement, kind=draft.kind, picture=draft.picture is not None)
    if outcome.ready:
        await _show(query, improved_text(outcome),
                    improved_keyboard(improvement.draft_id, improvement.attempt))
    else:
        text, markup = render(outcome.picker)
        await _show(query, text + "\n\n" + failed_line(improvement.price), markup)


async def _show(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    """An edit of the picker that may fail (flood control, the message deleted) without
    stopping the attempt, whose charge or refund is settled whatever Telegram says."""
    try:
        await edit(query, text, markup)
    except (Refusal, TelegramAPIError) as error:
        log.warning("a picker was not edited: %s", error)


def make_router() -> Router:
    router = Router(name="improve")
    router.callback_query.register(improve, Improve.filter())
    return router
