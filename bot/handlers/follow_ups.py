"""⬆️ Upscale and ➕ Extend under a delivered result: charged and started at one tap."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery

from bot import texts
from bot.errors import Refusal
from bot.handlers.generate import short_of_credits
from bot.keyboards import FollowUp
from bot.services.delivery import result_markup
from bot.services.generation import Generations, PriceChanged, ShortOfCredits
from bot.services.offers import current_offer
from bot.store import Store, User

log = logging.getLogger(__name__)


async def follow_up(query: CallbackQuery, *, callback_data: FollowUp, account: User,
                    is_admin: bool, generations: Generations, store: Store, bot: Bot) -> None:
    """The follow-up replies to the result pressed, in the chat where it was pressed."""
    if query.message is None:
        raise Refusal(texts.OUTDATED)
    try:
        generation, model = await generations.follow_up(
            callback_data.generation, user_id=account.id, role=callback_data.role,
            file=callback_data.file, price=callback_data.price, chat_id=query.message.chat.id,
            request_message_id=query.message.message_id, exempt=is_admin)
    except PriceChanged:  # the buttons redrawn at today's prices, then the press refused
        source = await store.get_generation(callback_data.generation)
        if source is not None:
            try:
                await bot.edit_message_reply_markup(
                    chat_id=query.message.chat.id, message_id=query.message.message_id,
                    reply_markup=result_markup(source, await current_offer(store)))
            except TelegramAPIError as error:
                log.info("%s: its buttons were not redrawn: %s", source, error)
        raise
    except ShortOfCredits as short:
        await short_of_credits(bot, query, account, short)
        raise
    generations.submit_soon(generation, model)


def make_router() -> Router:
    router = Router(name="follow_ups")
    router.callback_query.register(follow_up, FollowUp.filter())
    return router
