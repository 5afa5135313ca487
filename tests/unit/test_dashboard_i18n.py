"""The dashboard templates' `_()` and `ngettext()` (bot/dashboard/site.py): the catalogs' text
in the current language, the {placeholders} filled in escaped, plural forms by the number."""

from __future__ import annotations

import pytest
from aiogram.utils.i18n import I18n
from markupsafe import Markup

from bot.dashboard.site import translate, translate_plural
from bot.i18n import create_i18n


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return create_i18n("en")


def test_a_message_in_the_current_language_with_its_params_escaped(i18n: I18n) -> None:
    with i18n.context(), i18n.use_locale("ru"):
        assert translate("Nobody yet.") == "Пока никого."
        since = translate("Since {when}", when="<b>x</b>")
        assert isinstance(since, Markup) and since == "С &lt;b&gt;x&lt;/b&gt;"
    with i18n.context(), i18n.use_locale("en"):
        assert translate("{used} of {uses}", used=0, uses="∞") == "0 of ∞"


@pytest.mark.parametrize(("locale", "n", "text"), [
    ("ru", 1, "1 день"), ("ru", 3, "3 дня"), ("ru", 14, "14 дней"), ("ru", 21, "21 день"),
    ("en", 1, "1 day"), ("en", 7, "7 days"),
])
def test_plural_forms_follow_the_number(i18n: I18n, locale: str, n: int, text: str) -> None:
    with i18n.context(), i18n.use_locale(locale):
        assert translate_plural("{n} day", "{n} days", n) == text


def test_markup_may_stand_for_the_number(i18n: I18n) -> None:
    """A person's balance: the number in its <strong>, the word in the number's form."""
    with i18n.context(), i18n.use_locale("ru"):
        strong = Markup('<strong id="balance">{}</strong>').format(5)
        assert translate_plural("{n} credit", "{n} credits", 5, n=strong) == (
            '<strong id="balance">5</strong> кредитов')
        assert translate_plural("{n} credit", "{n} credits", 2, n="<i>") == "&lt;i&gt; кредита"
