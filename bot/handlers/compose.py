"""Prompt first: a text or photo sent without a command gets the kinds to choose from, and a
kind chosen without words asks for them (ForceReply); the answer opens the picker."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, ForceReply, Message, ReplyParameters

from bot import texts
from bot.catalog import KINDS, models_of
from bot.errors import Refusal
from bot.handlers.filters import on_loop
from bot.handlers.picker import open_picker, show_picker
from bot.i18n import N_
from bot.keyboards import Compose, compose_keyboard
from bot.services.generation import Generations
from bot.services.pictures import find_picture
from bot.services.telegram import with_retry
from bot.store import Prompt, Store, User


def kinds_for(picture: bool) -> list[str]:
    """The kinds a prompt can become: with a picture, those with a model that takes one."""
    return [kind for kind in KINDS if models_of(kind, picture=picture)] if picture else list(KINDS)


async def plain(message: Message, account: User, store: Store) -> None:
    """Private text or photo without a command: what should it become?"""
    picture = find_picture(message)
    text = (message.text or message.caption or "").strip() or None
    kinds = kinds_for(picture is not None)
    if not kinds:
        raise Refusal(N_("No model here takes a picture as input. Send the command without one."))
    prompt = await store.create_prompt(user_id=account.id, chat_id=message.chat.id,
                                       message_id=message.message_id, text=text, picture=picture)
    reply = message.as_reply_parameters(allow_sending_without_reply=True)
    await with_retry(lambda: message.answer(
        texts.compose_question(text, picture=picture is not None),
        reply_markup=compose_keyboard(prompt.id, kinds, picture=picture is not None),
        reply_parameters=reply), retry_server_errors=False)


async def chosen(query: CallbackQuery, *, callback_data: Compose, account: User, store: Store,
                 generations: Generations, bot: Bot) -> None:
    """A kind pressed: the picker for the stored words, or a question asking for them."""
    if query.message is None:
        raise Refusal(texts.OUTDATED)
    chat_id = query.message.chat.id
    if callback_data.prompt:
        prompt = await store.get_prompt(callback_data.prompt)
        if prompt is None:
            raise Refusal(N_("This menu has expired. Send the command again."))
        if prompt.user_id != account.id:
            raise Refusal(texts.NOT_YOURS)
    else:  # /start's buttons: nothing stored yet
        prompt = await store.create_prompt(user_id=account.id, chat_id=chat_id, message_id=None)
    if prompt.text is None:
        await ask(bot, chat_id, prompt, callback_data.kind, account=account, store=store)
        return
    picker = await generations.open(
        user_id=account.id, chat_id=prompt.chat_id, request_message_id=prompt.message_id,
        kind=callback_data.kind, prompt=prompt.text, picture=prompt.picture)
    # The kinds' message becomes the picker (one message, as a command's picker is).
    await show_picker(query, picker, store)


async def ask(bot: Bot, chat_id: int, prompt: Prompt, kind: str, *, account: User,
              store: Store) -> None:
    """Ask for the words with a ForceReply (the person's client replies to the question);
    only this person's answer is taken (`answered`). In a group the question replies to
    their message or names them: ForceReply's `selective` then shows it to them alone."""
    private = chat_id == account.id
    question = texts.ask_for_prompt(kind, picture=prompt.picture is not None,
                                    mention=None if private or prompt.message_id
                                    else (account.id, account.first_name))
    reply = (ReplyParameters(message_id=prompt.message_id, allow_sending_without_reply=True)
             if prompt.message_id else None)
    sent = await with_retry(lambda: bot.send_message(
        chat_id, question, reply_parameters=reply,
        reply_markup=ForceReply(force_reply=True, selective=True,
                                input_field_placeholder=texts.prompt_placeholder(kind))),
        retry_server_errors=False)
    await store.set_question(prompt.id, kind=kind, question_id=sent.message_id)


async def answered(message: Message, account: User, store: Store,
                   generations: Generations) -> None:
    """A reply to one of the bot's messages: the words a question asked for, else (in a
    private chat) a prompt like any other text."""
    asked = message.reply_to_message
    prompt = await store.answered_prompt(message.chat.id, asked.message_id) if asked else None
    if prompt is None or prompt.kind is None:
        if message.chat.type == ChatType.PRIVATE:
            await plain(message, account, store)
        return
    if prompt.user_id != account.id:
        raise Refusal(N_("That question was for someone else. Send your own command, "
                         "for example /image a red fox in the snow."))
    text = (message.text or message.caption or "").strip()
    if not text:
        raise Refusal(N_("Send the description as text, in reply to my question."))
    picture = prompt.picture or find_picture(message)
    await open_picker(message, account, generations, store, kind=prompt.kind, prompt=text,
                      picture=picture if models_of(prompt.kind, picture=True) else None)


async def not_a_command(message: Message) -> bool:
    return not (message.text or message.caption or "").startswith("/")


def make_router() -> Router:
    router = Router(name="compose")
    router.callback_query.register(chosen, Compose.filter())
    words = on_loop(F.text | F.photo | F.document)
    router.message.register(answered, on_loop(F.reply_to_message.from_user.is_bot),
                            not_a_command, words)
    router.message.register(plain, on_loop(F.chat.type == ChatType.PRIVATE), not_a_command,
                            words)
    return router
