"""The catalogs in locales/: complete, without leftovers, placeholders intact; plurals and the
choice of language as the running bot makes them."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from aiogram.utils.i18n import I18n
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot import texts
from bot.i18n import create_i18n, locale_of
from bot.store import User

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ("en", "ru")
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
MsgId = str | tuple[str, ...]


# Python, and the dashboard's Jinja templates (their `_()` and `ngettext()` calls).
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2.ext:babel_extract")]


def babel_ids() -> set[MsgId]:
    """Message ids as `pybabel extract` finds them in bot/, templates included."""
    return {msg if isinstance(msg, str) else tuple(msg)
            for _, _, msg, _, _ in extract_from_dir(str(ROOT / "bot"), method_map=METHODS,
                                                    keywords=KEYWORDS)}


def ast_ids() -> set[str]:
    """Every string literal passed to a gettext-like call in bot/, nested calls included."""
    found = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if name in KEYWORDS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def catalog(locale: str) -> Catalog:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=locale)


def singular(msgid: MsgId) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_used_message_is_translated(locale: str) -> None:
    """Each id the code marks is in the catalog, not fuzzy, with every (plural) form non-empty."""
    po = catalog(locale)
    for msgid in babel_ids():
        message = po.get(singular(msgid))
        assert message is not None, f"{locale}: missing {msgid!r}"
        assert not message.fuzzy, f"{locale}: fuzzy {msgid!r}"
        if isinstance(msgid, tuple):
            assert message.pluralizable and message.id == msgid, f"{locale}: {msgid!r} not plural"
            assert len(message.string) == po.num_plurals, f"{locale}: {msgid!r} plural forms"
            assert all(message.string), f"{locale}: empty plural form of {msgid!r}"
        else:
            assert not message.pluralizable and message.string, f"{locale}: empty {msgid!r}"


def test_the_dashboards_templates_are_read_too() -> None:
    """Ids only the dashboard's templates use (`_()`, `ngettext()`) count as used, so each
    must be translated and none is reported unused."""
    ids = babel_ids()
    assert "Withdraw" in ids and ("{n} day", "{n} days") in ids


@pytest.mark.parametrize("locale", LOCALES)
def test_ids_babel_cannot_see_are_translated_too(locale: str) -> None:
    """Ids in nested gettext calls (which `pybabel extract` skips) are in the catalog as well."""
    po = catalog(locale)
    assert sorted(msgid for msgid in ast_ids() if not po.get(msgid)) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_no_unused_or_obsolete_entries(locale: str) -> None:
    """Every catalog entry is still used by the code; no obsolete (#~) entries linger."""
    po = catalog(locale)
    used = {singular(msgid) for msgid in babel_ids()} | ast_ids()
    assert sorted(m.id if isinstance(m.id, str) else m.id[0] for m in po
                  if m.id and singular(m.id) not in used) == []
    assert list(po.obsolete) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_placeholders_survive_translation(locale: str) -> None:
    """Each translation uses exactly the {placeholders} of its msgid (every plural form too)."""
    for message in catalog(locale):
        if not message.id:
            continue
        ids = (message.id,) if isinstance(message.id, str) else message.id
        wanted = set().union(*(fields(i) for i in ids))
        forms = (message.string,) if isinstance(message.string, str) else message.string
        for form in forms:
            assert fields(form) == wanted, f"{locale}: {message.id!r} → {form!r}"
        if wanted:
            assert "python-brace-format" in message.flags, f"{locale}: {message.id!r} flag"


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return create_i18n("en")


@pytest.mark.parametrize(("n", "text"), [
    (1, "1 кредит"), (2, "2 кредита"), (5, "5 кредитов"), (11, "11 кредитов"),
    (21, "21 кредит"), (22, "22 кредита"), (0, "0 кредитов"), (112, "112 кредитов"),
])
def test_russian_plurals(i18n: I18n, n: int, text: str) -> None:
    """Russian credit counts take the right one of three plural forms."""
    with i18n.context(), i18n.use_locale("ru"):
        assert texts.credits(n) == text


def test_english_plurals(i18n: I18n) -> None:
    """English: 1 credit, 2 credits (and negative amounts keep their sign)."""
    with i18n.context(), i18n.use_locale("en"):
        assert [texts.credits(n) for n in (1, 2, 0, -1)] == [
            "1 credit", "2 credits", "0 credits", "-1 credit"]


def user(language: str | None = None, tg_language: str | None = None) -> User:
    return User(id=1, username=None, first_name="A", last_name=None, language=language,
                tg_language=tg_language, balance=0, banned=False, blocked=False, created_at=0.0)


def test_locale_of_prefers_choice_then_telegram_then_default(i18n: I18n) -> None:
    """The user's chosen language wins, then Telegram's (ru-RU → ru), else the default."""
    assert locale_of(user("ru"), i18n, "en-US") == "ru"
    assert locale_of(user("en", "ru"), i18n, "ru") == "en"
    assert locale_of(user(None, "en"), i18n, "ru-RU") == "ru"
    assert locale_of(user(None, "ru"), i18n, None) == "ru"  # Telegram's last known language
    assert locale_of(None, i18n, "RU") == "ru"
    assert locale_of(None, i18n, None) == "en"
    assert locale_of(user(), i18n) == "en"


def test_locale_of_unknown_language_falls_back_to_default() -> None:
    """A language the bot has no catalog for gives the configured default."""
    russian_default = create_i18n("ru")
    assert locale_of(None, russian_default, "de-DE") == "ru"
    assert locale_of(user("xx", "de"), russian_default, "fr") == "ru"
    assert locale_of(user("xx"), russian_default, "en") == "en"


def test_unknown_default_language_is_refused() -> None:
    """create_i18n refuses a default language without a catalog (what stops the bot at start)."""
    with pytest.raises(ValueError, match="DEFAULT_LANGUAGE"):
        create_i18n("de")


def shipped_locales() -> list[str]:
    return sorted(path.parent.parent.name
                  for path in (ROOT / "locales").glob("*/LC_MESSAGES/messages.po"))


@pytest.mark.parametrize("locale", [code for code in shipped_locales() if code != "en"])
def test_every_locale_has_what_english_has(locale: str) -> None:
    """Every shipped catalog, not only the ones named in LOCALES, holds each English message,
    translated, with all of its own plural forms."""
    english, po = catalog("en"), catalog(locale)
    for message in english:
        if not message.id:
            continue
        translated = po.get(singular(message.id))
        assert translated is not None, f"{locale}: missing {message.id!r}"
        assert not translated.fuzzy, f"{locale}: fuzzy {message.id!r}"
        assert translated.pluralizable == message.pluralizable, f"{locale}: plural? {message.id!r}"
        if message.pluralizable:
            assert len(translated.string) == po.num_plurals, f"{locale}: plural forms {message.id!r}"
            assert all(translated.string), f"{locale}: empty plural form of {message.id!r}"
        else:
            assert translated.string, f"{locale}: empty {message.id!r}"
