"""Calling Telegram when it misbehaves: flood control waited out, server trouble retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypedDict, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 5
LONGEST_RETRY_AFTER = 120


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS, *,
                     retry_server_errors: bool = True) -> T:
    """Run a Bot API call; on 429 wait exactly `retry_after`, on 5xx/network back off (unless
    the caller has a retry schedule of its own, as the tracker has for deliveries)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TelegramRetryAfter as error:
            if attempt == attempts or error.retry_after > LONGEST_RETRY_AFTER:
                raise
            log.info("Telegram flood control: waiting %ss", error.retry_after)
            await asyncio.sleep(error.retry_after)
        except (TelegramServerError, TelegramNetworkError) as error:
            if attempt == attempts or not retry_server_errors:
                raise
            delay = min(2 ** attempt, 30)
            log.warning("Telegram error (%s); retry in %ss", type(error).__name__, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def is_not_modified(error: TelegramBadRequest) -> bool:
    return "message is not modified" in error.message


def is_message_gone(error: TelegramBadRequest) -> bool:
    text = error.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text


async def edit_or_send(bot: Bot, chat_id: int, message_id: int | None, text: str, *,
                       reply_to: int | None = None,
                       markup: InlineKeyboardMarkup | None = None,
                       attempts: int = ATTEMPTS) -> int | None:
    """Edit a message of ours; when it is gone, send a new one. Returns the message's id,
    None when the text was unchanged."""
    if message_id is not None:
        try:
            await with_retry(lambda: bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup), attempts)
            return message_id
        except TelegramBadRequest as error:
            if is_not_modified(error):
                return None
            if not is_message_gone(error):
                raise
    message: Message = await with_retry(lambda: bot.send_message(
        chat_id, text, reply_markup=markup, **reply_kwargs(reply_to)), attempts)
    return message.message_id


class ReplyKwargs(TypedDict, total=False):
    reply_parameters: ReplyParameters


def reply_kwargs(message_id: int | None) -> ReplyKwargs:
    """Reply to the request when it still exists; send anyway when it was deleted."""
    if message_id is None:
        return {}
    return {"reply_parameters": ReplyParameters(message_id=message_id,
                                                allow_sending_without_reply=True)}
