"""Delivery: results back into the chat they were asked in, once, whatever Telegram says.

By URL first (Telegram fetches it); when Telegram refuses, the bot downloads the file itself
(streamed to a temporary file, size and type checked) and uploads it; past the upload limit,
the user gets the links.
"""

from __future__ import annotations

import html
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
)
from aiogram.types import FSInputFile, InlineKeyboardMarkup, InputMediaDocument, InputMediaPhoto
from aiogram.utils.i18n import I18n

from bot import texts
from bot.keyboards import again_keyboard
from bot.kie import KieClient
from bot.kie.errors import KieError
from bot.services.notifier import Notifier, model_name
from bot.services.telegram import reply_kwargs, with_retry
from bot.store import Generation, GenerationState, Store

log = logging.getLogger(__name__)

MB = 1024 * 1024
PHOTO_UPLOAD_LIMIT = 10 * MB
UPLOAD_LIMIT = 50 * MB
CHUNK = 256 * 1024


class DownloadError(Exception):
    pass


@dataclass(frozen=True)
class Result:
    caption: str
    balance: str
    markup: InlineKeyboardMarkup

    @property
    def full_caption(self) -> str:
        return f"{self.caption}\n{self.balance}"


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int


class Delivery:
    def __init__(self, bot: Bot, store: Store, kie: KieClient, notifier: Notifier, i18n: I18n,
                 http: httpx.AsyncClient) -> None:
        self.bot = bot
        self.store = store
        self.kie = kie
        self.notifier = notifier
        self.i18n = i18n
        # Its own client: result hosts must never see the Kie API key.
        self.http = http

    async def deliver(self, generation: Generation) -> None:
        user = await self.store.get_user(generation.user_id)
        balance = user.balance if user else 0
        with self.i18n.use_locale(await self.notifier.locale(generation.user_id)):
            result = Result(texts.result_caption(model_name(generation), generation.prompt),
                            texts.balance_line(balance), again_keyboard(generation.id))
            done = texts.done_line(model_name(generation),
                                   (generation.finished_at or 0) - generation.created_at)
        try:
            await self._send(generation, result)
        except TelegramForbiddenError:
            log.info("generation %s: user %s cannot be reached", generation.id, generation.user_id)
            await self.store.set_blocked(generation.user_id)
            await self.store.mark_delivered(generation.id, GenerationState.UNDELIVERABLE)
            return
        except TelegramAPIError:
            # Stays `succeeded`: the next start sends it again.
            log.exception("generation %s: not delivered", generation.id)
            return
        await self.store.mark_delivered(generation.id, GenerationState.DELIVERED)
        await self.notifier.finished(generation, done)

    async def _send(self, generation: Generation, result: Result) -> None:
        urls = generation.result_urls
        try:
            await self._send_media(generation, list(urls), result, as_document=False)
            return
        except (TelegramBadRequest, TelegramEntityTooLarge) as error:
            log.info("generation %s: Telegram refused the URL (%s); uploading", generation.id, error)
        with tempfile.TemporaryDirectory(prefix="delivery-") as folder:
            try:
                files = [await self._download(url, Path(folder) / str(n), generation.kind)
                         for n, url in enumerate(urls)]
            except DownloadError as error:
                log.warning("generation %s: download failed: %s", generation.id, error)
            else:
                as_document = any(f.size > PHOTO_UPLOAD_LIMIT for f in files)
                try:
                    await self._send_media(generation, [FSInputFile(f.path) for f in files],
                                           result, as_document=as_document)
                    return
                except (TelegramBadRequest, TelegramEntityTooLarge) as error:
                    log.warning("generation %s: upload refused: %s", generation.id, error)
        links = "\n".join(f'<a href="{html.escape(url)}">{n}</a>' for n, url in enumerate(urls, 1))
        await with_retry(lambda: self.bot.send_message(
            generation.chat_id, f"{result.full_caption}\n{links}", reply_markup=result.markup,
            **reply_kwargs(generation.request_message_id)))

    async def _send_media(self, generation: Generation, media: list[str | FSInputFile],
                          result: Result, *, as_document: bool) -> None:
        chat_id, reply = generation.chat_id, reply_kwargs(generation.request_message_id)
        if len(media) == 1:
            send = self.bot.send_document if as_document else self.bot.send_photo
            key = "document" if as_document else "photo"
            await with_retry(lambda: send(chat_id, **{key: media[0]}, caption=result.full_caption,
                                          reply_markup=result.markup, **reply))
            return
        item = InputMediaDocument if as_document else InputMediaPhoto
        # An album cannot carry buttons: its first item carries the caption, then the balance
        # and the buttons follow in a message of their own.
        album = [item(media=m, caption=result.caption if n == 0 else None)
                 for n, m in enumerate(media)]
        await with_retry(lambda: self.bot.send_media_group(chat_id, media=album, **reply))
        await with_retry(lambda: self.bot.send_message(chat_id, result.balance,
                                                       reply_markup=result.markup))

    async def _download(self, url: str, target: Path, kind: str) -> Downloaded:
        """Fetch a result; when Kie's URL itself fails, ask Kie for a fresh download link."""
        try:
            return await self._fetch(url, target, kind)
        except DownloadError as first:
            try:
                fresh = await self.kie.download_url(url)
            except KieError as error:
                raise DownloadError(f"{first}; download-url: {error}") from error
            return await self._fetch(fresh, target, kind)

    async def _fetch(self, url: str, target: Path, kind: str) -> Downloaded:
        try:
            async with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise DownloadError(f"HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
                if not content_type.startswith(f"{kind}/"):
                    raise DownloadError(f"not an {kind}: {content_type or 'no content type'}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > UPLOAD_LIMIT:
                    raise DownloadError(f"too large: {declared} bytes")
                size = 0
                with target.open("wb") as file:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > UPLOAD_LIMIT:
                            raise DownloadError(f"too large: over {UPLOAD_LIMIT} bytes")
                        file.write(chunk)
        except httpx.HTTPError as error:
            raise DownloadError(type(error).__name__) from error
        return Downloaded(target, size)
