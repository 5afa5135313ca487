"""A fake Telegram Bot API server for tests: one local aiohttp app the real aiogram `Bot` talks to.

It answers like api.telegram.org (`{"ok": true, "result": ...}` or `{"ok": false, "error_code",
"description", "parameters"?}` with the same HTTP status) and enforces the limits marked (F) in the
shared document telegram-limits.md with Telegram's own error descriptions, so a bot that passes here
does not trip over them in production:

- text 1..4096 characters and captions <= 1024 after entity parsing, `callback_data` 1..64 bytes,
  2..10 items in a media group, "message is not modified" on a no-op edit;
- parse_mode=HTML parsed the way Telegram's parser (TDLib `parse_html`) does, and stricter on one
  point: a bare `<`, `>` or `&` in text is refused too, so unescaped user input is always caught;
- upload limits (photo 10 MiB, anything 50 MiB), unknown file ids, replies to unknown messages.

Tests feed updates (`send_message`, `press`, `anonymous_admin_message`, `channel_message`,
`pre_checkout`, `pay`, `redeliver`), stage what happens to chats (`block`, `kick`, `upgrade_group`,
`delete_user_message`), inject faults (`fail_next`, `outage`, `refuse_urls`) and inspect what the
bot did (`calls`, `wait_for`, `sent_to`, the per-chat message store; for payments `invoices`,
`checkout_answers`, `charges`).

Updates reach the bot by long polling (`getUpdates`) or, once the bot has called `setWebhook`, by
webhook: the fake POSTs each queued update to the webhook URL as Telegram does (the
`X-Telegram-Bot-Api-Secret-Token` header, retries with backoff until a 2xx, `getWebhookInfo`'s
pending count and last error, 409 for `getUpdates`). `webhook_posts` records every push;
`post_to_webhook` sends a hand-made request (a wrong secret, say); `wait_webhook_idle` waits until
everything queued has been delivered.
Nothing here reaches the network: the server binds 127.0.0.1 only, and webhook pushes go only to
loopback hosts (or to `deliver_webhook_to`).

    async with FakeTelegram() as tg:
        bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)))
        alice = tg.user(42, "Alice")
        tg.send_message(alice, "/start")
        [call] = await tg.wait_for("sendMessage")
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import ipaddress
import json
import mimetypes
import re
import secrets
import struct
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web

from testkit.fakes.server import LocalServer

# -- limits (F in telegram-limits.md) --------------------------------------------------------------

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER = 200
MEDIA_GROUP_MIN, MEDIA_GROUP_MAX = 2, 10
MAX_PHOTO_UPLOAD = 10 * 1024 * 1024  # TDLib: 10 << 20 bytes
MAX_UPLOAD = 50 * 1024 * 1024  # api.telegram.org refuses larger multipart uploads with a bare 413
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files outside local mode

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
BLOCKED = "Forbidden: bot was blocked by the user"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"  # + parameters.migrate_to_chat_id
KICKED = "Forbidden: bot was kicked from the {type} chat"
CANNOT_INITIATE = "Forbidden: bot can't initiate conversation with a user"  # never opened a chat  # type: group, supergroup or channel
# Telegram Stars. CHARGE_ALREADY_REFUNDED, STARS_INVOICE_INVALID and PAYMENT_PROVIDER_INVALID are
# what api.telegram.org answers; the other descriptions are the fake's (same shape).
ALREADY_REFUNDED = "Bad Request: CHARGE_ALREADY_REFUNDED"
CHARGE_NOT_FOUND = "Bad Request: CHARGE_NOT_FOUND"
STARS_CURRENCY = "XTR"
CHECKOUT_TIMEOUT = 10.0  # seconds Telegram waits for answerPreCheckoutQuery
MAX_INVOICE_TITLE, MAX_INVOICE_DESCRIPTION, MAX_INVOICE_PAYLOAD_BYTES = 32, 255, 128
# What api.telegram.org answers while it is in trouble (aiogram: TelegramServerError).
SERVER_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                 504: "Gateway Timeout"}

# Webhooks (telegram-bot-api's Client.cpp / WebhookActor.cpp).
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PORTS = (443, 80, 88, 8443)  # the only ports api.telegram.org pushes to
DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS = 40, 100  # setWebhook's max_connections: default, cap
MAX_SECRET_TOKEN = 256
TERMINATED_BY_WEBHOOK = "Conflict: terminated by setWebhook request"
WEBHOOK_ACTIVE = ("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                  "delete the webhook first")
# Methods Telegram does not run when a webhook answer carries them.
_NOT_FROM_WEBHOOK = frozenset({"deletewebhook", "setwebhook", "close", "logout"})
# Update kinds that carry a message: one webhook queue per chat, as Telegram keeps them.
_MESSAGE_KINDS = frozenset({"message", "edited_message", "channel_post", "edited_channel_post",
                            "business_message", "edited_business_message"})

# The senders Telegram puts in `from` when a message is posted on behalf of a chat (`sender_chat`):
# an anonymous group admin (sender_chat = the group itself) or a channel (sender_chat = the channel).
GROUP_ANONYMOUS_BOT: dict[str, Any] = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                                       "username": "GroupAnonymousBot"}
CHANNEL_BOT: dict[str, Any] = {"id": 136817688, "is_bot": True, "first_name": "Channel",
                               "username": "Channel_Bot"}
# Who upgrades a group or removes the bot when a test does not say.
GROUP_OWNER: dict[str, Any] = {"id": 1000001, "is_bot": False, "first_name": "Group owner"}

# Methods whose answer is a Message built from a file field: method (lowercase) -> field / kind.
_MEDIA_METHODS = {
    "sendphoto": "photo",
    "senddocument": "document",
    "sendvideo": "video",
    "sendaudio": "audio",
    "sendanimation": "animation",
    "sendvoice": "voice",
    "sendvideonote": "video_note",
    "sendsticker": "sticker",
}
# Methods refused for an http(s) URL when `refuse_urls` is on (Telegram failing to fetch it).
_URL_METHODS = {"sendphoto", "senddocument", "sendvideo", "sendaudio", "sendanimation", "sendmediagroup",
                "editmessagemedia"}

# Canonical spelling of the methods the fake knows; anything else is recorded as spelled in the URL.
_KNOWN_METHODS = [
    "getMe", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo", "logOut", "close",
    "sendMessage", "forwardMessage", "forwardMessages", "copyMessage", "copyMessages",
    "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation", "sendVoice", "sendVideoNote",
    "sendSticker", "sendMediaGroup", "sendChatAction", "sendInvoice", "sendLocation", "sendVenue",
    "sendContact", "sendPoll", "sendDice", "editMessageText", "editMessageCaption", "editMessageMedia",
    "editMessageReplyMarkup", "deleteMessage", "deleteMessages", "getFile", "answerCallbackQuery",
    "setMyCommands", "deleteMyCommands", "getMyCommands", "setChatMenuButton", "getChatMenuButton",
    "answerPreCheckoutQuery", "refundStarPayment", "createInvoiceLink", "getChat", "pinChatMessage",
    "unpinChatMessage", "setMessageReaction", "answerInlineQuery", "setMyDescription",
    "setMyShortDescription", "setMyName",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_METHODS}

# Form fields holding free text: never turned into bools, numbers or JSON even if they look like it.
_TEXT_FIELDS = frozenset({
    "text", "caption", "title", "description", "question", "explanation", "query", "short_description",
    "name", "first_name", "last_name", "payload", "start_parameter", "url", "callback_query_id",
    "inline_message_id", "file_id", "business_connection_id", "emoji", "custom_title", "address",
    "phone_number", "vcard", "performer", "message_effect_id", "provider_token", "currency",
    "parse_mode", "action", "secret_token", "ip_address", "pre_checkout_query_id", "error_message",
    "telegram_payment_charge_id", "language_code", "shipping_query_id", "inline_query_id",
})
# Form fields that are integers (ids, counters); other digit strings stay strings.
_INT_FIELDS = frozenset({
    "chat_id", "from_chat_id", "message_id", "reply_to_message_id", "user_id", "message_thread_id",
    "offset", "limit", "timeout", "width", "height", "duration", "length", "cache_time", "until_date",
    "max_connections", "direct_messages_topic_id", "video_start_timestamp", "star_count",
})


class ApiError(Exception):
    """An error answer: HTTP status == error_code, like Telegram."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        parameters = {k: v for k, v in (("retry_after", self.retry_after),
                                        ("migrate_to_chat_id", self.migrate_to_chat_id)) if v is not None}
        if parameters:
            out["parameters"] = parameters
        return out


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class UploadedFile:
    """A file part of a multipart request, in `Call.params` where the bot put `attach://<key>`."""

    filename: str
    size: int
    data: bytes = field(repr=False)
    content_type: str | None = None


@dataclass
class Call:
    """One request the bot made, as the fake understood and answered it."""

    method: str  # canonical Telegram name, e.g. "sendMessage"
    params: dict[str, Any]  # form fields, JSON fields decoded, files as UploadedFile
    time: float  # time.monotonic() when the request arrived
    response: Any = None  # the result, or the error body {"ok": False, "error_code", ...}
    ok: bool = True
    injected: bool = False  # failed by fail_next / block (a deliberate fault, not a validation error)
    via_webhook: bool = False  # carried by the bot's answer to a webhook POST (Telegram runs it, no reply)

    @property
    def error_code(self) -> int | None:
        return None if self.ok else self.response["error_code"]

    @property
    def description(self) -> str | None:
        return None if self.ok else self.response["description"]


@dataclass
class WebhookPost:
    """One POST of an update to the bot's webhook (a push by the fake, retries included)."""

    update_id: int
    status: int | None  # HTTP status the bot answered; None: no answer (refused, timed out, cut off)
    time: float  # time.monotonic() when the POST was sent
    elapsed: float  # seconds until the answer (or the error)
    error: str | None = None  # what getWebhookInfo's last_error_message says of it; None when 2xx
    url: str = ""  # where it was POSTed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Unset:
    """The default of an argument whose None means something (e.g. "no secret header")."""


UNSET = _Unset()


def is_loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only hosts the fakes ever call."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_webhook_url(url: str) -> urllib.parse.SplitResult:
    """Telegram reads a URL without a scheme as https."""
    return urllib.parse.urlsplit(url if "://" in url else f"https://{url}")


@dataclass
class Charge:
    """A paid invoice (FakeTelegram.pay), which refundStarPayment can refund once."""

    user_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    refunded: bool = False


