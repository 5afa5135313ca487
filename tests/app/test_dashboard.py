"""End to end: the web dashboard on the bot's web server. /dashboard's one-time link (once; not
after 10 minutes; admins only; privately from a group; not without the web server), the session
cookie and its flags, nothing served without a session, CSRF on every form, and each form doing
what its command does (top-up, ban, refund through the fake Bot API, promo codes) with the
admin's id on the ledger row; hostile names escaped on every page; one PostgreSQL database
serving one dashboard from two bots."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bot.dashboard.auth import LINK_LIFETIME, issue_link
from bot.store import LedgerKind
from bot.store.dashboard import DashboardStore
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person
from testkit.databases import postgres_url
from testkit.e2e import WEBHOOK_SECRET, free_port, generate

LINK = re.compile(r"(https?://\S+/dashboard/login/[A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
NONCE = re.compile(r'name="nonce" value="([0-9a-f]{32})"')
PAGES = ("/dashboard/", "/dashboard/?days=30", "/dashboard/people", "/dashboard/people?q=ali",
         "/dashboard/broadcasts",
         f"/dashboard/people/{ADMIN_ID}", "/dashboard/generations",
         "/dashboard/generations?state=failed&model=imagen4", "/dashboard/payments",
         "/dashboard/promos")
HOSTILE = "<script>alert(1)</script>\"'\u202e&amp;"


def web(tmp_path, tg, kie, **overrides: Any):
    return make_settings(tmp_path, tg, kie, web_host="127.0.0.1", web_port=free_port(),
                         **overrides)


def webhook(tmp_path, tg, kie, **overrides: Any):
    port = free_port()
    return make_settings(tmp_path, tg, kie, web_host="127.0.0.1", web_port=port,
                         webhook_url=f"http://127.0.0.1:{port}/telegram",
                         webhook_secret=WEBHOOK_SECRET, **overrides)


def base_of(settings) -> str:
    return f"http://127.0.0.1:{settings.web.port}"


async def link_for(admin: Person, **say: Any) -> str:
    admin.say("/dashboard", **say)
    call = await admin.told("/dashboard/login/")
    found = LINK.search(call.params["text"])
    assert found, call.params["text"]
    return found.group(1)


@asynccontextmanager
async def signed_in(tg, settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client holding the admin's session cookie."""
    link = await link_for(Person(tg, ADMIN_ID, "Admin"))
    async with httpx.AsyncClient(base_url=base_of(settings)) as client:
        response = await client.get(link)
        assert response.status_code == 200 and "Signed in" in response.text
        yield client


async def csrf_of(client: httpx.AsyncClient, page: str = "/dashboard/") -> str:
    response = await client.get(page)
    assert response.status_code == 200
    return CSRF.findall(response.text)[0]


async def topped_up(store, user_id: int) -> list:
    return [row for row in await store.ledger(user_id, 100) if row.kind == LedgerKind.TOPUP]


# -- the link and the session ----------------------------------------------------------------------

