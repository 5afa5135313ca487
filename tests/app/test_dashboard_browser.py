"""The dashboard in headless Chromium (testkit/browser.py): signed in by the link followed from
another site's page (the SameSite=Strict cookie must still arrive), the overview's charts drawn
from two weeks of activity, and a top-up sent through the person's form landing in the ledger.

DASHBOARD_SCREENSHOT=docs/dashboard.png saves the overview there (README's screenshot):
    DASHBOARD_SCREENSHOT=docs/dashboard.png .venv/bin/python -m pytest \
        tests/app/test_dashboard_browser.py -n 0"""

from __future__ import annotations

import os
import time

from bot.store import LedgerKind, Store
from testkit.activity import seed
from testkit.bot import ADMIN_ID
from testkit.browser import chromium, chromium_path
from testkit.chat import Person
from tests.app.test_dashboard import link_for, web

CHARTS = ("generations", "stars", "credits", "failures", "kie", "margin")


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
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        # Followed from another site's page, as from Telegram Web.
        await page.set_content(f'<a id="go" href="{link}">the dashboard</a>')
        await page.click("#go")
        await page.wait_for_url("**/dashboard/")
        await page.get_by_role("heading", name="Overview").wait_for()
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
