"""Secrets out of everything the bot writes: one `redact` for log records and Telegram requests."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel

# aiogram only for type checking: bot.logs imports this module before anything else, and importing
# aiogram costs seconds, which a configuration error (exit 2 at once) must not pay.
if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

REDACTED = "***"


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as it may appear in what the bot writes: as is, HTML-escaped (chat texts are
    HTML, and foreign text is escaped into them) and URL-encoded (inside a quoted link).
    Empty values are dropped: "" occurs in every text."""
    forms = {form for secret in secrets if secret
             for form in (secret, html.escape(secret), html.escape(secret, quote=False),
                          quote(secret, safe=""))}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by REDACTED; `text` itself when none occurs (the usual case)."""
    found = [secret for secret in secrets if secret and secret in text]
    if not found:
        return text
    # Longest first: a secret that contains another must go whole, not leave its remainder behind.
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` with every secret out of every string it holds, walking pydantic models, lists,
    tuples and dicts; `value` itself when it holds none, else a copy of just the changed path.

    Never a mutation: aiogram's types are frozen, and callers reuse what they send (one keyboard
    for many messages), which must not change behind their back. Anything that is not text is
    left as is: file uploads (InputFile: bytes, file names, URLs to fetch), numbers, enums,
    dates, aiogram's `Default` placeholders.
    """
    if value is None:  # most fields of most methods and buttons: the cheapest way out first
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, BaseModel):
        return _scrub_model(value, secrets)
    if isinstance(value, (list, tuple)):
        return _scrub_sequence(value, secrets)
    if isinstance(value, dict):
        return _scrub_dict(value, secrets)
    return value


def _scrub_model(value: BaseModel, secrets: tuple[str, ...]) -> BaseModel:
    changes: dict[str, Any] = {}
    # A model's __dict__ holds its field values (faster than getattr per field); aiogram
    # models allow extra fields, so a field newer than this aiogram is covered too.
    for fields in (value.__dict__, value.__pydantic_extra__ or {}):
        for name, old in fields.items():
            new = scrub(old, secrets)
            if new is not old:
                changes[name] = new
    return value.model_copy(update=changes) if changes else value


def _scrub_sequence(value: list[Any] | tuple[Any, ...],
                    secrets: tuple[str, ...]) -> list[Any] | tuple[Any, ...]:
    items: list[Any] | None = None
    for index, old in enumerate(value):
        new = scrub(old, secrets)
        if new is not old:
            items = items if items is not None else list(value)
            items[index] = new
    if items is None:
        return value
    return tuple(items) if isinstance(value, tuple) else items


def _scrub_dict(value: dict[Any, Any], secrets: tuple[str, ...]) -> dict[Any, Any]:
    entries: dict[Any, Any] | None = None
    for key, old in value.items():
        new = scrub(old, secrets)
        if new is not old:
            entries = entries if entries is not None else dict(value)
            entries[key] = new
    return value if entries is None else entries


class RedactSecretsMiddleware:
    """aiogram request middleware (`bot.session.middleware(...)`): every secret out of every
    string of every method the bot sends, whichever method and field, so no chat ever shows one.

    It implements aiogram's `RequestMiddlewareType` protocol rather than subclassing
    `BaseRequestMiddleware` (an ABC adding nothing) to keep aiogram out of this module's import.
    Known gaps: a secret split by markup (`12<b>34</b>`) is not found, and replacing text sent
    with explicit `entities` (not parse_mode) would shift their offsets.
    """

    def __init__(self, secrets: Iterable[str], exempt: Iterable[str] = ("setWebhook",)) -> None:
        self.secrets = secret_forms(secrets)
        # setWebhook hands Telegram the webhook secret (secret_token) on purpose and is never shown
        # in a chat; redacting it would break the webhook.
        self.exempt = frozenset(exempt)

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if method.__api_method__ not in self.exempt:
            method = scrub(method, self.secrets)
        return await make_request(bot, method)
