"""End to end: `/stats [days]` through the fake Bot API and fake Kie.ai — the per-day tables
agree with what people did (and with Kie's balance as the credit watch read it), a wrong
period gets its usage, non-admins are refused, and 90 days stay within one message."""

from __future__ import annotations

import html
import re
import time

from bot.store.daily import record_kie_reading
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person
from testkit.e2e import generate
from testkit.fakes.kie import TaskPlan


def tables(report: str) -> list[list[list[str]]]:
    """The report's <pre> tables, as rows of cells."""
    return [[line.split() for line in html.unescape(body).split("\n")]
            for body in re.findall(r"<pre>(.*?)</pre>", report, re.S)]


def today(table: list[list[str]]) -> list[str]:
    """The last day's numbers (the row before the totals), without its date."""
    return table[-2][-(len(table[0]) - 1):]


async def test_stats_3_shows_what_happened_today_in_its_tables(tg, kie, tmp_path, start_bot,
                                                               store):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=100))
    admin, alice, bob = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    for person in (admin, alice, bob):
        person.say("/start")
        await person.told("Hi")
    await generate(alice, "a fox")  # Imagen 4: 40 credits, Kie cost 6 by the catalog
    await tg.wait_for("sendPhoto")
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=0, fail_msg="nope")
    await generate(bob, "a cat", "Seedream")  # 20, refunded
    await bob.told("credits returned")
    await store.record_purchase(43, charge_id="ch-1", package="100:50", credits=100, stars=50)
    now = time.time()
    for moment, credits in ((now - 60, 1000.0), (now - 30, 994.0), (now - 20, 2000.0)):
        await record_kie_reading(store, "k", credits, now=moment)

    admin.say("/stats 3")
    report = (await admin.told("Statistics")).params["text"]
    assert "Users: 3, active in 24 h: 2" in report  # the all-time summary stays
    assert "Per day, last 3 days (UTC)" in report
    people, credits, kie_table = tables(report)
    assert len(people) == 1 + 3 + 1  # the header, three days, the totals
    assert people[0][1:] == ["new", "act.", "pay.", "Stars", "$"]
    new, active, paying, stars, margin = today(people)
    assert (new, active, paying, stars) == ("3", "3", "1", "50")
    assert float(margin) == round(50 * 0.013 - 6 * 0.005, 2)
    assert today(credits) == ["100", "300", "60", "20"]  # bought, granted, charged, refunded
    assert today(kie_table) == ["2", "6", "6"]  # generations, Kie by the catalog, its drop
    for table in (people, credits, kie_table):
        assert all(cell in {"0", "-", "0.00"}
                   for row in table[1:3] for cell in row[-(len(table[0]) - 1):])
        assert table[-1][0] == "total"
    assert "Generations: 🖼 2" in report
    assert "By state: delivered 1; failed, refunded 1" in report
    assert "Failed, by model: Seedream 1" in report


async def test_stats_in_russian(tg, kie, bot, store):
    admin = Person(tg, ADMIN_ID, "Админ", language="ru")
    admin.say("/stats 2")
    report = (await admin.told("Статистика")).params["text"]
    assert "По дням, последние 2 дн. (UTC)" in report
    assert tables(report)[0][0][:3] == ["день", "нов.", "акт."]
    assert "Неудачные, по моделям: -" in report


async def test_a_wrong_period_gets_the_usage_and_others_are_refused(tg, kie, bot, store):
    admin, mallory = Person(tg, ADMIN_ID, "Admin"), Person(tg, 66, "Mallory")
    for wrong in ("abc", "0", "91", "7 8", "-3", "٣"):
        admin.say(f"/stats {wrong}")
        answer = (await admin.told("whole number from 1 to 90")).params["text"]
        assert "Example: <code>/stats 30</code>" in answer
    mallory.say("/stats 3")
    await mallory.told("for admins only")
    assert not [c for c in tg.sent_to(66) if "Per day" in c.params.get("text", "")]


async def test_ninety_days_stay_within_one_message(tg, kie, bot, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/stats 90")
    report = (await admin.told("Statistics")).params["text"]
    assert len(report) <= 4096
    shown = int(re.search(r"The tables show the last (\d+) days", report).group(1))
    assert 7 < shown < 90
    assert all(len(table) == shown + 2 for table in tables(report))
    assert "Per day, last 90 days (UTC)" in report and report.endswith("Failed, by model: -")
