"""/image, /video and /music, their picker, and what follows a result: 🔁 Again at one tap,
✏️ Edit and 🎬 Animate a picture, another model after a failure."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.catalog import COMMANDS, models_of
from bot.errors import Refusal
from bot.handlers.compose import ask
from bot.handlers.history import EXPIRED
from bot.handlers.picker import edit, open_picker, render, send_picker
from bot.i18n import N_
from bot.keyboards import (
    Again,
    CancelGeneration,
    Follow,
    Pick,
    buy_credits_button,
    short_keyboard,
)
from bot.services.delivery import Delivery, Expired
from bot.services.generation import Generations, PickerChanged, ShortOfCredits
from bot.services.pictures import find_picture
from bot.services.private import send_privately
from bot.store import Store, User

log = logging.getLogger(__name__)

KIND_OF_COMMAND = {command: kind for kind, command in COMMANDS.items()}


async def generate(message: Message, *, command: CommandObject, account: User,
                   generations: Generations, store: Store, bot: Bot) -> None:
    kind = KIND_OF_COMMAND[command.command.lower()]
    prompt = (command.args or "").strip()
    # A photo in the request or the message it replies to is the input, for kinds that take one.
    picture = find_picture(message) if models_of(kind, picture=True) else None
    if not prompt:  # the words are asked for; the answer opens the picker
        asked = await store.create_prompt(user_id=account.id, chat_id=message.chat.id,
                                          message_id=message.message_id, picture=picture)
        await ask(bot, message.chat.id, asked, kind, account=account, store=store)
        return
    await open_picker(message, account, generations, store, kind=kind, prompt=prompt,
                      picture=picture)


async def press(query: CallbackQuery, *, callback_data: Pick, account: User, is_admin: bool,
                generations: Generations, callback_answer: CallbackAnswer, bot: Bot,
                store: Store) -> None:
    if callback_data.act == "go":
        try:
            generation, model = await generations.charge(
                callback_data.draft, account.id, callback_data.val, exempt=is_admin)
        except PickerChanged as changed:  # show what ✅ buys now, then refuse the press
            await edit(query, *render(changed.picker))
            raise
        except ShortOfCredits as short:
            await short_of_credits(bot, query, account, short)
            raise
        # The charge is made: whatever Telegram says to the press's answer (flood control, a
        # press too old), the task is submitted — in the background, as it may wait for Kie.
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
        await edit(query, "✖ " + _("Cancelled."), None)
    else:
        await edit(query, *render(picker))


async def again(query: CallbackQuery, *, callback_data: Again, account: User, is_admin: bool,
                generations: Generations, store: Store, bot: Bot) -> None:
    """🔁 Again · N: charged and started at this one tap, at the price the button shows."""
    if query.message is None:
        raise Refusal(texts.OUTDATED)
    try:
        generation, model = await generations.again(
            callback_data.generation, user_id=account.id, chat_id=query.message.chat.id,
            price=callback_data.price, exempt=is_admin)
    except PickerChanged as changed:  # the price or the model changed: the picker instead
        await send_picker(bot, query.message.chat.id, changed.picker, store)
        raise
    except ShortOfCredits as short:
        await short_of_credits(bot, query, account, short)
        raise
    generations.submit_soon(generation, model)


async def follow(query: CallbackQuery, *, callback_data: Follow, account: User,
                 generations: Generations, store: Store, bot: Bot, delivery: Delivery) -> None:
    """✏️ Edit / 🎬 Animate a delivered picture (the words asked for next), or another model
    for a failed request."""
    if query.message is None:
        raise Refusal(texts.OUTDATED)
    old = await generations.owned_generation(callback_data.generation, account.id)
    chat_id = query.message.chat.id
    if callback_data.act == "original":
        try:
            await delivery.send_original(old, chat_id=chat_id, reply_to=query.message.message_id)
        except Expired:
            raise Refusal(EXPIRED) from None
        return
    if callback_data.act == "models":
        picker = await generations.reopen(old, chat_id=chat_id, remembered=False)
        await send_picker(bot, chat_id, picker, store)
        return
    picture = find_picture(query.message) if isinstance(query.message, Message) else None
    if picture is None or not models_of(callback_data.act, picture=True):
        raise Refusal(N_("This picture cannot be used here. Send it to me as a photo."))
    prompt = await store.create_prompt(user_id=account.id, chat_id=chat_id,
                                       message_id=query.message.message_id, picture=picture)
    await ask(bot, chat_id, prompt, callback_data.act, account=account, store=store)


async def short_of_credits(bot: Bot, query: CallbackQuery, account: User,
                           short: ShortOfCredits) -> None:
    """Besides the press's alert, a message that stays: the price, the balance, ⭐ Buy
    credits and a model the balance pays. Kept private in a group (money is)."""
    markup = (short_keyboard(short.draft.id, short.cheaper, buy_credits_button())
              if short.draft is not None  # a follow-up (⬆️ ➕) has no picker to go back to
              else InlineKeyboardMarkup(inline_keyboard=[[buy_credits_button()]]))
    text = texts.short_of_credits(short.price, short.balance, short.cheaper)
    if isinstance(query.message, Message):
        await send_privately(bot, account, query.message, text, markup)
    else:  # a press on a message too old for Telegram to include
        await bot.send_message(account.id, text, reply_markup=markup)


async def cancel(query: CallbackQuery, *, callback_data: CancelGeneration, account: User,
                 generations: Generations) -> None:
    await generations.cancel(callback_data.generation, account.id)


def make_router() -> Router:
    router = Router(name="generate")
    router.message.register(generate, Command(*KIND_OF_COMMAND))
    router.callback_query.register(press, Pick.filter())
    router.callback_query.register(again, Again.filter())
    router.callback_query.register(follow, Follow.filter())
    router.callback_query.register(cancel, CancelGeneration.filter())
    return router
