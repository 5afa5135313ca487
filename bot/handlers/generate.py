"""/image, /video and /music, their picker, and 🔁 Again."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.catalog import COMMANDS, get_model, models_of
from bot.errors import Refusal
from bot.i18n import N_
from bot.keyboards import Again, Pick, models_keyboard, options_keyboard
from bot.services.generation import Generations, Picker, PickerChanged
from bot.services.pictures import find_picture
from bot.services.telegram import is_not_modified, with_retry
from bot.store import Store, User

log = logging.getLogger(__name__)

KIND_OF_COMMAND = {command: kind for kind, command in COMMANDS.items()}
# The longest flood-control wait a picker edit sits out while the pressed button spins.
EDIT_RETRY_WAIT = 3


def render(picker: Picker) -> tuple[str, InlineKeyboardMarkup]:
    draft, model = picker.draft, picker.model
    if model is None:
        return (texts.picker_models(draft.kind, draft.prompt, picture=draft.picture is not None),
                models_keyboard(draft.id, picker.models))
    return (texts.picker_options(model, draft.prompt, picker.choices, picker.price,
                                 picture=draft.picture is not None),
            options_keyboard(draft.id, draft.revision, model, picker.choices, price=picker.price,
                             can_go_back=len(picker.models) > 1))


async def generate(message: Message, command: CommandObject, account: User,
                   generations: Generations, store: Store) -> None:
    kind = KIND_OF_COMMAND[command.command.lower()]
    prompt = (command.args or "").strip()
    if not prompt:
        await message.answer(texts.generate_usage(f"/{command.command.lower()}"))
        return
    # A photo in the request or the message it replies to is the input, for kinds that take one.
    picture = find_picture(message) if models_of(kind, picture=True) else None
    picker = await generations.open(user_id=account.id, chat_id=message.chat.id,
                                    request_message_id=message.message_id, kind=kind,
                                    prompt=prompt, picture=picture)
    text, markup = render(picker)
    # A reply, sent anyway when the request was deleted before the picker was ready.
    reply = message.as_reply_parameters(allow_sending_without_reply=True)
    # Flood control in this chat is waited out: the command is not lost to it (a 5xx is not
    # retried here: the picker may have been sent, and the person can send the command again).
    sent = await with_retry(lambda: message.answer(text, reply_markup=markup,
                                                   reply_parameters=reply),
                            retry_server_errors=False)
    await store.set_picker_message(picker.draft.id, sent.message_id)


async def press(query: CallbackQuery, *, callback_data: Pick, account: User, is_admin: bool,
                generations: Generations, callback_answer: CallbackAnswer) -> None:
    if callback_data.act == "go":
        try:
            generation, model = await generations.charge(
                callback_data.draft, account.id, callback_data.val, exempt=is_admin)
        except PickerChanged as changed:  # show what ✅ buys now, then refuse the press
            await _edit(query, *render(changed.picker))
            raise
        # The charge is made: whatever Telegram says to the answer (flood control, a press
        # too old), the task is submitted — in the background, as it may wait for Kie's budget.
        generations.submit_soon(generation, model)
        callback_answer.disable()
        try:
            await query.answer()
        except TelegramAPIError as error:
            log.warning("%s: the press was not answered: %s", generation, error)
        return
    picker = await generations.press(callback_data.draft, account.id, callback_data.act,
                                     callback_data.val)
    if picker is None:
        await _edit(query, "✖ " + _("Cancelled."), None)
    else:
        await _edit(query, *render(picker))


async def again(query: CallbackQuery, callback_data: Again, account: User,
                generations: Generations, store: Store) -> None:
    generation = await store.get_generation(callback_data.generation)
    model = get_model(generation.model) if generation else None
    if generation is None or model is None or query.message is None:
        raise Refusal(N_("This menu is out of date."))
    if generation.user_id != account.id:
        raise Refusal(N_("This menu belongs to someone else. Send your own command."))
    # The new picker lives where it is shown: the press may come from another chat (a
    # forwarded result, forged data), and its edits and result must go there too.
    chat_id = query.message.chat.id
    picker = await generations.open(
        user_id=account.id, chat_id=chat_id,
        request_message_id=generation.request_message_id if chat_id == generation.chat_id
        else None, kind=generation.kind, prompt=generation.prompt, picture=generation.picture,
        model=model, options=generation.options)
    text, markup = render(picker)
    sent = await query.message.answer(text, reply_markup=markup)
    await store.set_picker_message(picker.draft.id, sent.message_id)


async def _edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None, *,
                retried: bool = False) -> None:
    if query.message is None:  # too old for Telegram to include: nothing to edit
        return
    try:
        await query.message.edit_text(text, reply_markup=markup)  # type: ignore[union-attr]
    except TelegramBadRequest as error:
        if not is_not_modified(error):
            raise
    except TelegramRetryAfter as error:
        # Flood control in this chat: one short wait; past that the press's alert asks the
        # person to press again (the draft already holds the change).
        if retried or error.retry_after > EDIT_RETRY_WAIT:
            raise Refusal(texts.SLOW_DOWN) from None
        await asyncio.sleep(error.retry_after)
        await _edit(query, text, markup, retried=True)


def make_router() -> Router:
    router = Router(name="generate")
    router.message.register(generate, Command(*KIND_OF_COMMAND))
    router.callback_query.register(press, Pick.filter())
    router.callback_query.register(again, Again.filter())
    return router
