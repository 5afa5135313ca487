"""Delivery: results back into the chat they were asked in, once, whatever Telegram says.

Each kind of result has its sender (`SENDERS`: photo, video, audio), one path for all of them.
By URL first (Telegram fetches it); when Telegram refuses, the bot downloads the file itself
(streamed to a temporary file, never held in memory; size and content type checked) and
uploads it; past the upload limit, the user gets the links, and the result counts as
delivered. A group that became a supergroup is followed to its new id; a group that removed
the bot gets nothing, and the person who asked gets the result privately.
Telegram's passing troubles (5xx, flood control, no connection) end an attempt: the tracker
owns the result and tries again later.

A person who blocked the bot keeps the result (Kie made it and was paid): it is recorded as
undeliverable, not refunded.

What Telegram returns of each file sent (its file_id) is stored with the delivery: `resend`
sends a result once more (from /history) by those file_ids, charging nothing, with no download
and no expiry. Only a result Telegram holds no file of (delivered as links, or before file_ids
were stored), or one whose file_id Telegram no longer takes, goes the delivery's own path again
from Kie's links, and says so instead of sending links once those are gone (Kie keeps result
URLs about a day).
"""

from __future__ import annotations

import contextlib
import html
import itertools
import logging
import mimetypes
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    SendAnimation,
    SendAudio,
    SendDocument,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.types import (
    FSInputFile,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    MediaUnion,
    Message,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.catalog import UPSCALE, Offer, get_model
from bot.errors import BotError
from bot.i18n import locale_of
from bot.keyboards import result_keyboard
from bot.kie import KieClient
from bot.kie.errors import KieError
from bot.kie.ratelimit import Priority
from bot.kie.schemas import duration_or_none
from bot.services.background import Running, cancel, spawn
from bot.services.follow_ups import follow_up_buttons
from bot.services.notifier import Notifier, model_name
from bot.services.offers import current_offer
from bot.services.telegram import reply_kwargs, with_retry
from bot.store import DeliveredFile, Generation, GenerationState, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

MB = 1024 * 1024
PHOTO_UPLOAD_LIMIT = 10 * MB
UPLOAD_LIMIT = 50 * MB
CHUNK = 256 * 1024
MAX_REDIRECTS = 3
ALBUM_MAX = 10  # items in one sendMediaGroup
# A chat may move (group → supergroup) or turn the bot away (group → the person's private
# chat): at most this many sends for one attempt.
MAX_HOPS = 3
PASSING = (TelegramServerError, TelegramNetworkError, TelegramRetryAfter)
# A delivery under way holds its row this long (renewed as each send starts); another instance
# takes it over sooner only when this one's process is gone.
DELIVERY_LEASE = 600.0
# How long a media send may take before it counts as failed (and is sent again): an upload of
# 50 MB takes a while, and a process frozen mid-send (a pause, SIGSTOP) wakes to find this
# timer run out though Telegram may have the file: the longer, the fewer such doubles.
SEND_TIMEOUT = 300
# Kie keeps result files about a day (kie-api.md, Retention): older ones cannot be sent.
RESULT_RETENTION = 24 * 3600.0


def kie_keeps(generation: Generation, now: float) -> bool:
    """Whether Kie's links to this result may still work (RESULT_RETENTION)."""
    return now - (generation.finished_at or generation.created_at) <= RESULT_RETENTION


def albums(items: Sequence[T]) -> list[Sequence[T]]:
    """`items` cut into albums of 2-10 (Telegram's bounds), as even as they come: 11 are 5 and
    6, never 10 and a lone one."""
    count = -(-len(items) // ALBUM_MAX)
    cuts = [len(items) * n // count for n in range(count + 1)]
    return [items[start:end] for start, end in itertools.pairwise(cuts)]


def blocked_by_user(error: TelegramForbiddenError) -> bool:
    """403 because the person blocked the bot (or is gone), not because they never opened a
    private chat with it ("can't initiate conversation"), nor a group's doing."""
    message = error.message.lower()
    return "blocked" in message or "deactivated" in message


class DownloadError(BotError):
    pass


class TooLarge(DownloadError):
    """Past the upload limit: a fresh download link would not make it smaller."""


class Expired(BotError):
    """A result sent again whose files can no longer be fetched, not even through Kie's
    download-url: Kie's result URLs typically live about 24 hours (kie-api.md, Retention)."""


@dataclass(frozen=True)
class FileDetails:
    """What the caller knows of one result file (a Suno track's title, its length); a sender
    passes on the ones its kind carries."""

    title: str | None = None
    performer: str | None = None
    duration: float | None = None  # seconds

    def fields(self, names: Sequence[str]) -> dict[str, Any]:
        # The schemas' rule again: a length stored before Kie's answers were checked may be NaN.
        duration = duration_or_none(self.duration)
        values = {"title": self.title, "performer": self.performer,
                  "duration": round(duration) if duration is not None else None}
        return {name: values[name] for name in names if values[name] is not None}


NO_DETAILS = FileDetails()


def file_details(generation: Generation) -> tuple[FileDetails, ...]:
    """What Kie said of each result file (a track's title and length), stored with the result."""
    return tuple(FileDetails(title=f.get("title"), performer=f.get("performer"),
                             duration=f.get("duration")) for f in generation.result_files)


@dataclass(frozen=True)
class Sender:
    """How one kind of result goes to Telegram: alone (`method`, the file in `field`) or in an
    album (`media`). A downloaded file must be of `content_type` (a prefix, e.g. "video/"); an
    upload larger than `upload_limit` goes as a document instead."""

    method: Callable[..., TelegramMethod[Message]]
    media: Callable[..., MediaUnion]
    field: str
    upload_limit: int
    content_type: str = ""
    details: tuple[str, ...] = ()  # the FileDetails fields the method and the media take
    fixed: tuple[tuple[str, Any], ...] = ()  # (parameter, value) sent with every file

    def extras(self, details: FileDetails) -> dict[str, Any]:
        return {**dict(self.fixed), **details.fields(self.details)}


# By generation kind. Telegram allows albums of audios only, and of photos and videos.
SENDERS: dict[str, Sender] = {
    "image": Sender(SendPhoto, InputMediaPhoto, "photo", PHOTO_UPLOAD_LIMIT, "image/"),
    "video": Sender(SendVideo, InputMediaVideo, "video", UPLOAD_LIMIT, "video/", ("duration",),
                    (("supports_streaming", True),)),
    "audio": Sender(SendAudio, InputMediaAudio, "audio", UPLOAD_LIMIT, "audio/",
                    ("title", "performer", "duration")),
}
DOCUMENT = Sender(SendDocument, InputMediaDocument, "document", UPLOAD_LIMIT)
# Telegram may keep a silent video as an animation (a GIF to its clients). An album cannot hold
# one: there it goes as the document it also is.
ANIMATION = Sender(SendAnimation, InputMediaDocument, "animation", UPLOAD_LIMIT)
# A stored file, by its kind (the Message field it came back in, DeliveredFile.kind): sent
# again by file_id with its own method, since Telegram refuses a file_id sent as another kind.
BY_FILE_KIND: dict[str, Sender] = {
    sender.field: sender for sender in (*SENDERS.values(), DOCUMENT, ANIMATION)}
# One file to send: how, and what (a URL, an upload, or a file_id Telegram holds).
Media = tuple[Sender, str | FSInputFile]


def sent_files(messages: Sequence[Message]) -> list[DeliveredFile]:
    """What Telegram holds of a result just sent: each message's file (a photo's largest size),
    in order. An animation is also a document: looked at first."""
    files = []
    for message in messages:
        if message.photo:
            largest = max(message.photo, key=lambda size: size.width * size.height)
            files.append(DeliveredFile("photo", largest.file_id))
            continue
        for kind in ("video", "audio", "animation", "document"):
            if (file := getattr(message, kind)) is not None:
                files.append(DeliveredFile(kind, file.file_id))
                break
    return files


class Outcome(Enum):
    DELIVERED = "delivered"
    UNREACHABLE = "unreachable"   # the person blocked the bot: settled, not refunded
    RETRY = "retry"               # Telegram is having trouble: try again later
    GIVE_UP = "give_up"           # Telegram refuses it for good: refund
    NOT_MINE = "not_mine"         # its lease ran out while this instance was away: another's


def result_markup(generation: Generation, offer: Offer) -> InlineKeyboardMarkup | None:
    """🔁 Again at the price paid (a price changed since opens the picker instead, charging
    nothing); ⬆️ ➕ at their prices in `offer` (services/follow_ups.py); ✏️ 🎬 under a single
    picture, which the press takes as the input. An upscale's result is the full file already:
    no 🔁 (the same upscale again) and no 📎."""
    upscaled = _upscaled(generation)
    return result_keyboard(generation.id, generation.kind, generation.price,
                           picture_in_hand=len(generation.result_urls) == 1,
                           follow_ups=follow_up_buttons(generation, offer),
                           again=not upscaled, original=not upscaled)


def _upscaled(generation: Generation) -> bool:
    model = get_model(generation.model)
    return model is not None and model.role == UPSCALE


@dataclass(frozen=True)
class Result:
    caption: str
    note: str | None  # the line under it: the balance in a private chat; none in a group
    markup: InlineKeyboardMarkup | None
    files: Sequence[FileDetails] = ()  # by position among the result URLs; may be shorter

    def details(self, n: int) -> FileDetails:
        return self.files[n] if n < len(self.files) else NO_DETAILS

    @property
    def full_caption(self) -> str:
        return f"{self.caption}\n{self.note}" if self.note else self.caption


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    filename: str  # what Telegram shows for a document, or an audio without a title


class Delivery:
    def __init__(self, bot: Bot, store: Store, *, kie: KieClient, notifier: Notifier, i18n: I18n,
                 http: httpx.AsyncClient) -> None:
        self.bot = bot
        self.store = store
        self.kie = kie
        self.notifier = notifier
        self.i18n = i18n
        # Its own client: result hosts must never see the Kie API key.
        self.http = http
        self._resends: Running = {}  # /history's re-sends under way, by generation

    async def deliver(self, generation: Generation) -> Outcome:
        """Send the result and record how it went; RETRY and GIVE_UP are the caller's to act on.
        Sent only while this instance still holds the delivery (Store.fence_delivery): one that
        was frozen past its lease leaves it to the instance that took it over."""
        now = time.time()
        if not await self.store.fence_delivery(generation.id, now, now + DELIVERY_LEASE):
            log.warning("%s: no longer this instance's to deliver; left to its new owner",
                        generation)
            return Outcome.NOT_MINE
        user = await self.store.get_user(generation.user_id)  # once: balance and language
        # A group sees no one's balance (money stays private).
        private = generation.chat_id == generation.user_id
        offer = await current_offer(self.store)
        with self.i18n.use_locale(locale_of(user, self.i18n)):
            result = Result(texts.result_caption(model_name(generation), generation.prompt),
                            texts.balance_line(user.balance) if user and private else None,
                            result_markup(generation, offer), file_details(generation))
            done = texts.done_line(model_name(generation),
                                   (generation.finished_at or 0) - generation.created_at)
        try:
            sent_to, files = await self._send_where_reachable(generation, result)
        except TelegramForbiddenError as error:
            # Blocked, or never opened a private chat (a group removed the bot): kept for them,
            # sent when they next /start (resume_undelivered) or from /history.
            log.info("%s: the user cannot be reached: %s", generation, error.message)
            if blocked_by_user(error):
                await self.store.set_blocked(generation.user_id)
            await self.store.mark_delivered(generation.id, GenerationState.UNDELIVERABLE)
            return Outcome.UNREACHABLE
        except PASSING as error:
            log.warning("%s: Telegram trouble while delivering: %s", generation, error)
            return Outcome.RETRY
        except TelegramAPIError:
            log.exception("%s: Telegram refuses the result", generation)
            return Outcome.GIVE_UP
        if files:
            await self.store.save_delivered_files(generation.id, files)
        await self.store.mark_delivered(generation.id, GenerationState.DELIVERED)
        log.info("%s: delivered", generation)
        if sent_to.chat_id == generation.chat_id or sent_to.status_message_id is not None:
            await self.notifier.finished(sent_to, done)
        return Outcome.DELIVERED

    async def resume_undelivered(self, user_id: int, *, deadline: float) -> int:
        """The person opened their private chat: the results they could not be sent while Kie
        still keeps the files go there now (the tracker delivers them, within `deadline`
        seconds). Returns how many."""
        now = time.time()
        count = await self.store.requeue_undeliverable(
            user_id, finished_after=now - RESULT_RETENTION, deliver_by=now + deadline, now=now)
        if count:
            log.info("user %s is reachable again: %d results to deliver", user_id, count)
        return count

    def resend_soon(self, generation: Generation, *, chat_id: int, reply_to: int | None) -> bool:
        """/history's 📤: `resend` in the background, so the press's update is not held while
        the file is fetched (Kie's download-url may wait long for its budget), and the person
        is told there if it cannot be sent. False when a re-send of it is under way already:
        repeated presses do the work once."""
        if generation.id in self._resends:
            return False
        spawn(self._resends, generation.id, self._resend_and_tell(generation, chat_id, reply_to),
              f"resend-{generation.id}")
        return True

    async def _resend_and_tell(self, generation: Generation, chat_id: int,
                               reply_to: int | None) -> None:
        try:
            await self.resend(generation, chat_id=chat_id, reply_to=reply_to,
                              note="📤 " + _("Sent again from /history; nothing charged."))
        except Expired:
            await self._tell(chat_id, "⌛ " + _(
                "{model}: this result has expired (results are kept for about 24 hours). "
                "Nothing was charged.").format(model=html.escape(model_name(generation))))
        except TelegramAPIError:
            log.warning("%s: sending it again failed", generation, exc_info=True)
            await self._tell(chat_id, _("Something went wrong on my side. Your credits are "
                                        "safe; try again in a minute."))

    async def _tell(self, chat_id: int, text: str) -> None:
        with contextlib.suppress(TelegramAPIError):  # the person hears nothing else
            await self.bot.send_message(chat_id, text)

    async def stop(self) -> None:
        await cancel(self._resends.values())

    async def resend(self, generation: Generation, *, chat_id: int, reply_to: int | None,
                     note: str) -> None:
        """Send a delivered (or undeliverable) result once more, into `chat_id`: by the file_ids
        Telegram gave for it, else the way `deliver` sends it (same senders, downloads and
        limits) while Kie keeps its files, storing what Telegram returns for the next time.
        Nothing is charged, no Kie task is made, and the record changes only when this is the
        first time it arrives. `note` is the line under the caption (in place of the balance).
        Raises Expired when the files are gone; Telegram's errors reach the caller, who asked
        just now and can be told."""
        result = Result(texts.result_caption(model_name(generation), generation.prompt), note,
                        result_markup(generation, await current_offer(self.store)),
                        file_details(generation))
        target = replace(generation, chat_id=chat_id, request_message_id=reply_to)
        if not await self._resend_stored(target, result):
            if not generation.result_urls or not kie_keeps(generation, time.time()):
                raise Expired(f"generation {generation.id}: no file in Telegram, Kie's gone")
            files = await self._send(target, result, again=True)
            if files:
                await self.store.save_delivered_files(generation.id, files)
        if generation.state is GenerationState.UNDELIVERABLE:  # received at last
            await self.store.mark_resent(generation.id)

    async def _resend_stored(self, generation: Generation, result: Result) -> bool:
        """By the file_ids stored with the result: no download, no Kie. False when there are
        none, or Telegram refuses them (any 400: a file_id it no longer knows is worded
        several ways, and the link path is the one answer to all of them)."""
        files = await self.store.delivered_files(generation.id)
        if not files:
            return False
        try:
            await self._send_media(generation, [(BY_FILE_KIND[f.kind], f.file_id) for f in files],
                                   result)
        except TelegramBadRequest as error:
            log.info("%s: Telegram refused its stored files (%s); Kie's links instead",
                     generation, error)
            return False
        return True

    async def _send_where_reachable(
            self, generation: Generation, result: Result) -> tuple[Generation, list[DeliveredFile]]:
        """Send into the request's chat, following it to its new id when a group became a
        supergroup, or to the person's private chat when a group removed the bot.
        Returns the generation as sent (its chat may have changed) and the files Telegram
        holds of it."""
        for hop in range(1, MAX_HOPS + 1):
            try:
                return generation, await self._send(generation, result)
            except TelegramMigrateToChat as error:
                if hop == MAX_HOPS:
                    raise
                new_id = error.migrate_to_chat_id
                log.info("%s: chat %s moved to %s", generation, generation.chat_id,
                         new_id)
                await self.store.migrate_chat(generation.chat_id, new_id)
                generation = replace(generation, chat_id=new_id)
            except TelegramForbiddenError:
                if generation.chat_id == generation.user_id or hop == MAX_HOPS:
                    raise
                log.info("%s: chat %s removed the bot; sending privately", generation, generation.chat_id)
                await self.store.set_chat_unreachable(generation.chat_id)
                generation = replace(generation, chat_id=generation.user_id,
                                     request_message_id=None, status_message_id=None)
        raise AssertionError("unreachable")

    async def send_original(self, generation: Generation, *, chat_id: int,
                            reply_to: int | None) -> None:
        """📎 Original: the result's files from Kie as documents (Telegram recompresses a
        photo), free. Raises Expired once Kie no longer keeps them."""
        if not generation.result_urls or not kie_keeps(generation, time.time()):
            raise Expired(f"generation {generation.id}: Kie no longer keeps its files")
        result = Result(texts.result_caption(model_name(generation), generation.prompt),
                        "📎 " + _("The original file"), None, file_details(generation))
        await self._send(replace(generation, chat_id=chat_id, request_message_id=reply_to),
                         result, again=True, sender=DOCUMENT)

    async def _send(self, generation: Generation, result: Result, *, again: bool = False,
                    sender: Sender | None = None) -> list[DeliveredFile]:
        """By URL, else downloaded and uploaded, else the links. Sent `again` (on request, from
        /history): a file that cannot be fetched (not one too large) raises Expired instead,
        since dead links are worth sending only as a first delivery's last resort; and Kie's
        download-url waits behind every status read. Returns the files Telegram now holds
        (none when it got the links)."""
        urls = generation.result_urls
        # An upscale is delivered as a document: its point is its full size, which Telegram
        # would recompress as a photo or a video.
        sender = sender or (DOCUMENT if _upscaled(generation) else SENDERS[generation.kind])
        too_large = False
        try:
            return sent_files(await self._send_media(generation, [(sender, u) for u in urls],
                                                     result))
        except (TelegramBadRequest, TelegramEntityTooLarge) as error:
            log.info("%s: Telegram refused the URL (%s); uploading", generation, error)
        with tempfile.TemporaryDirectory(prefix="delivery-") as folder:
            try:
                files = [await self._download(url, Path(folder) / str(n), sender.content_type,
                                              generation, Priority.POLL if again else Priority.READ)
                         for n, url in enumerate(urls)]
            except DownloadError as error:
                log.warning("%s: download failed: %s", generation, error)
                too_large = isinstance(error, TooLarge)
                if again and not too_large:
                    raise Expired(str(error)) from error
            else:
                upload = DOCUMENT if any(f.size > sender.upload_limit for f in files) else sender
                try:
                    return sent_files(await self._send_media(
                        generation, [(upload, FSInputFile(f.path, filename=f.filename))
                                     for f in files], result))
                except (TelegramBadRequest, TelegramEntityTooLarge) as error:
                    log.warning("%s: upload refused: %s", generation, error)
        links = "\n".join(f'<a href="{html.escape(url)}">{n}</a>' for n, url in enumerate(urls, 1))
        note = f"\n{texts.too_large_line()}" if too_large else ""
        await with_retry(lambda: self.bot.send_message(
            generation.chat_id, f"{result.full_caption}{note}\n{links}", reply_markup=result.markup,
            **reply_kwargs(generation.request_message_id)), retry_server_errors=False)
        return []

    async def _send_media(self, generation: Generation, media: Sequence[Media],
                          result: Result) -> list[Message]:
        """One file: its sender's `method` with the caption and the buttons. Several: one album
        of their senders' `media`, the caption on its first item. Returns the messages that
        carry the files."""
        chat_id, reply = generation.chat_id, reply_kwargs(generation.request_message_id)
        if len(media) == 1:
            [(sender, file)] = media
            single: dict[str, Any] = {
                "chat_id": chat_id, sender.field: file, "caption": result.full_caption,
                "reply_markup": result.markup, **sender.extras(result.details(0)), **reply}
            return [await with_retry(
                lambda: self.bot(sender.method(**single), request_timeout=SEND_TIMEOUT),
                retry_server_errors=False)]
        # An album cannot carry buttons: its first item carries the caption, then the balance
        # and the buttons follow in a message of their own.
        items: list[MediaUnion] = [
            sender.media(media=m, caption=result.caption if n == 0 else None,
                         **sender.extras(result.details(n)))
            for n, (sender, m) in enumerate(media)]
        sent: list[Message] = []
        for album in albums(items):
            sent += await with_retry(partial(self.bot.send_media_group, chat_id, media=list(album),
                                              request_timeout=SEND_TIMEOUT, **reply),
                                     retry_server_errors=False)
        try:
            await with_retry(lambda: self.bot.send_message(chat_id, result.note or "⤴️",
                                                           reply_markup=result.markup),
                             retry_server_errors=False)
        except TelegramAPIError as error:
            # The album is in the chat: sending it again for the sake of its buttons is worse.
            log.warning("%s: the balance line after the album was not sent: %s", generation, error)
        return sent

    async def _download(self, url: str, target: Path, content_type: str,
                        generation: Generation, priority: Priority) -> Downloaded:
        """Fetch a result; when Kie's URL itself fails, ask Kie for a fresh download link
        (through the key that made it, in its person's share of Kie's budget)."""
        try:
            return await self._fetch(url, target, content_type)
        except TooLarge:
            raise
        except DownloadError as first:
            try:
                fresh = await self.kie.download_url(url, key=generation.kie_key,
                                                    owner=generation.user_id, priority=priority)
            except KieError as error:
                raise DownloadError(f"{first}; download-url: {error}") from error
            return await self._fetch(fresh, target, content_type)

    async def _fetch(self, url: str, target: Path, content_type: str) -> Downloaded:
        """Stream one file to `target`, following a few redirects, to http(s) only."""
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                if httpx.URL(url).scheme not in ("http", "https"):
                    raise DownloadError("not an http(s) URL")
                async with self.http.stream("GET", url) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    return await self._save(response, target, content_type)
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                raise DownloadError(type(error).__name__) from error
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    async def _save(response: httpx.Response, target: Path, expected: str) -> Downloaded:
        """Stream the body to `target` chunk by chunk: a result is never held in memory. A
        file served as a generic binary (object stores do that) is taken when its first bytes
        say it is of the `expected` kind."""
        if response.status_code != 200:
            raise DownloadError(f"HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        generic = content_type in GENERIC_TYPES and bool(expected)
        if not (content_type.startswith(expected) or generic):
            raise DownloadError(f"not {expected}*: {content_type or 'no content type'}")
        try:
            declared = int(response.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > UPLOAD_LIMIT:
            raise TooLarge(f"too large: {declared} bytes")
        size = 0
        with target.open("wb") as file:
            async for chunk in response.aiter_bytes(CHUNK):
                if generic and size == 0:
                    content_type = sniff(chunk) or content_type
                    if not content_type.startswith(expected):
                        raise DownloadError(f"not {expected}* by its first bytes")
                size += len(chunk)
                if size > UPLOAD_LIMIT:
                    raise TooLarge(f"too large: over {UPLOAD_LIMIT} bytes")
                file.write(chunk)
        if generic and size == 0:
            raise DownloadError("an empty file")
        return Downloaded(target, size, upload_name(response.url, content_type))


# What a file is, by its first bytes: (offset, magic, content type). Only the kinds a result
# can be; anything else (an HTML error page) is not taken for one.
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF8", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (4, b"ftypM4A", "audio/mp4"),
    (4, b"ftypqt", "video/quicktime"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (8, b"WAVE", "audio/wav"),
)
GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})


def sniff(head: bytes) -> str | None:
    """The content type a file's first bytes announce, of those a result can be."""
    for offset, magic, content_type in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return content_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame
        return "audio/mpeg"
    return None


def upload_name(url: httpx.URL, content_type: str) -> str:
    """The URL's file name, made plain, with an extension that fits its content type (in place
    of none, or of a generic one such as .bin)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(url.path).name).strip("._")[-60:] or "result"
    stem, dot, _ = name.rpartition(".")
    if not dot or (mimetypes.guess_type(name)[0] or "") in GENERIC_TYPES:
        name = (stem if dot else name) + (mimetypes.guess_extension(content_type) or "")
    return name
