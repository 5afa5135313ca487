"""Pictures people give as input: found in a request, checked, fetched from Telegram and
handed to Kie.ai's upload host.

A Telegram file URL holds the bot token, so the bytes travel through the bot and only Kie's own
URL for them goes into a task. Nothing is fetched before the generation is paid for: a picker
that is cancelled costs no download.
"""

from __future__ import annotations

import io
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Message, PhotoSize
from aiohttp import ClientError

from bot.errors import BotError, Refusal
from bot.i18n import N_
from bot.kie import KieClient

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Kie's edit models take pictures of at most 10 MB (kie-api.md); Telegram lets a bot fetch at
# most 20 MB with getFile, so Kie's limit is the one that binds.
MAX_PICTURE_BYTES = 10 * MB
# What Kie's image inputs accept (jpeg/png/webp), by the type a document declares.
PICTURE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
DOWNLOAD_TIMEOUT = 60

NOT_A_PICTURE = N_("That file is not a picture. Send a photo, or a JPEG, PNG or WebP file.")
TOO_LARGE = N_("That picture is too large: at most {size} MB.")


class PictureError(BotError):
    """The picture could not be handed to Kie; `reason` is the generation's failure code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def find_picture(message: Message) -> str | None:
    """The Telegram file id of the picture a request is about: the message's own photo or
    picture file (a caption command), else the one it replies to. A file that cannot be a
    picture, or one too large, is refused here, before anything is shown or charged."""
    for source in (message, message.reply_to_message):
        if source is None:
            continue
        if source.photo:
            largest = max(source.photo, key=_area)
            _check_size(largest.file_size)
            return largest.file_id
        if source.document is not None:
            if source.document.mime_type not in PICTURE_TYPES:
                raise Refusal(NOT_A_PICTURE)
            _check_size(source.document.file_size)
            return source.document.file_id
    return None


def _area(size: PhotoSize) -> int:
    return size.width * size.height


def _check_size(size: int | None) -> None:
    if size is not None and size > MAX_PICTURE_BYTES:
        raise Refusal(TOO_LARGE, size=MAX_PICTURE_BYTES // MB)


def picture_type(data: bytes) -> str | None:
    """The picture's MIME type by its first bytes (what a file claims is not trusted)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class Pictures:
    def __init__(self, bot: Bot, kie: KieClient) -> None:
        self.bot = bot
        self.kie = kie

    async def upload(self, file_id: str) -> str:
        """Fetch the picture from Telegram and upload it to Kie; returns Kie's URL for it.
        Raises PictureError, or KieError when Kie's upload host refuses."""
        data = await self._download(file_id)
        mime_type = picture_type(data)
        if mime_type is None:
            raise PictureError("picture_unreadable")
        return await self.kie.upload_file(data, filename=f"input.{PICTURE_TYPES[mime_type]}",
                                          mime_type=mime_type)

    async def _download(self, file_id: str) -> bytes:
        # Errors are logged by type only: aiohttp's would quote the file URL, token and all.
        try:
            file = await self.bot.get_file(file_id)
            if file.file_size is not None and file.file_size > MAX_PICTURE_BYTES:
                raise PictureError("picture_too_large")
            if not file.file_path:
                raise PictureError("picture_unreadable")
            buffer = io.BytesIO()
            await self.bot.download_file(file.file_path, buffer, timeout=DOWNLOAD_TIMEOUT)
        except TelegramBadRequest as error:
            too_big = "too big" in error.message.lower()
            log.warning("getFile refused the input picture: %s", error.message)
            raise PictureError("picture_too_large" if too_big else "picture_unreadable") from None
        except (TimeoutError, TelegramAPIError, ClientError) as error:
            log.warning("the input picture could not be fetched from Telegram (%s)",
                        type(error).__name__)
            raise PictureError("picture_unavailable") from None
        data = buffer.getvalue()
        if len(data) > MAX_PICTURE_BYTES:
            raise PictureError("picture_too_large")
        return data