@dataclass
class _FailRule:
    method: str  # lowercase
    error: ApiError
    times: int
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class _SlowRule:
    method: str
    seconds: float
    times: int
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class _FileRecord:
    """A file the fake knows by file_id: uploaded by the bot, added by a test, or sent by URL (no bytes)."""

    file_id: str
    file_unique_id: str
    data: bytes | None = field(default=None, repr=False)
    file_name: str | None = None
    mime_type: str | None = None
    url: str | None = None
    width: int = 1280
    height: int = 720
    file_path: str | None = None

    @property
    def size(self) -> int | None:
        return None if self.data is None else len(self.data)


# -- HTML parsing (Telegram's dialect) --------------------------------------------------------------

_HTML_TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
                        "tg-spoiler", "span", "blockquote", "tg-emoji"})
_SPACE = " \t\r\n\v\f"
_STRIP = " \t\r\n\u200b\u200c\u200d\u2060\ufeff"  # what Telegram trims around texts
_SIMPLE_ENTITY = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
                  "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
                  "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler"}


class HtmlParseError(ValueError):
    pass


def utf16_len(text: str) -> int:
    """Entity offsets and lengths are in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_html_entity(s: str, pos: int) -> tuple[str | None, int]:
    """Decode `&...;` at pos like TDLib: &lt; &gt; &amp; &quot; and numeric ones (';' optional)."""
    n = len(s)
    end = pos + 1
    if end < n and s[end] == "#":
        end += 1
        base, digits = (16, "0123456789abcdefABCDEF") if end < n and s[end] == "x" else (10, "0123456789")
        if base == 16:
            end += 1
        start = end
        while end < n and s[end] in digits:
            end += 1
        if end == start:
            return None, pos
        value = int(s[start:end], base)
        if value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None, pos
        if 0xD800 <= value <= 0xDFFF:
            raise HtmlParseError("Text contains invalid Unicode characters after decoding HTML entities, "
                                 "check for unmatched surrogate code units")
        char = chr(value)
    else:
        while end < n and s[end].isascii() and s[end].isalpha():
            end += 1
        char = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(s[pos + 1:end])
        if char is None:
            return None, pos
    if end < n and s[end] == ";":
        end += 1
    return char, end


# One state machine on purpose: it follows TDLib's parser step by step (offsets, error messages).
def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:  # noqa: PLR0912, PLR0915
    """Return (plain text, entities) for a parse_mode=HTML text, or raise HtmlParseError.

    Error messages follow TDLib's (`Unsupported start tag "br" at byte offset 3`, ...); the
    unescaped-character errors are the fake's own stricter rule.
    """
    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, dict[str, Any], int, int]] = []  # (tag, entity extras, utf16 offset, len(out))
    n = len(source)
    i = 0

    def byte_offset(pos: int) -> int:
        return len(source[:pos].encode("utf-8", "surrogatepass"))

    def at(pos: int) -> str:
        return source[pos] if pos < n else ""

    def skip_spaces(pos: int) -> int:
        while pos < n and source[pos] in _SPACE:
            pos += 1
        return pos

    while i < n:
        c = source[i]
        if c == "&":
            char, nxt = _decode_html_entity(source, i)
            if char is None:
                # Telegram keeps a stray '&' literally; we refuse it so missing escaping shows up in tests.
                raise HtmlParseError(f'Unescaped "&" at byte offset {byte_offset(i)}: write "&amp;" '
                                     "(the test fake is stricter than Telegram here)")
            out.append(char)
            u16 += utf16_len(char)
            i = nxt
            continue
        if c == ">":
            raise HtmlParseError(f'Unescaped ">" at byte offset {byte_offset(i)}: write "&gt;" '
                                 "(the test fake is stricter than Telegram here)")
        if c != "<":
            out.append(c)
            u16 += utf16_len(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != "/":  # start tag
            while i < n and source[i] not in _SPACE and source[i] != ">":
                i += 1
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            tag = source[begin + 1:i].lower()
            if tag not in _HTML_TAGS:
                raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
            attrs: dict[str, str] = {}
            while at(i) != ">":
                i = skip_spaces(i)
                if at(i) == ">":
                    break
                if i >= n:
                    raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
                name_begin = i
                while i < n and source[i] not in _SPACE and source[i] not in "=>":
                    i += 1
                attr = source[name_begin:i].lower()
                if not attr:
                    raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset '
                                         f"{byte_offset(begin)}")
                i = skip_spaces(i)
                if at(i) != "=":
                    if tag == "blockquote" and attr == "expandable":
                        attrs[attr] = ""
                        continue
                    raise HtmlParseError("Expected equal sign in declaration of an attribute of the tag "
                                         f'"{tag}" at byte offset {byte_offset(begin)}')
                i = skip_spaces(i + 1)
                if i >= n:
                    raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
                if source[i] in "\"'":
                    quote = source[i]
                    i += 1
                    value: list[str] = []
                    while i < n and source[i] != quote:
                        if source[i] == "&":
                            char, nxt = _decode_html_entity(source, i)
                            if char is not None:
                                value.append(char)
                                i = nxt
                                continue
                        value.append(source[i])
                        i += 1
                    if i >= n:
                        raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
                    i += 1
                    attrs[attr] = "".join(value)
                else:  # a name token: letters, digits, '.', '-'
                    token_begin = i
                    while i < n and ((source[i].isascii() and source[i].isalnum()) or source[i] in ".-"):
                        i += 1
                    if i < n and source[i] not in _SPACE and source[i] != ">":
                        raise HtmlParseError(f"Unexpected end of name token at byte offset "
                                             f"{byte_offset(token_begin)}")
                    attrs[attr] = source[token_begin:i].lower()
                if i >= n:
                    raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            i += 1  # the '>'

            extras: dict[str, Any] = {}
            if tag == "a":
                extras["url"] = attrs.get("href", "")
            elif tag == "code" and attrs.get("class", "").startswith("language-"):
                extras["language"] = attrs["class"][len("language-"):]
            elif tag == "span" and attrs.get("class") != "tg-spoiler":
                raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset '
                                     f"{byte_offset(begin)}")
            elif tag == "tg-emoji":
                if not attrs.get("emoji-id", "").isdigit():
                    raise HtmlParseError("Invalid custom emoji identifier specified")
                extras["custom_emoji_id"] = attrs["emoji-id"]
            elif tag == "blockquote":
                extras["expandable"] = "expandable" in attrs
            stack.append((tag, extras, u16, len(out)))
            continue

        # end tag
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
        i += 1
        name_begin = i
        while i < n and source[i] not in _SPACE and source[i] != ">":
            i += 1
        end_name = source[name_begin:i].lower()
        i = skip_spaces(i)
        if at(i) != ">":
            raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
        i += 1
        tag, extras, offset, out_index = stack.pop()
        if end_name and end_name != tag:
            raise HtmlParseError(f'Unmatched end tag at byte offset {byte_offset(begin)}, '
                                 f'expected "</{tag}>", found "</{end_name}>"')
        length = u16 - offset
        if length <= 0:
            continue
        if tag in _SIMPLE_ENTITY:
            entities.append({"type": _SIMPLE_ENTITY[tag], "offset": offset, "length": length})
        elif tag == "a":
            url = extras["url"] or "".join(out[out_index:])
            if url:
                entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
        elif tag == "code":
            entity = {"type": "code", "offset": offset, "length": length}
            if "language" in extras:
                entity["_language"] = extras["language"]  # only kept if a <pre> wraps exactly this code
            entities.append(entity)
        elif tag == "pre":
            last = entities[-1] if entities else None
            entity = {"type": "pre", "offset": offset, "length": length}
            if last and last["type"] == "code" and last["offset"] == offset and last["length"] == length:
                entities.pop()  # <pre><code class="language-x">...</code></pre> is one pre entity
                if "_language" in last:
                    entity["language"] = last["_language"]
            entities.append(entity)
        elif tag == "blockquote":
            kind = "expandable_blockquote" if extras["expandable"] else "blockquote"
            entities.append({"type": kind, "offset": offset, "length": length})
        elif tag == "tg-emoji":
            entities.append({"type": "custom_emoji", "offset": offset, "length": length,
                             "custom_emoji_id": extras["custom_emoji_id"]})
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        entity.pop("_language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim whitespace like Telegram does and move entities with the text."""
    left = text.lstrip(_STRIP)
    lead = utf16_len(text) - utf16_len(left)
    result = left.rstrip(_STRIP)
    total = utf16_len(result)
    moved = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            moved.append({**entity, "offset": start, "length": end - start})
    return result, moved


# -- small helpers ---------------------------------------------------------------------------------

def tiny_png(width: int = 64, height: int = 48) -> bytes:
    """A valid grey PNG of the given size (for photos in tests)."""
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header; None when the format is not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return int(w), int(h)
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _decode_field(name: str, value: Any) -> Any:
    """A form field as Python: JSON fields decoded, "true"/"false" as bools, id-like fields as ints."""
    if not isinstance(value, str) or name in _TEXT_FIELDS:
        return value
    if name in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _norm(method: str) -> str:
    """'sendMessage', 'sendmessage' and 'send_message' all name the same method."""
    return method.replace("_", "").lower()


def _is_delivery(method: str) -> bool:
    """Methods that put something into a chat (block() makes them answer 403)."""
    m = method.lower()
    return (m.startswith(("send", "edit")) or m in ("copymessage", "copymessages", "forwardmessage",
                                                       "forwardmessages"))


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# -- the fake --------------------------------------------------------------------------------------

