"""End to end: the web dashboard in the admin's language. An admin whose bot speaks Russian
reads Russian pages (the people page, the overview's chart titles and legends, a person's
balance, a form's notice and a refusal), an English admin the same pages in English, the
charts' dates included; the switch (?lang=) is remembered by a cookie, wins over the bot's
language and keeps the page's query; a page for nobody signed in follows the browser's
language."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx

from testkit.bot import ADMIN_ID
from testkit.chat import Person
from testkit.e2e import generate
from tests.app.test_dashboard import CSRF, HOSTILE, NONCE, base_of, link_for, web

# The months as CLDR abbreviates them after a day's number ("7 дек."), and in English.
RUSSIAN_MONTHS = ("янв.", "февр.", "мар.", "апр.", "мая", "июн.", "июл.", "авг.", "сент.", "окт.",
                  "нояб.", "дек.")
ENGLISH_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_TICK = re.compile(r'<text class="axis" [^>]*text-anchor="middle">([^<]*)</text>')
SWITCH = re.compile(r'<a href="([^"]*)" hreflang="([a-z]+)"')


@asynccontextmanager
async def signed_in_as(tg, settings, language: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding the session of the admin, whose Telegram speaks `language`."""
    link = await link_for(Person(tg, ADMIN_ID, "Admin", language=language))
    async with httpx.AsyncClient(base_url=base_of(settings)) as client:
        assert (await client.get(link)).status_code == 200
        yield client


async def someone_generated(tg) -> None:
    """Alice (42) made a picture: a row in every chart and list."""
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a red fox")
    await tg.wait_for("sendPhoto", lambda call: call.params["chat_id"] == 42)


def chart(page: str, key: str) -> str:
    return page.split(f'id="chart-{key}"')[1].split("</figure>", maxsplit=1)[0]


def date_ticks(page: str, key: str) -> list[str]:
    """The dates under a chart's bars."""
    return DATE_TICK.findall(chart(page, key))


def last_days(count: int, months: tuple[str, ...]) -> list[str]:
    """The last `count` days (UTC), today the last, as "7 Dec" says them in `months`' language."""
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in reversed(range(count))]
    return [f"{day.day} {months[day.month - 1]}" for day in days]


def switch_links(page: str) -> dict[str, str]:
    """The language switch's links, by language, as the browser reads them (unescaped)."""
    return {code: html.unescape(href) for href, code in SWITCH.findall(page)}


