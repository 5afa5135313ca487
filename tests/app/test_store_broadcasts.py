"""The store's side of broadcasts, on both engines: who each audience is (the language ones as
bot.i18n.locale_of decides for one person), a broadcast and its recipients made once however
often its ✅ comes, each recipient claimed once, one owner at a time (a gone owner's copies on
their way counted unknown, never claimed again), a blocked person skipped later, stop, and
migrate-to carrying it all over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.i18n import create_i18n, locale_of
from bot.store import Store
from bot.store.broadcasts import (
    ACTIVE_DAYS,
    DAY,
    Audience,
    BroadcastState,
    Languages,
    RecipientState,
)
from bot.store.transfer import migrate_to
from testkit.databases import ENGINES, database, open_store, postgres_url

LANGUAGES = Languages(("en", "ru"), "en")
ADMIN = 9
CHAT = 9  # the admin's private chat: the message copied and the preview are there


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


async def person(store: Store, user_id: int, tg_language: str | None = "en",
                 language: str | None = None) -> None:
    await store.upsert_user(user_id, username=None, first_name="P", last_name=None,
                            tg_language=tg_language, starting_credits=0)
    if language is not None:
        await store.set_language(user_id, language)


async def make(store: Store, audience: Audience = Audience.ALL, preview: int = 2):
    return await store.broadcasts.create(
        admin_id=ADMIN, chat_id=CHAT, message_id=1, status_message_id=preview,
        audience=audience, languages=LANGUAGES, now=time.time())


async def recipients(store: Store, broadcast_id: int) -> dict[int, str]:
    rows = await store._rows("SELECT user_id, state FROM broadcast_recipients"
                             " WHERE broadcast_id = ?", (broadcast_id,))
    return {int(row[0]): str(row[1]) for row in rows}


async def send_all(store: Store, broadcast_id: int,
                   outcome: dict[int, RecipientState] | None = None) -> list[int]:
    """Claim and record every recipient left (sent, unless `outcome` says otherwise)."""
    claimed = []
    while (user_id := await store.broadcasts.claim(broadcast_id, time.time())) is not None:
        claimed.append(user_id)
        await store.broadcasts.record(broadcast_id, user_id,
                                      (outcome or {}).get(user_id, RecipientState.SENT),
                                      time.time())
    return claimed


async def test_each_audience_counts_whom_it_means(store: Store) -> None:
    """`en`/`ru` are whom the bot speaks that language to (the choice, else Telegram's, else
    the default), as locale_of says person by person; nobody banned or blocked is anywhere."""
    people = {1: ("en", None), 2: ("ru", None), 3: ("ru-RU", None), 4: ("en", "ru"),
              5: ("de", None), 6: (None, None), 7: ("pt-br", "en"), 8: ("RU", None),
              10: ("ru", None), 11: ("ru", None)}
    for user_id, (tg_language, language) in people.items():
        await person(store, user_id, tg_language, language)
    await store.set_banned(10)
    await store.set_blocked(11)
    await store.record_purchase(1, charge_id="c1", package="p", credits=10, stars=5)
    await store.record_purchase(2, charge_id="c2", package="p", credits=10, stars=5)
    await store.hold_purchase_refund("c2", admin_id=ADMIN, force=True)
    await store.confirm_purchase_refund("c2")  # 2 bought, and was refunded: not paying
    await store.record_purchase(10, charge_id="c3", package="p", credits=10, stars=5)  # banned
    old = time.time() - (ACTIVE_DAYS + 1) * DAY
    await store._rows("UPDATE users SET updated_at = ? WHERE id IN (3, 4)", (old,))

    i18n = create_i18n("en")
    reachable = [u for u in people if u not in (10, 11)]
    spoken = {user_id: locale_of(await store.get_user(user_id), i18n) for user_id in reachable}
    counts = {audience: await store.broadcasts.count(audience, LANGUAGES, time.time())
              for audience in Audience}
    assert counts == {Audience.ALL: 8, Audience.PAYING: 1, Audience.ACTIVE: 6,
                      Audience.EN: sum(lang == "en" for lang in spoken.values()),
                      Audience.RU: sum(lang == "ru" for lang in spoken.values())}
    assert counts[Audience.RU] == 4  # 2, 3 (ru-RU), 4 (chose ru), 8 (RU)
    broadcast, _ = await make(store, Audience.RU)
    assert set(await recipients(store, broadcast.id)) == {2, 3, 4, 8}


async def test_a_second_press_finds_the_first_broadcast_and_its_recipients_stay_fixed(
        store: Store) -> None:
    for user_id in (1, 2, 3):
        await person(store, user_id)
    first, new = await make(store)
    await person(store, 4)  # came after ✅: not a recipient
    again, new_again = await make(store)
    assert new and not new_again and again.id == first.id
    assert await recipients(store, first.id) == dict.fromkeys((1, 2, 3), "pending")
    assert (await store.broadcasts.tally(first.id)).total == 3
    other, _ = await make(store, preview=5)  # another preview: another broadcast
    assert other.id != first.id and len(await recipients(store, other.id)) == 4


async def test_presses_at_the_same_moment_make_one_broadcast(tmp_path: Path) -> None:
    """Ten presses at once through four connections (four instances): one broadcast."""
    async with postgres_url() as url:
        stores = [await Store.open(url) for _ in range(4)]
        try:
            await person(stores[0], 1)
            results = await asyncio.gather(*(make(stores[n % 4]) for n in range(10)))
            assert sum(new for _, new in results) == 1
            assert len({broadcast.id for broadcast, _ in results}) == 1
            assert (await stores[0].broadcasts.tally(results[0][0].id)).total == 1
        finally:
            for opened in stores:
                await opened.close()


async def test_each_recipient_is_claimed_once_then_the_broadcast_is_reported_once(
        store: Store) -> None:
    for user_id in (1, 2, 3, 4):
        await person(store, user_id)
    await store.heartbeat(time.time())
    broadcast, _ = await make(store)
    taken = await store.broadcasts.take(time.time())
    assert taken is not None and taken.id == broadcast.id and taken.owner == store.instance
    claimed = await send_all(store, broadcast.id, {2: RecipientState.BLOCKED,
                                                   3: RecipientState.FAILED})
    assert claimed == [1, 2, 3, 4]
    finished = await store.broadcasts.finish(broadcast.id, time.time())
    assert finished is not None and finished.state == BroadcastState.DONE
    assert await store.broadcasts.finish(broadcast.id, time.time()) is None  # reported once
    assert await store.broadcasts.take(time.time()) is None
    assert await recipients(store, broadcast.id) == {1: "sent", 2: "blocked", 3: "failed",
                                                     4: "sent"}
    assert (await store.get_user(2)).blocked  # and the next broadcast skips them
    later, _ = await make(store, preview=7)
    assert set(await recipients(store, later.id)) == {1, 3, 4}


async def test_a_flood_controlled_recipient_is_pending_again(store: Store) -> None:
    await person(store, 1)
    await store.heartbeat(time.time())
    broadcast, _ = await make(store)
    await store.broadcasts.take(time.time())
    assert await store.broadcasts.claim(broadcast.id, time.time()) == 1
    await store.broadcasts.release(broadcast.id, 1, time.time())
    assert await send_all(store, broadcast.id) == [1]


async def test_stop_leaves_the_rest_pending_and_nothing_more_is_claimed(store: Store) -> None:
    for user_id in (1, 2, 3):
        await person(store, user_id)
    await store.heartbeat(time.time())
    broadcast, _ = await make(store)
    await store.broadcasts.take(time.time())
    assert await store.broadcasts.claim(broadcast.id, time.time()) == 1
    stopped = await store.broadcasts.stop(time.time())
    assert stopped is not None and stopped.id == broadcast.id
    assert await store.broadcasts.stop(time.time()) is None  # nothing else under way
    await store.broadcasts.record(broadcast.id, 1, RecipientState.SENT, time.time())
    assert await store.broadcasts.claim(broadcast.id, time.time()) is None
    finished = await store.broadcasts.finish(broadcast.id, time.time())
    assert finished is not None and finished.state == BroadcastState.STOPPED
    assert await recipients(store, broadcast.id) == {1: "sent", 2: "pending", 3: "pending"}


@pytest.mark.parametrize("engine", ENGINES)
async def test_one_owner_at_a_time_and_a_gone_owners_copy_on_its_way_is_never_claimed_again(
        engine: str, tmp_path: Path) -> None:
    """Two instances: the second cannot take the broadcast while the first lives; once it is
    gone, the recipient it had `sending` is `unknown` and the others are sent."""
    async with database(engine, tmp_path) as target:
        first, second = await Store.open(target), await Store.open(target)
        try:
            for user_id in (1, 2, 3):
                await person(first, user_id)
            await first.heartbeat(time.time())
            broadcast, _ = await make(first)
            assert await first.broadcasts.take(time.time()) is not None
            assert await first.broadcasts.claim(broadcast.id, time.time()) == 1  # then it dies
            assert await second.broadcasts.take(time.time()) is None
            assert await second.broadcasts.claim(broadcast.id, time.time()) is None  # not its own
            await first.retire()
            await second.heartbeat(time.time())
            taken = await second.broadcasts.take(time.time())
            assert taken is not None and taken.owner == second.instance
            assert await first.broadcasts.claim(broadcast.id, time.time()) is None  # fenced
            assert await send_all(second, broadcast.id) == [2, 3]
            assert await recipients(second, broadcast.id) == {1: "unknown", 2: "sent",
                                                              3: "sent"}
        finally:
            await first.close()
            await second.close()


async def test_broadcasts_go_one_after_another(store: Store) -> None:
    await person(store, 1)
    await store.heartbeat(time.time())
    first, _ = await make(store)
    second, _ = await make(store, preview=5)
    assert await store.broadcasts.ahead_of(second.id) == 1
    assert (await store.broadcasts.take(time.time())).id == first.id
    await send_all(store, first.id)
    await store.broadcasts.finish(first.id, time.time())
    assert (await store.broadcasts.take(time.time())).id == second.id


async def test_migrate_to_copies_broadcasts_and_their_recipients(tmp_path: Path) -> None:
    source = tmp_path / "bot.sqlite3"
    store = await Store.open(source)
    try:
        for user_id in (1, 2):
            await person(store, user_id)
        broadcast, _ = await make(store)
    finally:
        await store.close()
    async with postgres_url() as url:
        await migrate_to(source, url)
        copied = await Store.open(url)
        try:
            assert await recipients(copied, broadcast.id) == {1: "pending", 2: "pending"}
            after, _ = await make(copied, preview=3)  # the ids handed out go on after the copy's
            assert after.id == broadcast.id + 1
        finally:
            await copied.close()
