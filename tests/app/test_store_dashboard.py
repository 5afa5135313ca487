"""The dashboard's tables and reads (bot/store/dashboard.py) on both engines: a link opens one
session, once, before it expires (even when used twice at the same moment), sessions expire and
close, and the people search finds by id, @username and name with `%` and `_` taken literally."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.dashboard import auth
from bot.store import Store
from bot.store.dashboard import DashboardStore
from testkit.databases import ENGINES, open_store

NOW = 1_800_000_000.0


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


async def test_a_link_opens_one_session_once_before_it_expires(store: Store) -> None:
    links = DashboardStore(store.database)
    url = await auth.issue_link(links, admin_id=7, base="https://x", now=NOW)
    token = url.rsplit("/", 1)[1]
    assert url == f"https://x/dashboard/login/{token}"
    # Nothing but the hash is kept.
    assert token not in str([tuple(r) for r in await store.database.fetch(
        "SELECT * FROM dashboard_links")])
    both = await asyncio.gather(*(auth.sign_in(links, token, now=NOW + 1) for _ in range(2)))
    [(session, admin)] = [one for one in both if one is not None]
    assert admin == 7
    assert await links.session_admin(auth.digest(session), now=NOW + 2) == 7
    assert await links.session_admin(session, now=NOW + 2) is None  # the hash is the key
    assert await links.session_admin(auth.digest(session),
                                      now=NOW + 1 + auth.SESSION_LIFETIME) is None
    await links.close_session(auth.digest(session))
    assert await links.session_admin(auth.digest(session), now=NOW + 2) is None


async def test_an_expired_link_opens_nothing_and_goes(store: Store) -> None:
    links = DashboardStore(store.database)
    url = await auth.issue_link(links, admin_id=7, base="", now=NOW)
    later = NOW + auth.LINK_LIFETIME
    assert await auth.sign_in(links, url.rsplit("/", 1)[1], now=later) is None
    assert await auth.sign_in(links, "unknown", now=NOW) is None
    assert await store.database.fetch("SELECT * FROM dashboard_links") == []


async def test_people_are_found_by_id_username_and_name(store: Store) -> None:
    for user_id, username, first, last in ((1, "alice_w", "Alice", "Wonder"),
                                           (2, None, "Борис", "100%"),
                                           (3, "zed", "Zed", None),
                                           (12, None, "Twelve", None)):
        await store.upsert_user(user_id, username=username, first_name=first, last_name=last,
                                tg_language="en", starting_credits=0)
    people = DashboardStore(store.database)

    async def ids(query: str) -> list[int]:
        return [user.id for user in await people.find_people(query, limit=10)]

    found = await ids("1")                    # the id first, then names containing it
    assert found == [1, 2]                    # (not 12: an id matches whole)
    assert await ids("@ALICE") == [1]
    assert await ids("wonder") == [1]
    assert await ids("Борис") == [2]
    assert await ids("100%") == [2]
    assert await ids("_") == [1]              # a literal underscore: only alice_w has one
    assert await ids("%") == [2]
    assert sorted(await ids("")) == [1, 2, 3, 12]
    assert await ids("nobody") == []
    assert set(await people.people([1, 3, 99])) == {1, 3}
