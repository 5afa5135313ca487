"""The root of the bot's own exceptions, and refusals. Everything the bot raises on purpose is a
BotError, so a caller can tell the bot's known failures from a bug (as httpx's HTTPError and
procrastinate's ProcrastinateException do). The tree, by where each lives:

    BotError
    ├── Refusal                 a request turned down with a message to the person (here)
    │   ├── UsageError          a command used wrongly: the reason and the usage (services.accounts)
    │   └── PickerError         a picker press turned down (services.generation)
    │       └── PickerChanged   ✅ on a keyboard older than the choice: nothing charged
    ├── KieError                Kie.ai said no, or nothing (kie.errors): KieAuthError,
    │                           KieInsufficientCredits (KieKeyCapped), KieNoResult, KieNotFound,
    │                           KieValidationError, KieRateLimited, KieUnavailable
    │                           (KieQueueFull), KieModelDisabled, KieTimeout, KieProtocolError
    ├── StoreError              the store refused a write (store): IntegrityError,
    │                           InsufficientCredits, DraftClosed, DraftChanged, LimitReached,
    │                           AlreadyRefunded, CreditsSpent (CreditsReserved), DatabaseInUse,
    │                           BackupError, TransferError, PromoRefused
    ├── DownloadError           a result could not be fetched (services.delivery); TooLarge
    ├── Expired                 a result sent again whose files are gone (services.delivery)
    ├── PictureError            an input photo could not be handed to Kie (services.pictures)
    ├── LeaseLost               a generation no longer this instance's to act on
    │                           (services.generation)
    ├── UnknownPayload          a paid invoice naming no package (services.payments)
    ├── SettingRefused          Telegram or Kie.ai refused BOT_TOKEN or KIE_API_KEY at start
    │                           (runners.checks; here, for `python -m bot` to catch)
    └── CatalogError            the catalog file is wrong (catalog.loader; here, for
                                `python -m bot` to catch)

A Refusal raised anywhere under a handler is turned into the answer by `handlers/refusals.py`
(a message, or the pressed button's alert), so handlers read straight through. This module
imports nothing of the bot's: every layer, the adapters too, may use it.
"""

from __future__ import annotations

import html
from collections.abc import Callable


class BotError(Exception):
    """The root of every exception the bot raises on purpose."""


class Refusal(BotError):
    """`message` is a message id (marked with N_), translated when shown; `params` fill it in."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def text(self, translate: Callable[[str], str]) -> str:
        """The refusal through `translate` (gettext in the person's language); the params may
        be user input, so escaped."""
        safe = {key: html.escape(str(value), quote=False) for key, value in self.params.items()}
        return translate(self.message).format(**safe)


class SettingRefused(BotError):
    """Telegram or Kie.ai refused a setting at start (BOT_TOKEN, KIE_API_KEY): the message is
    the one line `python -m bot` prints before it exits with 2. Never holds the secret."""


class CatalogError(BotError):
    """The catalog file (the shipped one, or CATALOG_PATH's) is wrong or cannot be read: the
    message is the one line `python -m bot` prints before it exits with 2, naming the file, the
    model and the field."""
