"""The dashboard in headless Chromium (testkit/browser.py): signed in by the link followed from
another site's page (the SameSite=Strict cookie must still arrive), the overview's charts drawn
from two weeks of activity, and a top-up sent through the person's form landing in the ledger;
a Russian admin's charts dated in Russian, the dates side by side without overlapping on a wide
screen and a phone's, and the language switch keeping a search and a filter.

DASHBOARD_SCREENSHOT=docs/dashboard.png saves the overview there (README's screenshot):
    DASHBOARD_SCREENSHOT=docs/dashboard.png .venv/bin/python -m pytest \
        tests/app/test_dashboard_browser.py -n 0
The Russian overview's is saved in the test's tmp_path (dashboard-ru-<days>.png); pytest's
--basetemp=DIR puts it where you can look at it."""

from __future__ import annotations

import itertools
import os
import re
import time

from playwright.async_api import Page

from bot.store import LedgerKind, Store
from testkit.activity import seed
from testkit.bot import ADMIN_ID
from testkit.browser import chromium, chromium_path
from testkit.chat import Person
from tests.app.test_dashboard import link_for, web
from tests.app.test_dashboard_i18n import RUSSIAN_MONTHS, last_days

CHARTS = ("generations", "stars", "credits", "failures", "kie", "margin")


async def signed_in_page(browser, link: str, heading: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    # Followed from another site's page, as from Telegram Web.
    await page.set_content(f'<a id="go" href="{link}">the dashboard</a>')
    await page.click("#go")
    await page.wait_for_url("**/dashboard/")
    await page.get_by_role("heading", name=heading).wait_for()
    return page


async def date_ticks_fit(page: Page, key: str) -> list[str]:
    """The dates under a chart, checked to stand apart from each other and inside the chart."""
    svg = await page.locator(f"#chart-{key} svg").bounding_box()
    assert svg is not None, key
    ticks = page.locator(f"#chart-{key} svg text[text-anchor=middle]")
    labels, boxes = [], []
    for tick in await ticks.all():
        labels.append(await tick.text_content() or "")
        box = await tick.bounding_box()
        assert box is not None and box["width"] > 0, (key, labels[-1])
        boxes.append(box)
    assert labels, key
    for box, label in zip(boxes, labels, strict=True):
        assert svg["x"] <= box["x"] and box["x"] + box["width"] <= svg["x"] + svg["width"], label
    for (left, one), (right, other) in itertools.pairwise(zip(boxes, labels, strict=True)):
        assert left["x"] + left["width"] < right["x"], (key, one, other)
    return labels


async def test_sign_in_see_the_charts_and_top_up_through_the_form(tg, kie, tmp_path, settings,
                                                                  start_bot):
    chromium_path()  # skips (or fails under REQUIRE_BROWSER=1) before anything starts
    settings = web(tmp_path, tg, kie)
    store = await Store.open(settings.store.path)
    try:
        people = await seed(store, days=14, now=time.time())
    finally:
        await store.close()
    running = await start_bot(settings)
    link = await link_for(Person(tg, ADMIN_ID, "Admin"))
    async with chromium() as browser:
        page = await signed_in_page(browser, link, "Overview")
        for key in CHARTS:
            bars = page.locator(f"#chart-{key} rect.bar")
            assert await bars.count() > 0, key
            values = [float(await bar.get_attribute("data-value") or 0)
                      for bar in await bars.all()]
            assert any(values), key
            box = await bars.first.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0, key
        await page.screenshot(path=os.environ.get("DASHBOARD_SCREENSHOT")
                              or tmp_path / "dashboard.png", full_page=True)

        await page.get_by_role("link", name="People").click()
        await page.fill("input[name=q]", "alice")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("link", name=str(people[0])).click()
        before = int(await page.locator("#balance").inner_text())
        await page.fill("#topup input[name=amount]", "123")
        await page.fill("#topup input[name=note]", "from the browser")
        await page.get_by_role("button", name="Add credits").click()
        await page.get_by_role("status").filter(has_text="Credits added.").wait_for()
        assert int(await page.locator("#balance").inner_text()) == before + 123
        assert "from the browser" in await page.locator("#ledger").inner_text()
    store = running.app.parts.store
    [row] = [r for r in await store.ledger(people[0], 5) if r.note == "from the browser"]
    assert (row.kind, row.amount, row.admin_id) == (LedgerKind.TOPUP, 123, ADMIN_ID)


async def test_a_russian_admins_charts_are_dated_in_russian_and_the_switch_keeps_the_query(
        tg, kie, tmp_path, settings, start_bot):
    chromium_path()
    settings = web(tmp_path, tg, kie)
    store = await Store.open(settings.store.path)
    try:
        await seed(store, days=90, now=time.time())
    finally:
        await store.close()
    await start_bot(settings)
    link = await link_for(Person(tg, ADMIN_ID, "Admin", language="ru"))
    russian_tick = re.compile(r"\d{1,2} (" + "|".join(map(re.escape, RUSSIAN_MONTHS)) + ")")
    async with chromium() as browser:
        page = await signed_in_page(browser, link, "Сводка")
        for days in (7, 90):  # a label a day; one every twelve days, the last at the edge
            await page.get_by_role("link", name=re.compile(rf"^{days} д")).click()
            await page.wait_for_url(f"**/dashboard/?days={days}")
            for width in (1280, 390):  # a wide screen, a phone: the chart scales, words too
                await page.set_viewport_size({"width": width, "height": 900})
                for key in CHARTS:
                    labels = await date_ticks_fit(page, key)
                    assert all(russian_tick.fullmatch(label) for label in labels), labels
                    assert labels[-1] == last_days(1, RUSSIAN_MONTHS)[0], labels
                    # A label for each day, or for every so many days, today the last.
                    assert len(labels) == {7: 7, 14: 7, 30: 8, 90: 8}[days], labels
            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.screenshot(path=tmp_path / f"dashboard-ru-{days}.png", full_page=True)

        # A search, then English: the same search, in English.
        await page.get_by_role("link", name="Люди").click()
        await page.fill("input[name=q]", "Гриша")
        await page.get_by_role("button", name="Найти").click()
        await page.wait_for_url("**/dashboard/people?q=*")
        await page.get_by_role("link", name="English").click()
        await page.get_by_role("heading", name="People").wait_for()
        assert await page.input_value("input[name=q]") == "Гриша"
        assert "Гриша" in await page.locator("table").inner_text()
        # A filter, then Russian: the same filter, in Russian.
        await page.get_by_role("link", name="Generations").click()
        await page.select_option("select[name=state]", "failed")
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url("**/dashboard/generations?state=failed*")
        await page.get_by_role("link", name="Русский").click()
        await page.get_by_role("heading", name="Генерации").wait_for()
        assert await page.input_value("select[name=state]") == "failed"
        assert page.url.count("lang=") == 1 and "state=failed" in page.url
