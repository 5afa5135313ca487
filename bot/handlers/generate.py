"""/image, its picker, and 🔁 Again."""

from __future__ import annotations

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.catalog import get_model
from bot.keyboards import Again, Pick, models_keyboard, options_keyboard
from bot.services.generation import Generations, Picker, PickerError
from bot.services.telegram import is_not_modified
from bot.store import InsufficientCredits, Store, User

def render(picker: Picker) -> tuple[str, InlineKeyboardMarkup]:
    draft, model = picker.draft, picker.model
    if model is None:
        return (texts.picker_models(draft.kind, draft.prompt),
                models_keyboard(draft.id, picker.models))
    return (texts.picker_options(model, draft.prompt, draft.options),
            options_keyboard(draft.id, model, draft.options, can_go_back=len(picker.models) > 1))


async def image(message: Message, command: CommandObject, account: User,
                generations: Generations, store: Store) -> None:
    prompt = (command.args or "").strip()
    if not prompt:
        await message.answer(texts.generate_usage("/image"))
        return
    picker = await generations.open(user_id=account.id, chat_id=message.chat.id,
                                    request_message_id=message.message_id, kind="image",
                                    prompt=prompt)
    text, markup = render(picker)
    sent = await message.reply(text, reply_markup=markup)
    await store.set_picker_message(picker.draft.id, sent.message_id)


async def press(query: CallbackQuery, callback_data: Pick, account: User,
                generations: Generations, callback_answer: CallbackAnswer) -> None:
    try:
        if callback_data.act == "go":
            generation, model = await generations.charge(callback_data.draft, account.id)
            # Answer now: the task's creation may wait for Kie's rate budget.
            await query.answer()
            callback_answer.disable()
            await generations.submit(generation, model)
            return
        picker = await generations.press(callback_data.draft, account.id, callback_data.act,
                                         callback_data.val)
    except PickerError as error:
        callback_answer.text, callback_answer.show_alert = _(error.message), True
        return
    except InsufficientCredits as error:
        callback_answer.text = texts.not_enough(error.price, error.balance)
        callback_answer.show_alert = True
        return
    if query.message is None:
        return
    if picker is None:
        await _edit(query, "✖ " + _("Cancelled."), None)
    else:
        await _edit(query, *render(picker))


async def again(query: CallbackQuery, callback_data: Again, account: User,
                generations: Generations, store: Store, callback_answer: CallbackAnswer) -> None:
    generation = await store.get_generation(callback_data.generation)
    model = get_model(generation.model) if generation else None
    if generation is None or model is None or query.message is None:
        callback_answer.text, callback_answer.show_alert = _("This menu is out of date."), True
        return
    if generation.user_id != account.id:
        callback_answer.text = _("This menu belongs to someone else. Send your own command.")
        callback_answer.show_alert = True
        return
    picker = await generations.open(
        user_id=account.id, chat_id=generation.chat_id,
        request_message_id=generation.request_message_id, kind=generation.kind,
        prompt=generation.prompt, model=model, options=generation.options)
    text, markup = render(picker)
    sent = await query.message.answer(text, reply_markup=markup)
    await store.set_picker_message(picker.draft.id, sent.message_id)


async def _edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await query.message.edit_text(text, reply_markup=markup)  # type: ignore[union-attr]
    except TelegramBadRequest as error:
        if not is_not_modified(error):
            raise


def make_router() -> Router:
    router = Router(name="generate")
    router.message.register(image, Command("image"))
    router.callback_query.register(press, Pick.filter())
    router.callback_query.register(again, Again.filter())
    return router
