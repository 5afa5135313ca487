"""/language: the person picks one of the shipped languages; it is stored with them, so it
outlives restarts and wins over their Telegram app's language (see i18n.locale_of)."""

from __future__ import annotations

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from babel import Locale, UnknownLocaleError

from bot import texts
from bot.errors import Refusal
from bot.keyboards import Language, language_keyboard
from bot.services.telegram import is_not_modified
from bot.store import Store, User


def own_name(code: str) -> str:
    """A language in its own words ("English", "Русский"): whoever cannot read the current
    language still finds their own."""
    try:
        name = Locale.parse(code).get_display_name(code) or code
    except (ValueError, UnknownLocaleError):
        name = code
    return name[:1].upper() + name[1:]


def languages(i18n: I18n) -> list[tuple[str, str]]:
    return [(code, own_name(code)) for code in sorted(i18n.available_locales)]


async def language(message: Message, account: User, i18n: I18n) -> None:
    await message.answer("🌐 " + _("Choose your language:"),
                         reply_markup=language_keyboard(account.id, i18n.current_locale,
                                                        languages(i18n)))


async def choose(query: CallbackQuery, callback_data: Language, account: User, store: Store,
                 i18n: I18n) -> None:
    if callback_data.owner != account.id:
        raise Refusal(texts.NOT_YOURS)
    code = callback_data.code
    if code not in i18n.available_locales or not isinstance(query.message, Message):
        raise Refusal(texts.OUTDATED)
    await store.set_language(account.id, code)
    # This update was set up in the old language; the answer is the first in the new one.
    with i18n.use_locale(code):
        text = "🌐 " + _("Language: {language}. /help lists what I can do.").format(
            language=own_name(code))
        markup = language_keyboard(account.id, code, languages(i18n))
    try:
        await query.message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if not is_not_modified(error):  # the language it already was: nothing to change
            raise
    except TelegramRetryAfter:  # the choice is stored; only the message lags behind
        raise Refusal(texts.SLOW_DOWN) from None


def make_router() -> Router:
    router = Router(name="language")
    router.message.register(language, Command("language"))
    router.callback_query.register(choose, Language.filter())
    return router
