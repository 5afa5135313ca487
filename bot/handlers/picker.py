"""The picker message: drawn from a Picker, sent in reply to a request, or put in place of a
pressed message; its edits wait out a short flood control."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import EditMessageText
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import texts
from bot.errors import Refusal
from bot.keyboards import improve_button, models_keyboard, options_keyboard
from bot.services.generation import Generations, Picker
from bot.services.telegram import is_not_modified, with_retry
from bot.store import Store, User

# The longest flood-control wait a picker edit sits out while the pressed button spins.
EDIT_RETRY_WAIT = 3


def render(picker: Picker) -> tuple[str, InlineKeyboardMarkup]:
    draft, model = picker.draft, picker.model
    improve = (None if picker.improve_price is None
               else improve_button(draft.id, draft.revision, picker.improve_price))
    if model is None:
        text = texts.picker_models(draft.kind, draft.prompt, picture=draft.picture is not None)
        markup = models_keyboard(draft.id, picker.models, improve=improve)
    else:
        text = texts.picker_options(model, draft.prompt, picker.choices, picker.price,
                                    picture=draft.picture is not None)
        markup = options_keyboard(draft.id, draft.revision, model, picker.choices,
                                  price=picker.price, can_go_back=len(picker.models) > 1,
                                  improve=improve)
    if picker.too_long:
        text += "\n\n" + texts.too_long_line(picker.too_long, len(draft.prompt))
    return text, markup


async def open_picker(message: Message, account: User, generations: Generations, store: Store,
                      *, kind: str, prompt: str, picture: str | None) -> None:
    """A new picker, in reply to the person's `message`."""
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


async def send_picker(bot: Bot, chat_id: int, picker: Picker, store: Store) -> None:
    """A new picker as a message of its own (a result it follows stays as it is)."""
    text, markup = render(picker)
    sent = await with_retry(lambda: bot.send_message(chat_id, text, reply_markup=markup),
                            retry_server_errors=False)
    await store.set_picker_message(picker.draft.id, sent.message_id)


async def show_picker(query: CallbackQuery, picker: Picker, store: Store) -> None:
    """A new picker in place of the pressed message (the kinds to choose from)."""
    await edit(query, *render(picker))
    if query.message is not None:
        await store.set_picker_message(picker.draft.id, query.message.message_id)


class _UnreadEdit(EditMessageText):
    """editMessageText whose answer, the message as edited, is left unread: plain JSON, not
    parsed into a Message with every button of its keyboard (the dearest part of a press's
    CPU in bench.updates' profile). The edit's errors are raised as any call's."""

    __returning__ = dict[str, Any] | bool


async def edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None, *,
                retried: bool = False) -> None:
    message = query.message
    if message is None:  # too old for Telegram to include: nothing to edit
        return
    try:
        await _UnreadEdit(chat_id=message.chat.id, message_id=message.message_id, text=text,
                          reply_markup=markup).as_(query.bot)
    except TelegramBadRequest as error:
        if not is_not_modified(error):
            raise
    except TelegramRetryAfter as error:
        # Flood control in this chat: one short wait; past that the press's alert asks the
        # person to press again (the draft already holds the change).
        if retried or error.retry_after > EDIT_RETRY_WAIT:
            raise Refusal(texts.SLOW_DOWN) from None
        await asyncio.sleep(error.retry_after)
        await edit(query, text, markup, retried=True)