async def test_a_russian_admin_reads_the_dashboard_in_russian(tg, kie, tmp_path, settings,
                                                              start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    await someone_generated(tg)
    async with signed_in_as(tg, settings, "ru") as client:
        people = (await client.get("/dashboard/people")).text
        assert '<html lang="ru">' in people and "<h1>Люди</h1>" in people
        assert ">Найти</button>" in people and "Время указано в UTC." in people
        assert "Sign out" not in people and ">Выйти</button>" in people

        overview = (await client.get("/dashboard/?days=7")).text
        assert "Последние 7 дней (UTC)" in overview and ">1 день</a>" not in overview
        assert ">7 дней</a>" in overview and ">14 дней</a>" in overview
        generations = chart(overview, "generations")
        assert "<figcaption>Генерации по видам</figcaption>" in generations
        assert "<bdi>Картинки</bdi>" in generations and "<bdi>Видео</bdi>" in generations
        assert "Картинки: 1" in generations  # the bar's tooltip names the series too
        credits = chart(overview, "credits")
        assert "Кредиты: списано и возвращено" in credits and "<bdi>возвращено</bdi>" in credits

        person = (await client.get("/dashboard/people/42")).text
        assert 'Баланс: <strong id="balance">60</strong> кредитов' in person
        assert "генерация" in person and "доставлено" in person  # ledger kind, state
        form = {"csrf": CSRF.search(person).group(1), "nonce": NONCE.search(person).group(1),
                "amount": "1"}
        topped = await client.post("/dashboard/people/42/topup", data=form, follow_redirects=True)
        assert "Кредиты начислены." in topped.text
        assert 'Баланс: <strong id="balance">61</strong> кредит<' in topped.text

        refused = await client.post(f"/dashboard/people/{ADMIN_ID}/ban",
                                    data={"csrf": form["csrf"], "banned": "1"})
        assert refused.status_code == 409
        assert "<h1>Не сделано</h1>" in refused.text
        assert "Админа нельзя заблокировать." in refused.text
        assert "Назад в панель" in refused.text


async def test_an_english_admin_reads_the_same_pages_in_english(tg, kie, tmp_path, settings,
                                                                start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    await someone_generated(tg)
    async with signed_in_as(tg, settings, "en") as client:
        people = (await client.get("/dashboard/people")).text
        assert '<html lang="en">' in people and "<h1>People</h1>" in people
        overview = (await client.get("/dashboard/?days=7")).text
        assert "The last 7 days (UTC), today so far included." in overview
        generations = chart(overview, "generations")
        assert "<figcaption>Generations by kind</figcaption>" in generations
        assert "<bdi>Images</bdi>" in generations
        person = (await client.get("/dashboard/people/42")).text
        assert 'Balance: <strong id="balance">60</strong> credits' in person
        refused = await client.post(f"/dashboard/people/{ADMIN_ID}/ban",
                                    data={"csrf": CSRF.search(person).group(1), "banned": "1"})
        assert refused.status_code == 409 and "<h1>Not done</h1>" in refused.text
        for page in (people, overview, person, refused.text):
            # Cyrillic only as the switch's own name for Russian.
            assert not any("а" <= c <= "я" for c in page.replace("Русский", "")), page


async def test_the_switch_is_remembered_and_wins_over_the_bots_language(tg, kie, tmp_path,
                                                                        settings, start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with signed_in_as(tg, settings, "en") as client:
        page = (await client.get("/dashboard/people")).text
        assert 'href="?lang=ru"' in page and 'href="?lang=en"' in page
        switched = await client.get("/dashboard/people?lang=ru")
        assert "<h1>Люди</h1>" in switched.text
        cookie = switched.headers["set-cookie"]
        assert "dashboard_language=ru" in cookie and "Path=/dashboard" in cookie
        assert "SameSite=Strict" in cookie
        assert "<h1>Сводка</h1>" in (await client.get("/dashboard/")).text  # remembered
        unknown = await client.get("/dashboard/?lang=xx")  # no such catalog: ignored
        assert "<h1>Сводка</h1>" in unknown.text and "set-cookie" not in unknown.headers
        await client.get("/dashboard/?lang=en")
        assert "<h1>Overview</h1>" in (await client.get("/dashboard/")).text


async def test_a_page_for_nobody_signed_in_follows_the_browser(tg, kie, tmp_path, settings,
                                                              start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with httpx.AsyncClient(base_url=base_of(settings)) as client:
        russian = await client.get("/dashboard/", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
        assert russian.status_code == 403 and "<h1>Вход не выполнен</h1>" in russian.text
        other = await client.get("/dashboard/", headers={"Accept-Language": "de;q=0.9"})
        assert other.status_code == 403 and "<h1>Not signed in</h1>" in other.text
        used = await client.get("/dashboard/login/" + "A" * 43,
                                headers={"Accept-Language": "ru"})
        assert used.status_code == 403 and "Ссылка использована или устарела" in used.text


async def test_the_charts_dates_are_in_the_pages_language(tg, kie, tmp_path, settings, start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with signed_in_as(tg, settings, "ru") as client:
        russian = (await client.get("/dashboard/?days=7")).text
        english = (await client.get("/dashboard/?days=7&lang=en")).text
    assert '<html lang="ru">' in russian and '<html lang="en">' in english
    for key in ("generations", "stars", "credits", "failures", "kie", "margin"):
        # Seven days: each its own tick, today the last; "7 дек." and "7 Dec", not "07 Dec".
        assert date_ticks(russian, key) == last_days(7, RUSSIAN_MONTHS), key
        assert date_ticks(english, key) == last_days(7, ENGLISH_MONTHS), key
    assert not any(month in tick for tick in DATE_TICK.findall(russian) for month in ENGLISH_MONTHS)


async def test_the_switch_keeps_the_pages_query(tg, kie, tmp_path, settings, start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with signed_in_as(tg, settings, "en") as client:
        page = (await client.get("/dashboard/generations?state=failed&page=2")).text
        assert 'href="?state=failed&amp;page=2&amp;lang=ru"' in page  # as the HTML writes it
        assert switch_links(page) == {"en": "?state=failed&page=2&lang=en",
                                      "ru": "?state=failed&page=2&lang=ru"}
        # Followed: the same filtered list, in Russian.
        followed = (await client.get("/dashboard/generations" + switch_links(page)["ru"])).text
        assert "<h1>Генерации</h1>" in followed
        assert '<option value="failed" selected>' in followed and "Страница 2" in followed

        # A query with its lang already: replaced (wherever it stood, however often), not added.
        page = (await client.get("/dashboard/people?lang=ru&q=al%20i&lang=en")).text
        assert switch_links(page) == {"en": "?q=al%20i&lang=en", "ru": "?q=al%20i&lang=ru"}
        assert page.count("lang=ru&amp;") == page.count("lang=en&amp;") == 0
        assert page.count("&amp;lang=") == 2  # one a link

        # Words, spaces, & and = in a value stay one value; the switch changes nothing else.
        page = (await client.get("/dashboard/people", params={"q": "a&lang=xx b=c+д"})).text
        assert switch_links(page)["ru"] == "?q=a%26lang%3Dxx%20b%3Dc%2B%D0%B4&lang=ru"
        followed = await client.get("/dashboard/people" + switch_links(page)["ru"])
        assert 'name="q" value="a&amp;lang=xx b=c+д"' in followed.text
        assert "<h1>Люди</h1>" in followed.text

        # A page without a query: just ?lang=.
        assert switch_links((await client.get("/dashboard/people")).text) == {
            "en": "?lang=en", "ru": "?lang=ru"}

        # A form's one-off notice (?done=) is shown once: the switch does not show it again.
        page = (await client.get("/dashboard/people?q=al&done=topup")).text
        assert switch_links(page) == {"en": "?q=al&lang=en", "ru": "?q=al&lang=ru"}


async def test_a_hostile_query_stays_escaped_in_the_switch(tg, kie, tmp_path, settings,
                                                           start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with signed_in_as(tg, settings, "en") as client:
        page = (await client.get("/dashboard/people",
                                 params={"q": HOSTILE, '"><script>': "'onclick=x"})).text
    nav = page.split('<nav class="languages"')[1].split("</nav>", maxsplit=1)[0]
    assert nav.count("<") == 4  # its two <a> and their </a>: nothing broke out of an href
    hrefs = re.findall(r'href="([^"]*)"', nav)
    assert len(hrefs) == 2 and all(  # percent-encoded, the &s written &amp;
        re.fullmatch(r"\?[\w%.~=-]+(&amp;[\w%.~=-]+)*", href, re.ASCII) for href in hrefs), hrefs
    links = switch_links(page)
    assert links["ru"] == ("?q=%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%27%E2%80%AE%26amp%3B"
                           "&%22%3E%3Cscript%3E=%27onclick%3Dx&lang=ru")
