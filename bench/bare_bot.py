"""`python -m bench.bare_bot`: the reference, a bare aiogram bot that answers every update (a
message or a button press) with one message. It talks to the Bot API the way the real bot does
(the same session, TELEGRAM_API_URL, HTML parse mode, long polling) and does nothing else, so
the real bot's figures beside it show what its own work costs."""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import CallbackQuery, Message

ANSWER = "ok"


async def on_message(message: Message, bot: Bot) -> None:
    await bot.send_message(message.chat.id, ANSWER)


async def on_press(query: CallbackQuery, bot: Bot) -> None:
    if query.message is not None:
        await bot.send_message(query.message.chat.id, ANSWER)


async def run() -> None:
    api = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
    bot = Bot(os.environ["BOT_TOKEN"],
              session=AiohttpSession(api=TelegramAPIServer.from_base(api)),
              default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                           link_preview_is_disabled=True))
    dp = Dispatcher()
    dp.message.register(on_message)
    dp.callback_query.register(on_press)
    await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run())