async def test_the_link_signs_in_once_with_a_strict_httponly_cookie(tg, kie, tmp_path, settings,
                                                                    start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    link = await link_for(Person(tg, ADMIN_ID, "Admin"))
    assert link.startswith(base_of(settings) + "/dashboard/login/")
    async with httpx.AsyncClient() as first, httpx.AsyncClient() as second:
        response = await first.get(link)
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
        assert "Secure" not in cookie and "Max-Age=43200" in cookie
        assert '<meta http-equiv="refresh" content="0; url=/dashboard/">' in response.text
        overview = await first.get(base_of(settings) + "/dashboard/")
        assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
        # The second use, by anyone: refused, and no cookie.
        again = await second.get(link)
        assert again.status_code == 403 and "used or expired" in again.text
        assert "set-cookie" not in again.headers
        assert (await second.get(base_of(settings) + "/dashboard/")).status_code == 403


async def test_an_expired_or_unknown_link_opens_nothing(tg, kie, tmp_path, settings, start_bot,
                                                        store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    expired = await issue_link(DashboardStore(store.database), admin_id=ADMIN_ID,
                               base=base_of(settings), now=time.time() - LINK_LIFETIME - 1)
    async with httpx.AsyncClient() as client:
        for link in (expired, base_of(settings) + "/dashboard/login/" + "A" * 43,
                     base_of(settings) + "/dashboard/login/%C3%A9"):
            response = await client.get(link)
            assert response.status_code == 403 and "used or expired" in response.text, link
            assert "set-cookie" not in response.headers


async def test_dashboard_is_refused_to_others_and_needs_the_web_server(tg, kie, tmp_path, settings,
                                                                       start_bot, store):
    await start_bot(settings)  # no WEB_PORT
    admin, someone = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Someone")
    admin.say("/dashboard")
    await admin.told("WEB_PORT")
    someone.say("/dashboard")
    await someone.told("for admins only")
    assert await store.database.fetch("SELECT * FROM dashboard_links") == []


async def test_in_a_group_the_link_goes_to_the_private_chat(tg, kie, tmp_path, settings,
                                                            start_bot):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    admin = Person(tg, ADMIN_ID, "Admin")
    group = tg.group_chat()
    admin.say("/dashboard", chat=group)
    await admin.told("/dashboard/login/")  # in the private chat
    await admin.told("private chat", chat_id=group["id"])
    assert not [c for c in tg.sent_to(group["id"]) if "/login/" in c.params.get("text", "")]


async def test_nothing_is_served_without_a_session(tg, kie, tmp_path, settings, start_bot, store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    person = Person(tg, 42, "Alice")
    person.say("/start")
    await person.told("")
    async with httpx.AsyncClient(base_url=base_of(settings)) as client:
        for page in PAGES:
            assert (await client.get(page)).status_code == 403, page
        client.cookies.set("dashboard_session", "forged", path="/dashboard")
        for page in PAGES:
            assert (await client.get(page)).status_code == 403, page
        response = await client.post("/dashboard/people/42/topup", data={"amount": "50"})
        assert response.status_code == 403
        assert (await client.get("/dashboard", follow_redirects=True)).status_code == 403
    assert await topped_up(store, 42) == []
    async with signed_in(tg, settings) as signed:
        for page in [*PAGES, "/dashboard/people/42", "/dashboard/static/style.css"]:
            response = await signed.get(page)
            assert response.status_code == 200, page
        assert (await signed.get("/dashboard/people/7")).status_code == 404
        # Sign out: the cookie opens nothing any more, even if kept.
        kept = signed.cookies.get("dashboard_session")
        response = await signed.post("/dashboard/logout", data={"csrf": await csrf_of(signed)})
        assert response.status_code == 200
        signed.cookies.set("dashboard_session", kept, path="/dashboard")
        assert (await signed.get("/dashboard/")).status_code == 403


async def test_a_post_without_its_csrf_token_does_nothing(tg, kie, tmp_path, settings, start_bot,
                                                          store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    person = Person(tg, 42, "Alice")
    person.say("/start")
    await person.told("")
    async with signed_in(tg, settings) as client, \
            signed_in(tg, settings) as other:
        page = (await client.get("/dashboard/people/42")).text
        nonce = NONCE.search(page).group(1)
        theirs = await csrf_of(other)  # another session's token is no token for this one
        for token in (None, "", "0" * 64, theirs, "é" * 64):
            data = {"amount": "50", "nonce": nonce, **({"csrf": token} if token is not None else {})}
            response = await client.post("/dashboard/people/42/topup", data=data)
            assert response.status_code == 403 and "nothing was done" in response.text, token
        for path, data in (("/dashboard/people/42/ban", {"banned": "1"}),
                           ("/dashboard/promos/add", {"code": "X", "credits": "5"}),
                           ("/dashboard/payments/refund", {"charge_id": "stx1"}),
                           ("/dashboard/logout", {})):
            assert (await client.post(path, data=data)).status_code == 403, path
        assert (await client.get("/dashboard/")).status_code == 200  # still signed in
    assert await topped_up(store, 42) == []
    assert not (await store.get_user(42)).banned
    assert await store.promo_codes(10) == []


# -- the forms ---------------------------------------------------------------------------------

async def test_the_top_up_form_writes_the_admins_ledger_row_once(tg, kie, tmp_path, settings,
                                                                  start_bot, store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    person = Person(tg, 42, "Alice")
    person.say("/start")
    await person.told("")
    async with signed_in(tg, settings) as client:
        page = (await client.get("/dashboard/people/42")).text
        form = {"csrf": CSRF.search(page).group(1), "nonce": NONCE.search(page).group(1),
                "amount": "250", "note": "thanks for the report"}
        response = await client.post("/dashboard/people/42/topup", data=form)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/people/42?done=topup"
        await person.told("An admin added 250 credits")
        again = await client.post("/dashboard/people/42/topup", data=form, follow_redirects=True)
        assert again.status_code == 200 and "applied once" in again.text
        [row] = await topped_up(store, 42)
        assert (row.amount, row.admin_id, row.note) == (250, ADMIN_ID, "thanks for the report")
        assert (await store.get_user(42)).balance == 100 + 250
        page = (await client.get("/dashboard/people/42")).text
        assert '<strong id="balance">350</strong>' in page and "thanks for the report" in page
        for amount in ("0", "-5", "abc", "1000001", "²"):
            response = await client.post("/dashboard/people/42/topup",
                                         data={**form, "amount": amount})
            assert response.status_code == 409 and "amount" in response.text, amount
    assert len(await topped_up(store, 42)) == 1


async def test_ban_and_unban_but_never_an_admin(tg, kie, tmp_path, settings, start_bot, store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    person = Person(tg, 42, "Alice")
    person.say("/start")
    await person.told("")
    async with signed_in(tg, settings) as client:
        token = await csrf_of(client)
        response = await client.post("/dashboard/people/42/ban", data={"csrf": token, "banned": "1"})
        assert response.status_code == 303 and (await store.get_user(42)).banned
        person.say("/balance")
        await person.told("banned")
        await client.post("/dashboard/people/42/ban", data={"csrf": token, "banned": "0"})
        assert not (await store.get_user(42)).banned
        response = await client.post(f"/dashboard/people/{ADMIN_ID}/ban",
                                     data={"csrf": token, "banned": "1"})
        assert response.status_code == 409 and "An admin cannot be banned" in response.text
        assert not (await store.get_user(ADMIN_ID)).banned


async def test_the_refund_button_does_what_refund_does(tg, kie, tmp_path, settings, start_bot,
                                                       store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    buyer = Person(tg, 42, "Alice")
    charge_id, _ = tg.pay(buyer.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await buyer.told("✅")
    async with signed_in(tg, settings) as client:
        page = (await client.get("/dashboard/payments")).text
        assert charge_id in page
        form = {"csrf": CSRF.search(page).group(1), "charge_id": charge_id}
        # Telegram refuses once: nothing changes, the admin reads why.
        tg.fail_next("refundStarPayment", description="Bad Request: CHARGE_NOT_FOUND")
        response = await client.post("/dashboard/payments/refund", data=form)
        assert response.status_code == 409 and "CHARGE_NOT_FOUND" in response.text
        assert (await store.get_user(42)).balance == 200
        response = await client.post("/dashboard/payments/refund", data=form)
        assert response.status_code == 303
        await buyer.told("was refunded")
        again = await client.post("/dashboard/payments/refund", data=form)
        assert again.status_code == 409 and "already refunded" in again.text
    assert tg.charges[charge_id].refunded
    assert len([c for c in tg.calls_of("refundStarPayment") if c.ok]) == 1
    # As /refund writes them: held, given back when Telegram refused, held again; the admin's.
    rows = [(r.kind, r.amount, r.admin_id) for r in reversed(await store.ledger(42, 10))
            if r.kind not in (LedgerKind.PURCHASE, LedgerKind.GRANT)]
    assert rows == [(LedgerKind.PURCHASE_REFUND, -100, ADMIN_ID),
                    (LedgerKind.PURCHASE_REFUND_UNDONE, 100, ADMIN_ID),
                    (LedgerKind.PURCHASE_REFUND, -100, ADMIN_ID)]
    assert (await store.get_user(42)).balance == 100
    assert (await store.get_purchase(charge_id)).refunded_at is not None


async def test_promo_codes_are_added_and_withdrawn(tg, kie, tmp_path, settings, start_bot, store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    async with signed_in(tg, settings) as client:
        token = await csrf_of(client)
        form = {"csrf": token, "code": "spring", "credits": "50", "uses": "3", "days": "7"}
        response = await client.post("/dashboard/promos/add", data=form)
        assert response.status_code == 303
        [code] = await store.promo_codes(10)
        assert (code.code, code.credits, code.uses, code.admin_id) == ("SPRING", 50, 3, ADMIN_ID)
        assert code.expires_at == pytest.approx(time.time() + 7 * 86400, abs=60)
        assert (await client.post("/dashboard/promos/add", data=form)).status_code == 409
        for wrong in ({"code": "no spaces"}, {"credits": "0"}, {"code": "list"}, {"days": "0"}):
            response = await client.post("/dashboard/promos/add", data={**form, **wrong})
            assert response.status_code == 409, wrong
        page = (await client.get("/dashboard/promos")).text
        assert "SPRING" in page and "0 of 3" in page
        response = await client.post("/dashboard/promos/off", data={"csrf": token, "code": "SPRING"})
        assert response.status_code == 303
        assert (await store.promo_codes(10))[0].off_at is not None
        response = await client.post("/dashboard/promos/off", data={"csrf": token, "code": "NONE"})
        assert response.status_code == 409
    alice = Person(tg, 42, "Alice")
    alice.say("/promo SPRING")
    await alice.told("withdrawn")


# -- what the pages show -----------------------------------------------------------------------

async def test_a_hostile_name_is_escaped_on_every_page(tg, kie, tmp_path, settings, start_bot,
                                                       store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    mallory = Person(tg, 66, HOSTILE, username="<img src=x onerror=alert(1)>")
    mallory.user["last_name"] = "\u200f\"onmouseover=alert(1)"
    await generate(mallory, HOSTILE)
    await tg.wait_for("sendPhoto", lambda call: call.params["chat_id"] == 66)
    tg.pay(mallory.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await mallory.told("✅")
    async with signed_in(tg, settings) as client:
        for page in [*PAGES, "/dashboard/people/66", "/dashboard/people?q=%3Cscript",
                     "/dashboard/people?q=66", "/dashboard/generations?state=running"]:
            text = (await client.get(page)).text
            assert "<script>" not in text and "<img" not in text, page
            assert "onmouseover=alert" not in text or "&#34;onmouseover" in text, page
        people = (await client.get("/dashboard/people?q=%3Cscript")).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;\u202e&amp;amp;" in people
        assert "&lt;img src=x onerror=alert(1)&gt;" in (await client.get("/dashboard/payments")).text


async def test_the_overview_draws_its_charts_from_the_days(tg, kie, tmp_path, settings, start_bot,
                                                           store):
    settings = web(tmp_path, tg, kie)
    await start_bot(settings)
    person = Person(tg, 42, "Alice")
    await generate(person, "a red fox")
    await tg.wait_for("sendPhoto", lambda call: call.params["chat_id"] == 42)
    async with signed_in(tg, settings) as client:
        text = (await client.get("/dashboard/?days=7")).text
    for key in ("generations", "stars", "credits", "failures", "kie", "margin"):
        assert f'id="chart-{key}"' in text
    generations = text.split('id="chart-generations"')[1].split("</figure>")[0]
    assert generations.count("<rect") == 1 and 'data-value="1.0"' in generations
    assert "a red fox" not in text  # the overview shows figures, not requests


async def test_a_secure_cookie_behind_https(tg, kie, tmp_path, settings, start_bot):
    settings = web(tmp_path, tg, kie, dashboard_url="https://bot.example.com")
    await start_bot(settings)
    link = await link_for(Person(tg, ADMIN_ID, "Admin"))
    assert link.startswith("https://bot.example.com/dashboard/login/")
    async with httpx.AsyncClient() as client:  # the proxy's side: plain HTTP on loopback
        response = await client.get(base_of(settings) + link.removeprefix("https://bot.example.com"))
    cookie = response.headers["set-cookie"]
    assert response.status_code == 200 and "Secure" in cookie and "SameSite=Strict" in cookie


async def test_an_admin_removed_from_admin_ids_loses_the_session(tg, kie, tmp_path, settings,
                                                                 start_bot):
    first = web(tmp_path, tg, kie)
    running = await start_bot(first)
    async with signed_in(tg, first) as client:
        cookie = client.cookies.get("dashboard_session")
    await running.stop()
    for admins, status in ((str(ADMIN_ID), 200), ("1001", 403)):  # the session outlives a restart
        again = web(tmp_path, tg, kie, admin_ids=admins)
        restarted = await start_bot(again)
        async with httpx.AsyncClient(base_url=base_of(again)) as client:
            client.cookies.set("dashboard_session", cookie, path="/dashboard")
            assert (await client.get("/dashboard/")).status_code == status, admins
        await restarted.stop()


async def test_two_bots_on_one_postgresql_serve_one_dashboard(tg, kie, tmp_path, start_bot):
    """Two instances (webhook mode: both serve) on one database: a session opened on either
    is good on both, and so are its forms; signing out on one signs out on both."""
    async with postgres_url() as url:
        bots = [await start_bot(webhook(tmp_path, tg, kie, database_url=url)) for _ in range(2)]
        try:
            link = await link_for(Person(tg, ADMIN_ID, "Admin"))
            ports = [running.settings.web.port for running in bots]
            here = next(port for port in ports if f":{port}/" in link)
            there = next(port for port in ports if port != here)
            async with httpx.AsyncClient() as client:
                assert (await client.get(link)).status_code == 200
                cookie = client.cookies.get("dashboard_session")
                page = (await client.get(f"http://127.0.0.1:{here}/dashboard/people")).text
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{there}") as other:
                other.cookies.set("dashboard_session", cookie, path="/dashboard")
                assert (await other.get("/dashboard/people")).status_code == 200
                token = CSRF.search(page).group(1)
                response = await other.post("/dashboard/promos/add", data={
                    "csrf": token, "code": "BOTH", "credits": "5"})
                assert response.status_code == 303
                await other.post("/dashboard/logout", data={"csrf": token})
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{here}") as client:
                client.cookies.set("dashboard_session", cookie, path="/dashboard")
                assert (await client.get("/dashboard/")).status_code == 403
        finally:
            for running in bots:  # before their schema goes
                await running.stop()


async def test_the_broadcasts_page_lists_them_and_stops_the_one_under_way(tg, kie, tmp_path,
                                                                         settings, start_bot,
                                                                         store):
    settings = web(tmp_path, tg, kie, broadcast_rate=30)
    await start_bot(settings)
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News <b>for all</b>")
    for user_id in range(100, 120):
        tg.user(user_id, f"P{user_id}")
        await store.upsert_user(user_id, username=None, first_name=f"P{user_id}", last_name=None,
                                tg_language="en", starting_credits=0)
    tg.slow("copyMessage", 0.1, times=100)
    admin.say("/broadcast", reply_to=source)
    preview = admin.message(ADMIN_ID, (await admin.told("Send it?")).response["message_id"])
    async with signed_in(tg, settings) as client:
        assert "None yet." in (await client.get("/dashboard/broadcasts")).text
        await admin.press(preview, "✅")
        page = (await client.get("/dashboard/broadcasts")).text
        assert "sending" in page and "/dashboard/broadcasts/stop" in page
        response = await client.post("/dashboard/broadcasts/stop", data={"csrf": CSRF.search(page).group(1)})
        assert response.status_code == 303
        await admin.told("stopped", timeout=20)  # the report, to the admin who started it
        page = (await client.get("/dashboard/broadcasts")).text
        assert "stopped" in page and "/dashboard/broadcasts/stop" not in page
        again = await client.post("/dashboard/broadcasts/stop", data={"csrf": CSRF.search(page).group(1)})
        assert again.status_code == 409 and "No broadcast is under way" in again.text
    copies = [c for c in tg.calls_of("copyMessage") if c.ok]
    assert len(copies) < 21 and len({c.params["chat_id"] for c in copies}) == len(copies)