class FakeTelegram(LocalServer):
    """The Bot API at `url` (give it to aiogram as TelegramAPIServer.from_base(url))."""

    def __init__(self, token: str = "123456:TEST-token", bot_username: str = "testbot") -> None:
        super().__init__()
        self.token = token
        self.bot_username = bot_username
        self.bot_user: dict[str, Any] = {
            "id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "Test Bot",
            "username": bot_username, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False,
        }

        # knobs tests turn
        self.refuse_urls: bool = False  # media given as http(s) URL -> 400 "wrong file identifier/HTTP URL"
        self.max_poll_wait: float = 1.0  # cap on getUpdates long polling so tests stop fast
        self.strict_file_ids: bool = True  # unknown file_id strings -> 400, as Telegram answers
        self.known_chats_only: bool = True  # sending to a chat never seen -> 400 "chat not found"

        # what happened / state tests can inspect
        self.calls: list[Call] = []
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}  # chat id -> message id -> Message
        self.deleted: list[tuple[int, int]] = []  # (chat id, message id) deleted by the bot
        self.chats: dict[int, dict[str, Any]] = {}  # chat id -> Chat
        self.users: dict[int, dict[str, Any]] = {}  # user id -> User
        self.blocked: set[int] = set()
        # People who never opened a private chat with the bot (until they write to it there).
        self.strangers: set[int] = set()
        self.kicked: set[int] = set()  # groups the bot was removed from (kick)
        self.upgraded: dict[int, int] = {}  # old group id -> supergroup id (upgrade_group)
        self.deleted_by_users: list[tuple[int, int]] = []  # (chat id, message id) deleted by people
        self.files: dict[str, bytes] = {}  # file_path -> bytes, served at /file/bot<token>/<file_path>
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (scope json, language) -> commands
        self.callback_answers: dict[str, dict[str, Any]] = {}  # callback query id -> answer params
        self.allowed_updates: list[str] | None = None
        self.updates: list[dict[str, Any]] = []  # queued, not yet confirmed by an offset
        self.invoices: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message id) -> sendInvoice params
        self.checkout_answers: dict[str, dict[str, Any]] = {}  # pre-checkout query id -> answer params
        self.charges: dict[str, Charge] = {}  # telegram_payment_charge_id -> the payment (pay)
        self.update_log: list[dict[str, Any]] = []  # every update ever queued, as queued

        self._fail_rules: list[_FailRule] = []
        self._slow_rules: list[_SlowRule] = []
        self._file_records: dict[str, _FileRecord] = {}
        self._callback_ids: set[str] = set()
        self._checkouts: dict[str, float] = {}  # open pre-checkout query id -> time.monotonic() queued
        self._next_update_id = 1
        self._redeliver: set[int] = set()  # update ids getUpdates returns once more whatever the offset
        self._outage: tuple[ApiError, frozenset[str] | None] | None = None
        self._next_message_id: dict[int, int] = {}
        self._counter = 0
        self._poll_generation = 0
        self._wake = asyncio.Event()  # replaced after each set(): waiters hold the one they saw
        self._closing = False
        self._init_webhook()
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": lambda p: self.bot_user,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendmediagroup": self._send_media_group,
            "copymessage": self._copy_message,
            "forwardmessage": self._forward_message,
            "editmessagetext": self._edit_text,
            "editmessagecaption": self._edit_caption,
            "editmessagereplymarkup": self._edit_reply_markup,
            "editmessagemedia": self._edit_media,
            "deletemessage": self._delete_message,
            "deletemessages": self._delete_messages,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getmycommands": self._get_my_commands,
            "getchatmenubutton": lambda p: {"type": "commands"},
            "getfile": self._get_file,
            "sendchataction": self._send_chat_action,
            "sendinvoice": self._send_invoice,
            "answerprecheckoutquery": self._answer_pre_checkout_query,
            "refundstarpayment": self._refund_star_payment,
        }
        for method, kind in _MEDIA_METHODS.items():
            self._handlers[method] = lambda p, kind=kind: self._send_media(kind, p)

    def _init_webhook(self) -> None:
        # knobs tests turn. Telegram waits about 60 s for an answer and retries a failed update at
        # once, then after 2, 4, 8... s (at most 60-120 s); the fake is quicker.
        self.webhook_timeout: float = 10.0  # seconds to wait for the bot's answer: "Read timeout expired"
        self.webhook_retry_delay: float = 0.05  # first retry after this; doubles per failure of an update
        self.webhook_retry_max: float = 1.0  # cap on that delay (a Retry-After the bot answers wins)
        # POSTs in flight at once: None = setWebhook's max_connections (Telegram: default 40, one chat's
        # updates still one at a time and in order); 1 = one at a time, in update_id order.
        self.webhook_connections: int | None = 1
        # A loopback base URL ("http://127.0.0.1:8080") to push to instead of the webhook URL's scheme,
        # host and port (its path and query are kept): lets the bot set a real https URL. Without it,
        # updates are pushed only to loopback webhook URLs; others stay pending.
        self.deliver_webhook_to: str | None = None

        # state tests can inspect
        self.webhook_url: str = ""  # as the bot set it; "" = no webhook (long polling)
        self.webhook_secret: str = ""  # setWebhook's secret_token, sent in SECRET_HEADER when not empty
        self.webhook_max_connections: int = 0  # setWebhook's max_connections (1..100, default 40); 0 = none
        self.webhook_last_error: tuple[int, str] | None = None  # (unix time, message) of the last failure
        self.webhook_posts: list[WebhookPost] = []  # every push, in the order they were answered

        self._pusher: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # update id -> its POST
        self._in_flight_keys: dict[int, tuple[str, int]] = {}  # update id -> its webhook queue
        self._retry_at: dict[int, float] = {}  # update id -> time.monotonic() of its next attempt
        self._failures: dict[int, int] = {}  # update id -> failed attempts in a row

    # -- lifecycle -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        # Uploads are streamed through request.multipart(), so client_max_size only bounds
        # urlencoded bodies; 60 MB+ files still arrive and get the 413 Telegram gives.
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def start(self) -> None:
        self._closing = False
        await super().start()
        self._pusher = asyncio.create_task(self._push_webhook_updates(), name="fake-telegram-webhook")

    async def stop(self) -> None:
        self._closing = True
        self._notify()  # long polls return [] at once
        if self._pusher is not None:
            self._pusher.cancel()  # cancels the POSTs in flight too; their updates stay pending
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        await super().stop()

    # -- test side: users, chats, updates --------------------------------------------------------

    def user(self, id: int, first_name: str = "User", username: str | None = None,
             language_code: str | None = "en") -> dict[str, Any]:
        """A Telegram User; their private chat with the bot counts as known from now on."""
        user: dict[str, Any] = {"id": id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[id] = user
        self.private_chat(user)
        return user

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        self.chats[chat["id"]] = chat
        return chat

    def group_chat(self, id: int = -1001234567890, title: str = "Test group",
                   type: str = "supergroup") -> dict[str, Any]:
        chat = {"id": id, "type": type, "title": title}
        self.chats[id] = chat
        return chat

    def queue_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue any update (e.g. {"pre_checkout_query": {...}}); update_id is assigned here. With a
        webhook set it is POSTed to the bot; otherwise getUpdates returns it."""
        update = {**update, "update_id": self._next_update_id}
        self._next_update_id += 1
        if "callback_query" in update:  # the bot may answer it
            self._callback_ids.add(update["callback_query"]["id"])
        self.updates.append(update)
        self.update_log.append(copy.deepcopy(update))
        self._notify()
        return update

    def send_message(self, from_user: dict[str, Any], text: str = "", *, chat: dict[str, Any] | None = None,
                     reply_to: dict[str, Any] | None = None, photo: bool | bytes = False,
                     document: bytes | None = None, mime_type: str = "application/octet-stream",
                     file_name: str = "file.bin", caption: str | None = None,
                     sender_chat: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue a user's message to the bot; returns the Message dict (it is stored like the bot's).

        photo=True attaches a small PNG (or give the bytes); `document` attaches a file sent as
        one, declared as `mime_type`. The bot can getFile/download either. With a file,
        `caption` (or `text` when caption is None) becomes the caption.

        sender_chat: the person posts on behalf of a chat, and Telegram hides them: the group itself
        (an anonymous admin; `from` is GroupAnonymousBot) or a channel (`from` is Channel_Bot).
        """
        if sender_chat is not None:
            if chat is None or chat.get("type") == "private":
                raise ValueError("only messages in a group or channel can have a sender_chat")
            self.chats.setdefault(sender_chat["id"], sender_chat)
            from_user = dict(GROUP_ANONYMOUS_BOT if sender_chat["id"] == chat["id"] else CHANNEL_BOT)
        elif from_user["id"] not in self.users:
            self.user(from_user["id"], from_user.get("first_name", "User"), from_user.get("username"))
        chat = chat or self.private_chat(from_user)
        if chat["id"] == from_user["id"]:
            self.strangers.discard(from_user["id"])  # writing to the bot opens the chat
        if chat["id"] in self.upgraded:
            raise ValueError(f"group {chat['id']} was upgraded: people now write in "
                             f"{self.upgraded[chat['id']]}")
        self.chats.setdefault(chat["id"], chat)
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat["id"]), "date": int(time.time()),
            "chat": chat, "from": from_user,
        }
        if sender_chat is not None:
            message["sender_chat"] = sender_chat
        if photo or document is not None:
            self._attach(message, photo, document, mime_type, file_name)
            body = caption if caption is not None else text
            if body:
                message["caption"] = body
                if entity := self._command_entity(body):
                    message["caption_entities"] = [entity]
        else:
            message["text"] = text
            if entity := self._command_entity(text):
                message["entities"] = [entity]
        if reply_to is not None:
            target = self.message(reply_to["chat"]["id"], reply_to["message_id"]) or reply_to
            message["reply_to_message"] = self._without_reply(target)
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})
        return copy.deepcopy(message)

    def _attach(self, message: dict[str, Any], photo: bool | bytes, document: bytes | None,
                mime_type: str, file_name: str) -> None:
        if document is not None:
            record = self._register(data=document, kind="document", file_name=file_name,
                                    mime_type=mime_type)
            message["document"] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                                   "file_name": file_name, "mime_type": mime_type,
                                   "file_size": len(document)}
        else:
            data = photo if isinstance(photo, bytes) else tiny_png(640, 480)
            record = self._register(data=data, kind="photo", file_name="photo.jpg",
                                    mime_type="image/jpeg")
            message["photo"] = self._photo_sizes(record)

    def anonymous_admin_message(self, group: dict[str, Any], text: str,
                                reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """An admin of `group` posting anonymously (as the group): from GroupAnonymousBot,
        sender_chat=group."""
        return self.send_message(GROUP_ANONYMOUS_BOT, text, chat=group, reply_to=reply_to, sender_chat=group)

    def channel_message(self, group: dict[str, Any], channel: dict[str, Any], text: str,
                        reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """Someone posting in `group` as their channel: from Channel_Bot, sender_chat=channel.

        Make the channel with group_chat(id, title, type="channel")."""
        return self.send_message(CHANNEL_BOT, text, chat=group, reply_to=reply_to, sender_chat=channel)

    def press(self, from_user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        """Queue a press on an inline button of `message` (as last known: edits applied)."""
        current = self.message(message["chat"]["id"], message["message_id"]) or message
        self._counter += 1
        query = {
            "id": f"{self._counter}{secrets.randbelow(10**9):09d}",
            "from": from_user,
            "chat_instance": f"ci{current['chat']['id']}",
            "message": copy.deepcopy(current),
            "data": data,
        }
        self.queue_update({"callback_query": query})
        return copy.deepcopy(query)

    def add_file(self, file_id: str, data: bytes, file_path: str | None = None) -> str:
        """Make `file_id` known to getFile and downloadable; returns its file_path."""
        self._counter += 1
        path = file_path or f"files/file_{self._counter}.bin"
        self._file_records[file_id] = _FileRecord(file_id=file_id, file_unique_id=f"U{self._counter}",
                                                  data=data, file_path=path)
        self.files[path] = data
        return path

    def forget_file(self, file_id: str) -> None:
        """Telegram no longer takes `file_id` (the bot's token changed, the file is gone): a send
        by it answers 400 "wrong file identifier" from now on (with `strict_file_ids`)."""
        self._file_records.pop(file_id, None)

    # -- test side: payments (Telegram Stars) ----------------------------------------------------

    @property
    def next_update_id(self) -> int:
        """The update_id the next queued update gets."""
        return self._next_update_id

    def invoice(self, message: dict[str, Any]) -> dict[str, Any]:
        """The sendInvoice params behind an invoice message the bot sent (payload, prices, ...)."""
        found = self.invoices.get((message["chat"]["id"], message["message_id"]))
        if found is None:
            raise ValueError(f"message {message['message_id']} is not an invoice the bot sent")
        return copy.deepcopy(found)

    def _invoice_fields(self, invoice: dict[str, Any] | None, currency: str | None,
                        total_amount: int | None, invoice_payload: str | None) -> dict[str, Any]:
        """currency, total_amount, invoice_payload: the invoice message's, unless given."""
        base: dict[str, Any] = {}
        if invoice is not None:
            params = self.invoice(invoice)
            base = {"currency": params["currency"], "invoice_payload": params["payload"],
                    "total_amount": sum(int(p["amount"]) for p in params["prices"])}
        given = {"currency": currency, "total_amount": total_amount, "invoice_payload": invoice_payload}
        fields = {**base, **{k: v for k, v in given.items() if v is not None}}
        missing = {"currency", "total_amount", "invoice_payload"} - set(fields)
        if missing:
            raise ValueError(f"give an invoice message or {', '.join(sorted(missing))}")
        return fields

    def pre_checkout(self, from_user: dict[str, Any], invoice: dict[str, Any] | None = None, *,
                     currency: str | None = None, total_amount: int | None = None,
                     invoice_payload: str | None = None) -> dict[str, Any]:
        """Queue the `pre_checkout_query` Telegram sends when `from_user` presses Pay on `invoice`
        (the invoice message the bot sent), with any field overridden; returns the query. The bot
        must answer it within CHECKOUT_TIMEOUT seconds (see `checkout_answers`)."""
        self._counter += 1
        query = {"id": f"{self._counter}{secrets.randbelow(10**9):09d}", "from": from_user,
                 **self._invoice_fields(invoice, currency, total_amount, invoice_payload)}
        self._checkouts[query["id"]] = time.monotonic()
        self.queue_update({"pre_checkout_query": query})
        return copy.deepcopy(query)

    def pay(self, from_user: dict[str, Any], invoice: dict[str, Any] | None = None, *,
            currency: str | None = None, total_amount: int | None = None,
            invoice_payload: str | None = None,
            chat: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Queue the service message with `successful_payment` that follows a paid invoice (in
        the private chat unless `chat` is given). Returns (telegram_payment_charge_id, message);
        redeliver(message) sends the same update again."""
        fields = self._invoice_fields(invoice, currency, total_amount, invoice_payload)
        charge_id = f"stx{secrets.token_hex(16)}"
        self.charges[charge_id] = Charge(from_user["id"], fields["currency"], fields["total_amount"],
                                         fields["invoice_payload"])
        chat = chat or self.private_chat(from_user)
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat["id"]), "date": int(time.time()), "chat": chat,
            "from": from_user,
            "successful_payment": {**fields, "telegram_payment_charge_id": charge_id,
                                   "provider_payment_charge_id": ""},  # the fake leaves it empty
        }
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})
        return charge_id, copy.deepcopy(message)

    # -- test side: faults -----------------------------------------------------------------------

    def fail_next(self, method: str, *, error_code: int = 400, description: str | None = None,
                  retry_after: int | None = None, times: int = 1,
                  when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """The next `times` calls of `method` (matching `when(params)`) fail with this error."""
        if error_code == 429 and retry_after is None:
            retry_after = 1  # Telegram always says how long to wait
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                403: BLOCKED,
                429: f"Too Many Requests: retry after {retry_after}",
                **SERVER_ERRORS,
            }.get(error_code, f"Error {error_code}: injected failure")
        error = ApiError(error_code, description, retry_after)
        self._fail_rules.append(_FailRule(_norm(method), error, times, when))

    def slow(self, method: str, seconds: float, *, times: int = 1,
             when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """The next `times` calls of `method` (matching `when(params)`) are answered only after
        `seconds` (the call is carried out then: a slow upload, a slow refund)."""
        self._slow_rules.append(_SlowRule(_norm(method), seconds, times, when))

    def block(self, user_id: int) -> None:
        """From now on every send/edit/copy/forward into this chat answers 403 "bot was blocked"."""
        if user_id not in self.chats and user_id > 0:
            self.user(user_id)  # a user who blocked the bot had a chat with it
        self.blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self.blocked.discard(user_id)

    def outage(self, error_code: int = 502, methods: str | Iterable[str] | None = None,
               description: str | None = None) -> None:
        """Until end_outage(), every call (getUpdates and file downloads included) or only the named
        methods answer this 5xx ("Bad Gateway", "Internal Server Error", ...). Calls are still recorded."""
        if not 500 <= error_code <= 599:
            raise ValueError("an outage answers a 5xx; use fail_next for other errors")
        if description is None:
            description = SERVER_ERRORS.get(error_code, HTTPStatus(error_code).phrase)
        names = None if methods is None else frozenset(
            _norm(m) for m in ([methods] if isinstance(methods, str) else methods))
        self._outage = (ApiError(error_code, description), names)

    def end_outage(self) -> None:
        self._outage = None

    def upgrade_group(self, old_id: int, new_id: int, by: dict[str, Any] | None = None) -> dict[str, Any]:
        """The group `old_id` becomes the supergroup `new_id` (returned). Queues Telegram's two service
        messages: in the old chat `migrate_to_chat_id` (from whoever upgraded it, `by`), then in the new
        chat `migrate_from_chat_id` (from GroupAnonymousBot, sender_chat the supergroup). From now on
        anything the bot sends or edits into the old id answers 400 with parameters.migrate_to_chat_id.

        On Telegram a basic group's message ids come from the bot's own counter and the supergroup
        numbers from 1, so old ids practically never name a message there; here the new chat goes on
        counting after the old one, so a reply to an old id never resolves in the new chat."""
        old = self.chats.get(old_id)
        if old is None or old.get("type") != "group":
            raise ValueError(f"chat {old_id} is not a known basic group (group_chat(id, type='group'))")
        by = by or dict(GROUP_OWNER)
        new = self.chats.get(new_id) or {"id": new_id, "type": "supergroup",
                                         "title": old.get("title", "Group")}
        self.chats[new_id] = new
        self._next_message_id[new_id] = max(self._next_message_id.get(new_id, 0),
                                            self._next_message_id.get(old_id, 0))
        for chat, fields in ((old, {"from": by, "migrate_to_chat_id": new_id}),
                             (new, {"from": dict(GROUP_ANONYMOUS_BOT), "sender_chat": new,
                                    "migrate_from_chat_id": old_id})):
            message = {"message_id": self._new_message_id(chat["id"]), "date": int(time.time()), "chat": chat,
                       **fields}
            self._store(message)
            self.queue_update({"message": copy.deepcopy(message)})
        self.upgraded[old_id] = new_id
        return copy.deepcopy(new)

    def kick(self, chat_id: int, by: dict[str, Any] | None = None) -> None:
        """The bot is removed from a group, supergroup or channel: from now on sends, edits and deletes
        there answer 403 "bot was kicked from the <type> chat". Queues the `my_chat_member` update
        Telegram sends (new status "kicked", or "left" for a basic group; from `by`)."""
        chat = self.chats.get(chat_id)
        if chat is None or chat.get("type") == "private":
            raise ValueError(f"chat {chat_id} is not a known group or channel "
                             "(a user blocks the bot: block())")
        self.kicked.add(chat_id)
        me = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        member = "administrator" if chat["type"] == "channel" else "member"
        old_member: dict[str, Any] = {"status": member, "user": me}
        if member == "administrator":
            old_member.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True,
                              can_delete_messages=True, can_manage_video_chats=False,
                              can_restrict_members=False,
                              can_promote_members=False, can_change_info=False, can_invite_users=False,
                              can_post_stories=False, can_edit_stories=False, can_delete_stories=False,
                              can_send_welcome_messages=False, can_post_messages=True, can_edit_messages=True)
        new_member = ({"status": "left", "user": me} if chat["type"] == "group"
                      else {"status": "kicked", "user": me, "until_date": 0})
        self.queue_update({"my_chat_member": {
            "chat": chat, "from": by or dict(GROUP_OWNER), "date": int(time.time()),
            "old_chat_member": old_member, "new_chat_member": new_member}})

    def delete_user_message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """Someone deletes a message (their own, or in a private chat the bot's too): it is gone from
        the store, so replies to it and edits of it fail as on Telegram. No update reaches the bot."""
        message = self.messages.get(chat_id, {}).pop(message_id, None)
        if message is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self.deleted_by_users.append((chat_id, message_id))
        return message

    def redeliver(self, update: dict[str, Any] | int) -> dict[str, Any]:
        """Queue an already delivered update again with the SAME update_id; getUpdates returns it once
        more even though the offset has passed it (a poller died before confirming its offset), or,
        with a webhook, it is POSTed once more (as after an answer Telegram did not get).

        `update`: an update_id, an update, or the message / callback query that send_message / press
        returned. Returns the update as it will be delivered (as first queued)."""
        update_id = self._find_update_id(update)
        original = next((u for u in self.update_log if u["update_id"] == update_id), None)
        if original is None:
            raise ValueError(f"update {update_id} was never queued")
        if all(u["update_id"] != update_id for u in self.updates):
            self.updates.append(copy.deepcopy(original))
            self.updates.sort(key=lambda u: u["update_id"])
        self._redeliver.add(update_id)
        self._notify()
        return copy.deepcopy(original)

    def _find_update_id(self, ref: dict[str, Any] | int) -> int:
        if isinstance(ref, int):
            return ref
        if "update_id" in ref:
            return int(ref["update_id"])
        for logged in reversed(self.update_log):
            if "message_id" in ref:  # a Message
                found = logged.get("message") or logged.get("edited_message")
                if found and ((found["chat"]["id"], found["message_id"])
                              == (ref["chat"]["id"], ref["message_id"])):
                    return int(logged["update_id"])
            elif ("chat_instance" in ref  # a CallbackQuery
                  and logged.get("callback_query", {}).get("id") == ref["id"]):
                return int(logged["update_id"])
        raise ValueError(f"no queued update carries {_short(ref)}")

    # -- test side: inspection -------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """All recorded calls of a method, failed ones included ('sendMessage' or 'send_message')."""
        key = _norm(method)
        return [c for c in self.calls if _norm(c.method) == key]

    async def wait_for(self, method: str, predicate: Callable[[Call], bool] = lambda call: True,
                       timeout: float = 10.0, count: int = 1) -> list[Call]:
        """Wait until `count` successful calls of `method` match; returns all that match."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_of(method) if c.ok and predicate(c)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {count} successful "
                                     f"{method} call(s) matching the predicate; {len(found)} matched."
                                     f"\n{self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self) -> str:
        """The recorded calls, one per line (getUpdates polls folded into a count)."""
        polls = len(self.calls_of("getUpdates"))
        lines = [f"recorded calls ({len(self.calls)}, of which {polls} getUpdates):"]
        for c in self.calls:
            if c.method == "getUpdates":
                continue
            status = "ok" if c.ok else f"{c.error_code} {c.description}"
            via = " (in a webhook answer)" if c.via_webhook else ""
            lines.append(f"  {c.method}{via} [{status}] {_short(c.params)}")
        if self.webhook_url or self.webhook_posts:
            lines.append(f"webhook {self.webhook_url!r}: {len(self.webhook_posts)} post(s), "
                         f"{len(self.webhook_delivered)} answered 2xx, {len(self._pending())} pending, "
                         f"last error {self.webhook_last_error}")
        return "\n".join(lines)

    def sent_to(self, chat_id: int) -> list[Call]:
        """Successful send*/edit*/copy/forward calls into a chat (sendChatAction left out)."""
        return [c for c in self.calls if c.ok and _is_delivery(c.method) and c.method != "sendChatAction"
                and c.params.get("chat_id") == chat_id]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The stored message as it is now (after edits); None if unknown or deleted."""
        found = self.messages.get(chat_id, {}).get(message_id)
        return copy.deepcopy(found) if found is not None else None

    def file_content(self, file_id: str) -> tuple[bytes | None, str | None, str | None]:
        """(bytes, URL, mime type) of a file the fake knows: bytes when uploaded or sent by a
        person, the URL when the bot sent it by URL; all None when unknown."""
        record = self._file_records.get(file_id)
        if record is None:
            return None, None, None
        return record.data, record.url, record.mime_type

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat as they are now, oldest first (deleted ones gone)."""
        stored = self.messages.get(chat_id, {})
        return [copy.deepcopy(m) for _, m in sorted(stored.items())
                if m.get("from", {}).get("id") == self.bot_user["id"]]

    def last_bot_message(self, chat_id: int) -> dict[str, Any] | None:
        messages = self.bot_messages(chat_id)
        return messages[-1] if messages else None

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        raw_method = request.match_info["method"]
        call = Call(method=_CANONICAL.get(raw_method.lower(), raw_method), params={}, time=time.monotonic())
        try:
            raw, files = await self._read_request(request)
        except ApiError as error:
            call.ok = False
            call.response = error.body()
        else:
            await self._run_call(call, raw, files, request.match_info["token"])
        self.calls.append(call)
        if call.ok:
            return web.json_response({"ok": True, "result": call.response})
        return web.json_response(call.response, status=call.response["error_code"])

    async def _run_call(self, call: Call, raw: dict[str, Any], files: dict[str, UploadedFile],
                        token: str) -> None:
        """Decode, check and answer one call: its params, response and ok are filled in."""
        method = call.method
        try:
            call.params = self._decode(raw, files)
            # api.telegram.org refuses an oversized upload before looking at anything else.
            if any(f.size > MAX_UPLOAD for f in files.values()):
                raise ApiError(413, "Request Entity Too Large")
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            self._inject_outage(method, call)
            self._inject_fault(method, call)
            await self._inject_delay(method, call)
            handler = self._handlers.get(method.lower(), self._fallback(method))
            result = handler(call.params)
            if asyncio.iscoroutine(result):
                result = await result
            call.response = copy.deepcopy(result)
        except ApiError as error:
            call.ok = False
            call.response = error.body()

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        if self._outage is not None and self._outage[1] is None:
            return web.json_response(self._outage[0].body(), status=self._outage[0].error_code)
        data = self.files.get(request.match_info["path"])
        if data is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    @staticmethod
    async def _read_request(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        """Form fields (query string, urlencoded, multipart or JSON body) and uploaded files."""
        fields: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    chunks = []
                    while chunk := await part.read_chunk(1 << 16):
                        chunks.append(chunk)
                    data = b"".join(chunks)
                    content_type = part.headers.get("Content-Type")
                    files[part.name] = UploadedFile(part.filename, len(data), data, content_type)
                else:
                    fields[part.name] = await part.text()
        elif request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as e:
                raise _bad("can't parse JSON object") from e
            if isinstance(body, dict):
                fields.update(body)
        elif request.can_read_body:
            fields.update(await request.post())
        return fields, files

    @staticmethod
    def _decode(raw: dict[str, Any], files: dict[str, UploadedFile]) -> dict[str, Any]:
        """Decode fields and put each UploadedFile where the bot wrote attach://<part name>."""
        used: set[str] = set()

        def attach(value: Any) -> Any:
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                used.add(value[9:])
                return files[value[9:]]
            if isinstance(value, dict):
                return {k: attach(v) for k, v in value.items()}
            if isinstance(value, list):
                return [attach(v) for v in value]
            return value

        params = {name: attach(_decode_field(name, value)) for name, value in raw.items()}
        for name, file in files.items():  # a file sent directly as the field (not via attach://)
            if name not in used:
                params.setdefault(name, file)
        return params

    def _inject_outage(self, method: str, call: Call) -> None:
        if self._outage is not None:
            error, methods = self._outage
            if methods is None or _norm(method) in methods:
                call.injected = True
                raise error

    def _inject_fault(self, method: str, call: Call) -> None:
        key = _norm(method)
        for rule in self._fail_rules:
            if rule.method == key and rule.times > 0 and (rule.when is None or rule.when(call.params)):
                rule.times -= 1
                call.injected = True
                raise rule.error
        self._fail_rules = [r for r in self._fail_rules if r.times > 0]

    async def _inject_delay(self, method: str, call: Call) -> None:
        key = _norm(method)
        for rule in self._slow_rules:
            if rule.method == key and rule.times > 0 and (rule.when is None or rule.when(call.params)):
                rule.times -= 1
                await asyncio.sleep(rule.seconds)
                break
        self._slow_rules = [r for r in self._slow_rules if r.times > 0]

    def _fallback(self, method: str) -> Callable[[dict[str, Any]], Any]:
        """Unknown methods answer True; other send* methods still create a (plain) message."""
        if method.lower().startswith("send"):
            return lambda p: self._send_other(method, p)
        return lambda p: True

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    # -- updates ---------------------------------------------------------------------------------

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, WEBHOOK_ACTIVE)
        offset = p.get("offset")
        limit = min(max(int(p.get("limit", 100)), 1), 100)
        timeout = min(float(p.get("timeout", 0)), self.max_poll_wait)
        if isinstance(p.get("allowed_updates"), list):
            self.allowed_updates = p["allowed_updates"] or None
        if isinstance(offset, int):  # confirms (forgets) everything before it
            if offset < 0:
                self.updates = self.updates[offset:]
            else:  # redeliver()ed updates stay until they have been returned once more
                self.updates = [u for u in self.updates if u["update_id"] >= offset
                                or u["update_id"] in self._redeliver]
        # A newer getUpdates terminates a pending one, as Telegram does (two pollers -> 409).
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        deadline = time.monotonic() + timeout
        while True:
            wake = self._wake
            if self.webhook_url:
                raise ApiError(409, TERMINATED_BY_WEBHOOK)
            ready = [u for u in self.updates if self._allowed(u)][:limit]
            if ready:
                self._redeliver.difference_update(u["update_id"] for u in ready)
                return ready
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only "
                                    "one bot instance is running")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)

    def _allowed(self, update: dict[str, Any]) -> bool:
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    def _set_webhook(self, p: dict[str, Any]) -> bool:
        """setWebhook, and deleteWebhook (an empty url), in the order telegram-bot-api does things:
        an unchanged webhook only takes new allowed_updates; otherwise pending updates are dropped if
        asked, the old webhook is closed (so a refused new one leaves none), then the new one is
        checked. Telegram refuses loopback and private addresses ("IP address 127.0.0.1 is
        reserved"); the fake accepts loopback hosts on any port, over http too, for tests."""
        url = str(p.get("url") or "")
        secret = str(p.get("secret_token") or "") if url else ""
        max_connections = 0
        if url:
            try:
                max_connections = int(p.get("max_connections", DEFAULT_MAX_CONNECTIONS))
            except (TypeError, ValueError):
                max_connections = DEFAULT_MAX_CONNECTIONS
            max_connections = min(max(max_connections, 1), MAX_CONNECTIONS)
        drop = bool(p.get("drop_pending_updates"))
        if (url, secret, max_connections) == (self.webhook_url, self.webhook_secret,
                                               self.webhook_max_connections) and not drop:
            self._take_allowed_updates(p)  # "Webhook is already set" / "Webhook is already deleted"
            return True
        if drop:
            self.updates.clear()
            self._redeliver.clear()
        self._close_webhook()
        if not url:
            return True  # "Webhook was deleted"
        self._check_webhook(url, secret)
        self.webhook_url, self.webhook_secret, self.webhook_max_connections = url, secret, max_connections
        self._take_allowed_updates(p)
        self._notify()  # a pending getUpdates ends with 409; the pusher starts
        return True

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        return self._set_webhook({**p, "url": ""})  # Telegram's deleteWebhook is setWebhook without url

    def _close_webhook(self) -> None:
        self.webhook_url, self.webhook_secret, self.webhook_max_connections = "", "", 0
        self.webhook_last_error = None
        self._retry_at.clear()
        self._failures.clear()

    def _take_allowed_updates(self, p: dict[str, Any]) -> None:
        if isinstance(p.get("allowed_updates"), list):  # absent: the previous setting stays
            self.allowed_updates = p["allowed_updates"] or None

    @staticmethod
    def _check_webhook(url: str, secret: str) -> None:
        try:
            parts = _split_webhook_url(url)
            port = parts.port
        except ValueError as e:
            raise _bad("invalid webhook URL specified") from e
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad("invalid webhook URL specified")
        if len(secret) > MAX_SECRET_TOKEN:
            raise _bad("secret token is too long")
        if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
            raise _bad("secret token contains unallowed characters")
        if is_loopback(parts.hostname):
            return  # the fake's exception, for tests
        if parts.scheme == "http":
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if (port or 443) not in WEBHOOK_PORTS:
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a host name: Telegram would resolve it; the fake never does
        if ip.version == 6:
            raise _bad("bad webhook: IPv6-only addresses are not allowed")
        if not ip.is_global:
            raise _bad(f"bad webhook: IP address {ip} is reserved")

    def _pending(self) -> list[dict[str, Any]]:
        return [u for u in self.updates if self._allowed(u)]

    def _get_webhook_info(self, p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"url": self.webhook_url, "has_custom_certificate": False,
                                "pending_update_count": len(self._pending())}
        if self.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        if self.webhook_max_connections:
            info["max_connections"] = self.webhook_max_connections
        if self.webhook_url:
            host = _split_webhook_url(self.webhook_url).hostname or ""
            info["ip_address"] = "127.0.0.1" if host == "localhost" else host if is_loopback(host) \
                else "<unknown>"
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        return info

    # -- webhook pushing -------------------------------------------------------------------------

    def _webhook_target(self, url: str | None = None) -> str | None:
        """Where to POST for the webhook `url` (default: the one set): the URL itself if loopback,
        deliver_webhook_to + its path; None = nowhere the fake may reach."""
        url = url or self.webhook_url
        if not url:
            return None
        parts = _split_webhook_url(url)
        if self.deliver_webhook_to:
            base = urllib.parse.urlsplit(self.deliver_webhook_to)
            if not is_loopback(base.hostname):
                return None
            return urllib.parse.urlunsplit((base.scheme, base.netloc, parts.path or "/", parts.query, ""))
        return urllib.parse.urlunsplit(parts) if is_loopback(parts.hostname) else None

    def _webhook_limit(self) -> int:
        limit = self.webhook_max_connections or DEFAULT_MAX_CONNECTIONS
        return limit if self.webhook_connections is None else max(min(self.webhook_connections, limit), 1)

    @staticmethod
    def _queue_key(update: dict[str, Any]) -> tuple[str, int]:
        """Telegram's webhook queue of an update: a chat's messages, a user's callback queries, a
        user's payment queries... are each delivered one at a time, in order."""
        kind = next((k for k in update if k != "update_id"), "")
        payload = update.get(kind)
        ident = None
        if isinstance(payload, dict):
            source = payload.get("chat") or payload.get("from") or {}
            ident = source.get("id") if isinstance(source, dict) else None
        if not isinstance(ident, int):
            return f"update:{kind}", int(update["update_id"])
        return ("message" if kind in _MESSAGE_KINDS else kind), ident

    async def _push_webhook_updates(self) -> None:
        """The pusher: runs from start() to stop(), POSTing pending updates while a webhook is set."""
        async with aiohttp.ClientSession() as session:
            try:
                while not self._closing:
                    wake = self._wake
                    next_at = self._dispatch_webhook(session)
                    timeout = None if next_at is None else max(next_at - time.monotonic(), 0.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout)
            finally:
                flights = list(self._in_flight.values())
                for flight in flights:
                    flight.cancel()
                await asyncio.gather(*flights, return_exceptions=True)

    def _dispatch_webhook(self, session: aiohttp.ClientSession) -> float | None:
        """Start the POSTs that may go now; return when a waiting retry is due (None: nothing waits)."""
        target = self._webhook_target()
        if target is None:
            return None
        now = time.monotonic()
        next_at: float | None = None
        limit = self._webhook_limit()
        busy = set(self._in_flight_keys.values())
        seen: set[tuple[str, int]] = set()
        for update in list(self.updates):
            if not self._allowed(update):
                self.updates.remove(update)  # Telegram never delivers an update the bot did not ask for
                continue
            update_id = update["update_id"]
            key = self._queue_key(update)
            if key in seen or key in busy or update_id in self._in_flight:
                seen.add(key)
                continue  # an earlier update of this queue goes first
            seen.add(key)
            due = self._retry_at.get(update_id, 0.0)
            if due > now:
                next_at = due if next_at is None else min(next_at, due)
                continue
            if len(self._in_flight) >= limit:
                break
            self._redeliver.discard(update_id)  # this push is the redelivery
            self._in_flight_keys[update_id] = key
            self._in_flight[update_id] = asyncio.create_task(
                self._post_update(session, target, copy.deepcopy(update)))
        return next_at

    async def _post_update(self, session: aiohttp.ClientSession, target: str, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers[SECRET_HEADER] = self.webhook_secret
        sent = time.monotonic()
        status: int | None = None
        error: str | None = None
        retry_after = 0.0
        try:
            async with session.post(target, data=json.dumps(update), headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                                    allow_redirects=False) as response:
                status = response.status
                if 200 <= status < 300:
                    await self._run_webhook_answer(response)
                else:
                    await response.read()
                    error = f"Wrong response from the webhook: {status} {response.reason or ''}".rstrip()
                    with contextlib.suppress(ValueError):
                        retry_after = min(max(float(response.headers.get("Retry-After", 0)), 0.0), 3600.0)
        except TimeoutError:
            status, error = None, "Read timeout expired"
        except aiohttp.ClientConnectorError:
            status, error = None, "Connection refused"
        except aiohttp.ClientError:
            status, error = None, "Webhook connection closed"
        finally:
            self._in_flight.pop(update_id, None)
            self._in_flight_keys.pop(update_id, None)
        elapsed = time.monotonic() - sent
        self.webhook_posts.append(WebhookPost(update_id, status, sent, elapsed, error, target))
        if error is None:
            self._retry_at.pop(update_id, None)
            self._failures.pop(update_id, None)
            if update_id not in self._redeliver:  # redeliver() during the POST: it goes once more
                self.updates = [u for u in self.updates if u["update_id"] != update_id]
        elif self.webhook_url:  # (a POST that fails after deleteWebhook leaves the update to getUpdates)
            failures = self._failures.get(update_id, 0) + 1
            self._failures[update_id] = failures
            delay = retry_after or min(self.webhook_retry_delay * 2 ** (failures - 1), self.webhook_retry_max)
            self._retry_at[update_id] = time.monotonic() + delay
            self.webhook_last_error = (int(time.time()), error)
        self._notify()

    async def _run_webhook_answer(self, response: aiohttp.ClientResponse) -> None:
        """A 2xx answer may carry a method call (aiogram: a handler returning a method); Telegram runs
        it and tells the bot nothing. get* methods and webhook/logOut/close ones are ignored."""
        raw: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        content_type = response.content_type
        if content_type.startswith("multipart/"):
            reader = MultipartReader(response.headers, response.content)
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    data = bytes(await part.read(decode=False))
                    files[part.name] = UploadedFile(part.filename, len(data), data,
                                                    part.headers.get("Content-Type"))
                else:
                    raw[part.name] = await part.text()
        else:
            body = await response.read()
            if content_type == "application/json" and body:
                with contextlib.suppress(ValueError):
                    decoded = json.loads(body)
                    raw = decoded if isinstance(decoded, dict) else {}
            elif content_type == "application/x-www-form-urlencoded":
                raw = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
        method = str(raw.pop("method", "") or "")
        if not method or method.lower() in _NOT_FROM_WEBHOOK or method.lower().startswith("get"):
            return
        call = Call(method=_CANONICAL.get(method.lower(), method), params={}, time=time.monotonic(),
                    via_webhook=True)
        await self._run_call(call, raw, files, self.token)
        self.calls.append(call)

    # -- test side: webhook ----------------------------------------------------------------------

    async def post_to_webhook(self, body: dict[str, Any] | str | bytes, *,
                              secret: str | _Unset | None = UNSET, url: str | None = None,
                              headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> int:
        """POST `body` (an update dict as JSON, or raw text/bytes sent as application/json) to the
        webhook (or `url`, a loopback URL) as a test chooses, and return the HTTP status the bot
        answered. `secret`: the header's value; by default the secret_token the bot set; None = no
        header. Not a Telegram delivery: not in webhook_posts, nothing is queued or confirmed."""
        target = self._webhook_target(url)
        if target is None:
            raise ValueError(f"no loopback webhook to post to (webhook_url={self.webhook_url!r}, "
                             f"url={url!r})")
        if isinstance(body, dict) and isinstance(body.get("callback_query"), dict):
            self._callback_ids.add(str(body["callback_query"].get("id")))  # the bot may answer it
        data = json.dumps(body) if isinstance(body, dict) else body
        sent_headers = {"Content-Type": "application/json", **(headers or {})}
        token = self.webhook_secret if isinstance(secret, _Unset) else secret
        if token:
            sent_headers[SECRET_HEADER] = token
        async with aiohttp.ClientSession() as session, session.post(
                target, data=data, headers=sent_headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await response.read()
            return response.status

    @property
    def webhook_delivered(self) -> list[int]:
        """Update ids the bot answered with a 2xx, in the order of the answers (a repeat means the
        update was delivered twice: a redeliver(), or an answer that came too late)."""
        return [post.update_id for post in self.webhook_posts if post.ok]

    def webhook_posts_of(self, update: dict[str, Any] | int) -> list[WebhookPost]:
        """The pushes of one update (an update id, an update, or what send_message/press returned)."""
        update_id = self._find_update_id(update)
        return [post for post in self.webhook_posts if post.update_id == update_id]

    async def wait_webhook_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued update has been delivered to the webhook (answered 2xx) and no
        POST is in flight."""
        deadline = time.monotonic() + timeout
        while self._pending() or self._in_flight:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s: {len(self._pending())} update(s) pending, "
                    f"{len(self._in_flight)} in flight, webhook {self.webhook_url!r}, last error "
                    f"{self.webhook_last_error}, {len(self.webhook_posts)} post(s)\n{self.summary()}")
            await asyncio.sleep(0.01)

    # -- messages: shared pieces -----------------------------------------------------------------

    def _new_message_id(self, chat_id: int) -> int:
        """Per-chat ids shared by the users' and the bot's messages, so they never collide."""
        self._next_message_id[chat_id] = self._next_message_id.get(chat_id, 0) + 1
        return self._next_message_id[chat_id]

    def _store(self, message: dict[str, Any]) -> None:
        self.messages.setdefault(message["chat"]["id"], {})[message["message_id"]] = message

    @staticmethod
    def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
        reply = copy.deepcopy(message)
        reply.pop("reply_to_message", None)  # Telegram does not nest replies further
        return reply

    def _command_entity(self, text: str) -> dict[str, Any] | None:
        match = re.match(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_/<>])", text)
        return {"type": "bot_command", "offset": 0, "length": match.end()} if match else None

    def _chat_id(self, p: dict[str, Any], field: str = "chat_id") -> int:
        value = p.get(field)
        if isinstance(value, str) and value.startswith("@"):
            for chat in self.chats.values():
                if chat.get("username", "").lower() == value[1:].lower():
                    return chat["id"]
            raise _bad("chat not found")
        if not isinstance(value, int):
            raise _bad("chat_id is empty" if value in (None, "") else "chat not found")
        return value

    @staticmethod
    def _message_id(p: dict[str, Any]) -> int:
        value = p.get("message_id")
        if not isinstance(value, int):
            raise _bad("message identifier is not specified")
        return value

    def _chat(self, chat_id: int) -> dict[str, Any]:
        chat = self.chats.get(chat_id)
        if chat is not None:
            return chat
        if self.known_chats_only:
            raise _bad("chat not found")
        return {"id": chat_id, "type": "private", "first_name": "User"} if chat_id > 0 else \
            {"id": chat_id, "type": "supergroup", "title": "Group"}

    def _deliverable_chat(self, chat_id: int) -> dict[str, Any]:
        """The target chat, once content is valid: unknown -> 400, upgraded -> 400 + migrate_to_chat_id,
        kicked or blocked -> 403."""
        chat = self._chat(chat_id)
        self._check_member(chat_id)
        if chat_id in self.blocked:
            raise ApiError(403, BLOCKED)
        if chat_id in self.strangers:
            raise ApiError(403, CANNOT_INITIATE)
        return chat

    def _check_member(self, chat_id: int) -> None:
        """The bot can still act in this chat: not an upgraded group, not removed from it."""
        if chat_id in self.upgraded:
            raise ApiError(400, UPGRADED, migrate_to_chat_id=self.upgraded[chat_id])
        if chat_id in self.kicked:
            raise ApiError(403, KICKED.format(type=self.chats[chat_id]["type"]))

    def _formatted(self, p: dict[str, Any], text_field: str, entities_field: str, *, limit: int,
                   too_long: str, required: bool,
                   parse_mode: str | None = None) -> tuple[str | None, list[dict[str, Any]]]:
        """Parse text/caption per parse_mode, trim it like Telegram and check its length."""
        raw = p.get(text_field)
        if raw is None or raw == "":
            if required:
                raise _bad("message text is empty")
            return None, []
        raw = str(raw)
        mode = (parse_mode if parse_mode is not None else p.get("parse_mode")) or ""
        given = p.get(entities_field)
        if mode.lower() == "html" and not given:  # explicit entities win over parse_mode, as in Telegram
            try:
                text, entities = parse_html(raw)
            except HtmlParseError as e:
                raise _bad(f"can't parse entities: {e}") from e
        else:  # plain text or explicit entities (Markdown modes are not parsed by the fake)
            text, entities = raw, copy.deepcopy(given) if isinstance(given, list) else []
        text, entities = _strip_text(text, entities)
        if required and not text:
            raise _bad("message text is empty")
        if len(text) > limit:
            raise ApiError(400, too_long)
        return (text or None), entities

    def _text(self, p: dict[str, Any], *, too_long: str = "Bad Request: message is too long"
              ) -> tuple[str, list[dict[str, Any]]]:
        text, entities = self._formatted(p, "text", "entities", limit=MAX_TEXT, too_long=too_long,
                                         required=True)
        assert text is not None
        return text, entities

    def _caption(self, p: dict[str, Any], parse_mode: str | None = None
                 ) -> tuple[str | None, list[dict[str, Any]]]:
        return self._formatted(p, "caption", "caption_entities", limit=MAX_CAPTION,
                               too_long="Bad Request: message caption is too long", required=False,
                               parse_mode=parse_mode)

    @staticmethod
    def _reply_markup(p: dict[str, Any]) -> dict[str, Any] | None:
        """Validate an inline keyboard; return it if the message will show it."""
        markup = p.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return None  # reply keyboards / force_reply are not part of the returned Message
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
        for row in rows:
            for button in row:
                if "callback_data" in button:
                    size = len(str(button["callback_data"]).encode("utf-8"))
                    if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                        raise _bad("BUTTON_DATA_INVALID")
                elif set(button) <= {"text"}:
                    raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _reply_to(self, p: dict[str, Any], chat_id: int) -> dict[str, Any] | None:
        """reply_parameters (or the older reply_to_message_id) -> the replied message, or 400."""
        params = p.get("reply_parameters") if isinstance(p.get("reply_parameters"), dict) else None
        message_id = params.get("message_id") if params else p.get("reply_to_message_id")
        if message_id is None:
            return None
        target_chat = params.get("chat_id", chat_id) if params else chat_id
        allow = (params or {}).get("allow_sending_without_reply", p.get("allow_sending_without_reply"))
        target = None
        if isinstance(target_chat, int) and target_chat not in self.upgraded:
            target = self.messages.get(target_chat, {}).get(int(message_id))
        if target is None:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return self._without_reply(target)

    def _bot_message(self, chat_id: int, content: dict[str, Any], p: dict[str, Any],
                     markup: dict[str, Any] | None, reply: dict[str, Any] | None) -> dict[str, Any]:
        """Create, store and return (a copy of) a message the bot sent."""
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id), "date": int(time.time()),
            "chat": self._chat(chat_id), "from": self.bot_user,
        }
        if reply is not None:
            message["reply_to_message"] = reply
        message.update({k: v for k, v in content.items() if v not in (None, [])})
        if markup is not None:
            message["reply_markup"] = markup
        if p.get("has_spoiler"):
            message["has_media_spoiler"] = True
        self._store(message)
        return copy.deepcopy(message)

    # -- files -----------------------------------------------------------------------------------

    def _register(self, *, data: bytes | None = None, url: str | None = None, kind: str,
                  file_name: str | None = None, mime_type: str | None = None) -> _FileRecord:
        self._counter += 1
        n = self._counter
        record = _FileRecord(file_id=f"{kind}-{n}-{secrets.token_hex(4)}", file_unique_id=f"U{n}",
                             data=data, url=url, file_name=file_name, mime_type=mime_type)
        if data is not None and (size := image_size(data)):
            record.width, record.height = size
        self._file_records[record.file_id] = record
        return record

    def _file(self, kind: str, value: Any) -> _FileRecord:
        """Resolve a media value (upload, URL or file_id) into a file record, applying Telegram's limits."""
        if isinstance(value, UploadedFile):
            if value.size == 0:
                raise _bad("file must be non-empty")
            if kind == "photo":
                if value.size > MAX_PHOTO_UPLOAD:
                    raise _bad(f"file of size {value.size} bytes is too big for a photo; "
                               f"the maximum size is {MAX_PHOTO_UPLOAD} bytes")
                size = image_size(value.data)
                if size and (size[0] + size[1] > 10000 or max(size) > 20 * max(min(size), 1)):
                    raise _bad("PHOTO_INVALID_DIMENSIONS")
            mime = (value.content_type if value.content_type not in (None, "application/octet-stream")
                    else None)
            mime = mime or mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
            return self._register(data=value.data, kind=kind, file_name=value.filename, mime_type=mime)
        if isinstance(value, str) and value:
            if _is_url(value):
                if self.refuse_urls:
                    raise ApiError(400, WRONG_FILE)
                name = value.rsplit("/", 1)[-1].split("?", 1)[0] or None
                return self._register(url=value, kind=kind, file_name=name,
                                      mime_type=mimetypes.guess_type(name or "")[0])
            record = self._file_records.get(value)
            if record is None:
                if self.strict_file_ids:
                    raise ApiError(400, WRONG_FILE)
                record = self._register(kind=kind)
            return record
        raise _bad(f"there is no {kind} in the request")

    def _photo_sizes(self, record: _FileRecord) -> list[dict[str, Any]]:
        """A thumbnail and the full size, like Telegram (bots usually take photo[-1])."""
        scale = 90 / max(record.width, record.height, 1)
        thumb = dataclasses.replace(record, file_id=record.file_id + "-t",
                                    file_unique_id=record.file_unique_id + "t")
        self._file_records[thumb.file_id] = thumb
        sizes = []
        for rec, w, h in ((thumb, max(int(record.width * scale), 1), max(int(record.height * scale), 1)),
                          (record, record.width, record.height)):
            size: dict[str, Any] = {"file_id": rec.file_id, "file_unique_id": rec.file_unique_id,
                                    "width": w, "height": h}
            if rec.size is not None:
                size["file_size"] = rec.size
            sizes.append(size)
        return sizes

    def _media_object(self, kind: str, record: _FileRecord, p: dict[str, Any]) -> Any:
        """The Message field for a file of this kind (photo -> list of PhotoSize, others -> dict)."""
        if kind == "photo":
            return self._photo_sizes(record)
        obj: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
        if record.size is not None:
            obj["file_size"] = record.size
        width, height = p.get("width", record.width), p.get("height", record.height)
        duration = p.get("duration", 1)
        if kind in ("video", "animation"):
            obj.update(width=width, height=height, duration=duration)
        elif kind in ("audio", "voice"):
            obj["duration"] = duration
        elif kind == "video_note":
            obj.update(length=p.get("length", 240), duration=duration)
        elif kind == "sticker":
            obj.update(type="regular", width=512, height=512, is_animated=False, is_video=False)
        if kind in ("document", "video", "audio", "animation"):
            if record.file_name:
                obj["file_name"] = record.file_name
            if record.mime_type:
                obj["mime_type"] = record.mime_type
        if kind == "audio":
            for key in ("performer", "title"):
                if key in p:
                    obj[key] = p[key]
        return obj

    def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        record = self._file_records.get(str(p.get("file_id", "")))
        if record is None:
            raise _bad("invalid file_id")
        out: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
        if record.data is None:  # sent by URL: Telegram has it, the fake has no bytes to serve
            return out
        if len(record.data) > MAX_DOWNLOAD:
            raise _bad("file is too big")
        if record.file_path is None:
            ext = mimetypes.guess_extension(record.mime_type or "") or ".bin"
            record.file_path = f"files/file_{record.file_unique_id}{ext}"
            self.files[record.file_path] = record.data
        out.update(file_size=len(record.data), file_path=record.file_path)
        return out

    # -- send methods ----------------------------------------------------------------------------

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        text, entities = self._text(p)
        markup = self._reply_markup(p)
        reply = self._reply_to(p, chat_id)
        self._deliverable_chat(chat_id)
        return self._bot_message(chat_id, {"text": text, "entities": entities}, p, markup, reply)

    def _send_media(self, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        caption, caption_entities = self._caption(p)
        markup = self._reply_markup(p)
        record = self._file(kind, p.get(kind))
        reply = self._reply_to(p, chat_id)
        self._deliverable_chat(chat_id)
        content = {kind: self._media_object(kind, record, p), "caption": caption,
                   "caption_entities": caption_entities}
        return self._bot_message(chat_id, content, p, markup, reply)

    def _send_media_group(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        chat_id = self._chat_id(p)
        media = p.get("media")
        if media is None:
            raise _bad('parameter "media" is required')
        if not isinstance(media, list):
            raise _bad("can't parse media JSON object")
        if not media:
            raise _bad("there are no messages to send")
        if len(media) > MEDIA_GROUP_MAX:
            raise _bad("too many messages to send as an album")
        if len(media) < MEDIA_GROUP_MIN:  # Telegram documents 2-10 items; the fake holds the bot to it
            raise _bad("wrong number of media: a media group must include 2-10 items")
        kinds = [item.get("type") if isinstance(item, dict) else None for item in media]
        for kind in kinds:
            if kind not in ("photo", "video", "document", "audio"):
                raise _bad(f'can\'t parse InputMedia: type "{kind}" can\'t be used in sendMediaGroup')
        for only in ("document", "audio"):
            if only in kinds and any(k != only for k in kinds):
                raise _bad(f"{only} can't be mixed with other media types")
        prepared = []
        for item in media:
            caption, entities = self._caption(item, parse_mode=item.get("parse_mode") or "")
            prepared.append((item["type"], self._file(item["type"], item.get("media")), caption, entities,
                             item))
        reply = self._reply_to(p, chat_id)
        self._deliverable_chat(chat_id)
        group_id = str(10**17 + secrets.randbelow(10**17))
        return [
            self._bot_message(chat_id, {kind: self._media_object(kind, record, item), "caption": caption,
                                        "caption_entities": entities, "media_group_id": group_id},
                              item, None, reply)
            for kind, record, caption, entities, item in prepared
        ]

    def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self._deliverable_chat(self._chat_id(p))
        return True

    def _send_other(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        """sendInvoice, sendLocation, sendPoll...: a message the bot can parse, content kept light."""
        chat_id = self._chat_id(p)
        markup = self._reply_markup(p)
        reply = self._reply_to(p, chat_id)
        self._deliverable_chat(chat_id)
        content: dict[str, Any] = {}
        if method.lower() == "sendinvoice":
            content["invoice"] = {
                "title": p.get("title", ""), "description": p.get("description", ""),
                "start_parameter": p.get("start_parameter", ""), "currency": p.get("currency", "XTR"),
                "total_amount": sum(int(x.get("amount", 0)) for x in p.get("prices") or []),
            }
        return self._bot_message(chat_id, content, p, markup, reply)

    _CONTENT_KEYS = ("text", "entities", "caption", "caption_entities", "photo", "document", "video", "audio",
                     "animation", "voice", "video_note", "sticker", "invoice")

    def _source_message(self, p: dict[str, Any], what: str) -> dict[str, Any]:
        source = self.messages.get(self._chat_id(p, "from_chat_id"), {}).get(self._message_id(p))
        if source is None:
            raise _bad(f"message to {what} not found")
        return source

    def _copy_message(self, p: dict[str, Any]) -> dict[str, int]:
        chat_id = self._chat_id(p)
        source = self._source_message(p, "copy")
        content = {k: copy.deepcopy(source[k]) for k in self._CONTENT_KEYS if k in source}
        if "caption" in p and "text" not in source:  # a new caption replaces the original one
            content["caption"], content["caption_entities"] = self._caption(p)
        markup = self._reply_markup(p)
        reply = self._reply_to(p, chat_id)
        self._deliverable_chat(chat_id)
        return {"message_id": self._bot_message(chat_id, content, p, markup, reply)["message_id"]}

    def _forward_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        source = self._source_message(p, "forward")
        self._deliverable_chat(chat_id)
        content = {k: copy.deepcopy(source[k]) for k in self._CONTENT_KEYS if k in source}
        content["forward_origin"] = {"type": "user", "date": source["date"], "sender_user": source["from"]}
        return self._bot_message(chat_id, content, p, None, None)

    # -- edit / delete ---------------------------------------------------------------------------

    def _message_to_edit(self, p: dict[str, Any]) -> dict[str, Any] | None:
        """The stored message an edit targets; None for inline messages (answered with True)."""
        if p.get("inline_message_id"):
            return None
        chat_id = self._chat_id(p)
        self._check_member(chat_id)
        message = self.messages.get(chat_id, {}).get(self._message_id(p))
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad("message can't be edited")
        return message

    def _apply_edit(self, message: dict[str, Any], changes: dict[str, Any],
                    markup: dict[str, Any] | None) -> dict[str, Any]:
        """Refuse a no-op edit like Telegram, else update the stored message and return it."""
        keys = set(changes) | {"reply_markup"}
        before = {k: message.get(k) for k in keys}
        after = {**{k: (v if v not in ([], "") else None) for k, v in changes.items()},
                 "reply_markup": markup}
        if before == after:
            raise ApiError(400, NOT_MODIFIED)
        self._deliverable_chat(message["chat"]["id"])
        for key, value in after.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _edit_text(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        # Telegram words an over-long *edit* differently from an over-long send.
        text, entities = self._text(p, too_long="Bad Request: MESSAGE_TOO_LONG")
        markup = self._reply_markup(p)
        message = self._message_to_edit(p)
        if message is None:
            return True
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        return self._apply_edit(message, {"text": text, "entities": entities}, markup)

    def _edit_caption(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        caption, entities = self._caption(p)
        markup = self._reply_markup(p)
        message = self._message_to_edit(p)
        if message is None:
            return True
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        return self._apply_edit(message, {"caption": caption, "caption_entities": entities}, markup)

    def _edit_reply_markup(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        markup = self._reply_markup(p)
        message = self._message_to_edit(p)
        if message is None:
            return True
        return self._apply_edit(message, {}, markup)

    def _edit_media(self, p: dict[str, Any]) -> dict[str, Any] | bool:
        media = p.get("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "video", "document", "audio",
                                                                      "animation"):
            raise _bad("can't parse InputMedia: media not found")
        kind = media["type"]
        caption, entities = self._caption(media, parse_mode=media.get("parse_mode") or "")
        markup = self._reply_markup(p)
        record = self._file(kind, media.get("media"))
        message = self._message_to_edit(p)
        if message is None:
            return True
        if "text" in message:
            raise _bad("there is no media in the message to edit")
        self._deliverable_chat(message["chat"]["id"])
        for old in ("photo", "video", "document", "audio", "animation"):
            message.pop(old, None)
        changes = {kind: self._media_object(kind, record, media), "caption": caption,
                   "caption_entities": entities}
        return self._apply_edit(message, changes, markup)

    def _delete_message(self, p: dict[str, Any]) -> bool:
        chat_id = self._chat_id(p)
        message_id = self._message_id(p)
        self._check_member(chat_id)
        if self.messages.get(chat_id, {}).pop(message_id, None) is None:
            raise _bad("message to delete not found")
        self.deleted.append((chat_id, message_id))
        return True

    def _delete_messages(self, p: dict[str, Any]) -> bool:
        chat_id = self._chat_id(p)
        self._check_member(chat_id)
        for message_id in p.get("message_ids") or []:  # missing ones are skipped, as Telegram does
            if self.messages.get(chat_id, {}).pop(message_id, None) is not None:
                self.deleted.append((chat_id, message_id))
        return True

    # -- payments (Telegram Stars) ---------------------------------------------------------------

    def _send_invoice(self, p: dict[str, Any]) -> dict[str, Any]:
        for name, limit in (("title", MAX_INVOICE_TITLE), ("description", MAX_INVOICE_DESCRIPTION)):
            if not 1 <= len(str(p.get(name) or "")) <= limit:
                raise _bad(f"{name.upper()}_INVALID")
        if not 1 <= len(str(p.get("payload") or "").encode("utf-8")) <= MAX_INVOICE_PAYLOAD_BYTES:
            raise _bad("INVOICE_PAYLOAD_INVALID")
        prices = p.get("prices")
        if not isinstance(prices, list) or not prices or not all(
                isinstance(x, dict) and isinstance(x.get("amount"), int) and x.get("label")
                for x in prices):
            raise _bad("can't parse prices JSON object")
        if p.get("currency") == STARS_CURRENCY:
            # Stars: no payment provider, one price, no tips.
            if p.get("provider_token"):
                raise _bad("PAYMENT_PROVIDER_INVALID")
            if len(prices) != 1 or p.get("max_tip_amount") or p.get("suggested_tip_amounts"):
                raise _bad("STARS_INVOICE_INVALID")
        elif not p.get("provider_token"):
            raise _bad("PAYMENT_PROVIDER_INVALID")
        if sum(x["amount"] for x in prices) <= 0:
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
        message = self._send_other("sendInvoice", p)
        self.invoices[message["chat"]["id"], message["message_id"]] = copy.deepcopy(p)
        return message

    def _answer_pre_checkout_query(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("pre_checkout_query_id", ""))
        queued = self._checkouts.get(query_id)
        if queued is None or time.monotonic() - queued > CHECKOUT_TIMEOUT:
            raise ApiError(400, QUERY_TOO_OLD)  # unknown, answered before, or answered too late
        if not isinstance(p.get("ok"), bool):
            raise _bad('parameter "ok" is required')
        if not p["ok"] and not str(p.get("error_message") or "").strip():
            raise _bad("ERROR_MESSAGE_EMPTY")
        del self._checkouts[query_id]
        self.checkout_answers[query_id] = p
        return True

    def _refund_star_payment(self, p: dict[str, Any]) -> bool:
        charge = self.charges.get(str(p.get("telegram_payment_charge_id", "")))
        if charge is None or charge.user_id != p.get("user_id"):
            raise ApiError(400, CHARGE_NOT_FOUND)
        if charge.refunded:
            raise ApiError(400, ALREADY_REFUNDED)
        charge.refunded = True
        return True

    # -- callbacks and commands ------------------------------------------------------------------

    def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        if len(str(p.get("text", ""))) > MAX_CALLBACK_ANSWER:
            raise _bad("MESSAGE_TOO_LONG")
        query_id = str(p.get("callback_query_id", ""))
        if query_id not in self._callback_ids:
            raise ApiError(400, QUERY_TOO_OLD)
        self.callback_answers[query_id] = p
        return True

    @staticmethod
    def _commands_key(p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(p.get("language_code", ""))

    def _set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(p)] = commands
        return True

    def _delete_my_commands(self, p: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    def _get_my_commands(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(p), [])


__all__ = ["CHANNEL_BOT", "GROUP_ANONYMOUS_BOT", "GROUP_OWNER", "SECRET_HEADER", "UNSET", "ApiError", "Call",
           "Charge", "FakeTelegram", "HtmlParseError", "UploadedFile", "WebhookPost", "image_size",
           "is_loopback", "parse_html", "tiny_png", "utf16_len"]
