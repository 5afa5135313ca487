"""Languages: gettext catalogs in `locales/<lang>/LC_MESSAGES/messages.po`.

The `.po` files are compiled at start (by Babel), so there is no build step and no compiled
file to fall out of date.
"""

from __future__ import annotations

import functools
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.store import User


def N_(message: str) -> str:
    """Marks a message id for translation where it is defined; it is translated where shown."""
    return message


# Babel's Locale for a language code, made once (given a code, Babel parses it at every call).
babel_locale = functools.cache(Locale.parse)


def day_label(day: date, locale: str) -> str:
    """A day in `locale`'s words, as /stats and the dashboard's charts say it: "7 Dec", "7 дек."."""
    return format_date(day, "d MMM", locale=babel_locale(locale))


LOCALES_PATH = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def create_i18n(default_locale: str) -> I18n:
    """aiogram's I18n over the `.po` files, compiled in passing (its loader reads `.mo` only)."""
    with tempfile.TemporaryDirectory(prefix="locales-") as compiled:
        for po_path in sorted(LOCALES_PATH.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            locale = po_path.parent.parent.name
            with po_path.open("rb") as source:
                catalog = read_po(source, locale=locale, domain=DOMAIN)
            target = Path(compiled, locale, "LC_MESSAGES", f"{DOMAIN}.mo")
            target.parent.mkdir(parents=True)
            with target.open("wb") as mo_file:
                write_mo(mo_file, catalog)
        i18n = I18n(path=compiled, default_locale=default_locale, domain=DOMAIN)
    if default_locale not in i18n.available_locales:
        raise ValueError(f"DEFAULT_LANGUAGE {default_locale!r} is not one of "
                         f"{', '.join(i18n.available_locales)}")
    return i18n


def locale_of(user: User | None, i18n: I18n, telegram_language: str | None = None) -> str:
    """The user's choice, else their Telegram language, else the default."""
    candidates = [telegram_language]
    if user is not None:
        candidates = [user.language, telegram_language or user.tg_language]
    for candidate in candidates:
        code = (candidate or "").split("-")[0].lower()
        if code in i18n.available_locales:
            return code
    return i18n.default_locale


class UserLocaleMiddleware(I18nMiddleware):
    """Sets the language of each update from the registered user (see AccountMiddleware)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        telegram_user = data.get("event_from_user")
        return locale_of(data.get("account"), self.i18n,
                         telegram_user.language_code if telegram_user else None)
