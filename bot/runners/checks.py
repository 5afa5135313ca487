"""Start-up checks, before anything else starts: Telegram takes BOT_TOKEN, Kie.ai takes the keys.

A refused setting is a SettingRefused, which `python -m bot` prints as one line before exit 2.
A service that does not answer is not the setting's fault: Telegram is waited for as long as it
takes (the bot is nothing without it), Kie.ai is asked a few times and then passed with a
warning (the tracker and the creates cope with it being away for a while).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramUnauthorizedError

from bot.config import KieSettings
from bot.errors import SettingRefused
from bot.kie import KieClient
from bot.kie.client import key_id
from bot.kie.errors import KieAuthError, KieError, KieInsufficientCredits
from bot.services.telegram import with_retry

log = logging.getLogger(__name__)

# getMe is tried until Telegram answers: with_retry logs each retry, its delay growing to 30 s.
UNTIL_TELEGRAM_ANSWERS = sys.maxsize


async def run_checks(bot: Bot, kie: KieClient, kie_settings: KieSettings) -> None:
    """Telegram first (a wrong token ends it before Kie is asked anything), then Kie.ai."""
    await check_telegram(bot)
    await check_kie(kie, kie_settings)


async def check_telegram(bot: Bot) -> None:
    """getMe (aiogram keeps the answer: polling does not ask again)."""
    try:
        await with_retry(bot.me, UNTIL_TELEGRAM_ANSWERS)
    except TelegramUnauthorizedError:
        raise SettingRefused("BOT_TOKEN was refused by Telegram (401 Unauthorized): check it "
                             "with @BotFather") from None
    except TelegramAPIError as error:  # 404: a token Telegram cannot read, or not the Bot API
        raise SettingRefused(f"Telegram refused getMe ({error.message}): check BOT_TOKEN and "
                             "TELEGRAM_API_URL") from None
    except ClientDecodeError:
        raise SettingRefused("TELEGRAM_API_URL answered getMe with something that is not the "
                             "Bot API's JSON") from None


async def check_kie(kie: KieClient, settings: KieSettings) -> None:
    """Every key once on the credit endpoint, at the same time (each read retried by the client
    a few times when Kie.ai does not answer). KIE_API_KEY refused: SettingRefused, whatever the
    other keys say (it is the account /kie reads, and the key of tasks that name none). A
    KIE_API_KEYS key refused: a warning naming its place in the list, and the bot goes on
    without it, on KIE_API_KEY at least. No credits (402) is not a refusal: a warning."""
    names: dict[str, str] = {key_id(settings.api_key): "KIE_API_KEY"}
    for place, secret in enumerate(settings.api_keys, 1):
        names.setdefault(key_id(secret), f"KIE_API_KEYS key #{place}")
    answers = await asyncio.gather(*(_credits(kie, key) for key in names))
    for (key, name), answer in zip(names.items(), answers, strict=True):  # KIE_API_KEY first
        if isinstance(answer, KieAuthError):
            if name == "KIE_API_KEY":
                raise SettingRefused(f"KIE_API_KEY was refused by Kie.ai ({answer.code}): check "
                                     "it at https://kie.ai/api-key")
            kie.retire(key)
            log.warning("%s was refused by Kie.ai (%s): the bot goes on without it", name,
                        answer.code)
        elif isinstance(answer, KieInsufficientCredits):
            log.warning("the Kie.ai account of %s has no credits left: its generations fail "
                        "until it is topped up", name)
        elif isinstance(answer, KieError):
            log.warning("the Kie.ai check of %s failed (%s); starting anyway", name, answer)


async def _credits(kie: KieClient, key: str) -> float | KieError:
    try:
        return await kie.get_credits(key)
    except KieError as error:
        return error
