"""The store: the ledger invariant, exactly-once charges and refunds, migrations, the
generation state machine the tracker relies on. On both engines, real databases (a SQLite
file, a PostgreSQL schema: testkit/databases.py), nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import (
    DeliveredFile,
    DraftChanged,
    Generation,
    GenerationState,
    InsufficientCredits,
    IntegrityError,
    LimitReached,
    StartLimits,
    Store,
    User,
    migrations,
)
from bot.store.store import DRAFTS_PER_USER
from testkit.databases import ENGINES, database, open_store

USER = 42
PRICE = 10


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """For what only SQLite has (its pragmas)."""
    async with open_store("sqlite", tmp_path) as opened:
        yield opened


async def add_user(store: Store, user_id: int = USER, credits: int = 0) -> None:
    await store.upsert_user(user_id, username=f"u{user_id}", first_name="U", last_name=None,
                            tg_language="en", starting_credits=credits)


async def open_draft(store: Store, user_id: int = USER) -> int:
    draft = await store.create_draft(user_id=user_id, chat_id=user_id, request_message_id=1,
                                     kind="image", prompt="a fox", model="imagen4",
                                     options={"ar": "1:1"})
    return draft.id


async def start(store: Store, draft_id: int, *, deadline_at: float | None = None,
                revision: int = 0, limits: StartLimits | None = None) -> Generation:
    return await store.start_generation(
        draft_id, revision=revision, input={"prompt": "a fox"}, price=PRICE,
        deadline_at=time.time() + 600 if deadline_at is None else deadline_at, limits=limits)


async def succeed(store: Store, generation_id: int, urls: list[str], *,
                  deliver_by: float | None = None) -> Generation | None:
    now = time.time()
    return await store.mark_succeeded(
        generation_id, urls, deliver_by=now + 3600 if deliver_by is None else deliver_by,
        lease_until=now + 600)


async def count(store: Store, sql: str, *params: object) -> int:
    return (await store._rows(sql, params))[0][0]


async def charges(store: Store, user_id: int = USER) -> int:
    return await count(store, "SELECT count(*) FROM ledger WHERE user_id = ? AND kind = 'charge'",
                       user_id)


async def refunds(store: Store, generation_id: int) -> int:
    return await count(store, "SELECT count(*) FROM ledger WHERE generation_id = ? AND kind = 'refund'",
                       generation_id)


async def balance(store: Store, user_id: int = USER) -> int:
    user = await store.get_user(user_id)
    assert user is not None
    return user.balance


async def assert_ledger_invariant(store: Store, user_id: int = USER) -> None:
    assert await balance(store, user_id) == await store.ledger_sum(user_id)


# -- charging -------------------------------------------------------------------------------


async def test_concurrent_confirms_charge_exactly_what_the_balance_covers(store: Store) -> None:
    """50 concurrent confirms with credits for 10: 10 succeed, 40 InsufficientCredits, balance 0."""
    await add_user(store, credits=10 * PRICE)
    drafts = [await open_draft(store) for _ in range(50)]
    results = await asyncio.gather(*(start(store, d) for d in drafts), return_exceptions=True)
    assert sum(isinstance(r, Generation) for r in results) == 10
    assert sum(isinstance(r, InsufficientCredits) for r in results) == 40
    assert await balance(store) == 0
    assert await charges(store) == 10
    assert await count(store, "SELECT count(*) FROM generations") == 10
    await assert_ledger_invariant(store)


@pytest.mark.parametrize("engine", ENGINES)
async def test_two_connections_to_one_database_never_overcharge(engine: str, tmp_path: Path) -> None:
    """Two Stores on one database (two bot processes) confirming concurrently still charge exactly 10."""
    async with database(engine, tmp_path) as target:
        first, second = await Store.open(target), await Store.open(target)
        try:
            await _overcharge_race(first, second)
        finally:
            await first.close()
            await second.close()


async def _overcharge_race(first: Store, second: Store) -> None:
    await add_user(first, credits=10 * PRICE)
    drafts = [await open_draft(first) for _ in range(50)]
    calls = [start(first if i % 2 else second, d) for i, d in enumerate(drafts)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(isinstance(r, Generation) for r in results) == 10
    assert sum(isinstance(r, InsufficientCredits) for r in results) == 40
    for store in (first, second):
        assert await balance(store) == 0
        assert await charges(store) == 10
        await assert_ledger_invariant(store)


async def test_same_draft_confirmed_twice_charges_once(store: Store) -> None:
    """Two concurrent confirms of one draft: one generation and one charge, the other DraftClosed."""
    await add_user(store, credits=100)
    draft = await open_draft(store)
    results = await asyncio.gather(start(store, draft), start(store, draft),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["DraftClosed", "Generation"]
    assert await count(store, "SELECT count(*) FROM generations") == 1
    assert await charges(store) == 1
    assert await balance(store) == 100 - PRICE
    await assert_ledger_invariant(store)


async def test_insufficient_credits_leaves_draft_open_and_no_generation(store: Store) -> None:
    """Too few credits: nothing charged, no generation row, the draft can be confirmed after a top-up."""
    await add_user(store, credits=PRICE - 1)
    draft = await open_draft(store)
    with pytest.raises(InsufficientCredits) as error:
        await start(store, draft)
    assert (error.value.price, error.value.balance) == (PRICE, PRICE - 1)
    assert (await store.get_draft(draft)).state == "open"
    assert await count(store, "SELECT count(*) FROM generations") == 0
    assert await charges(store) == 0
    await store.topup(USER, 1, admin_id=7)
    generation = await start(store, draft)
    assert generation.state is GenerationState.PENDING and generation.price == PRICE
    assert await balance(store) == 0
    await assert_ledger_invariant(store)


# -- refunds --------------------------------------------------------------------------------


async def test_fail_twice_refunds_once(store: Store) -> None:
    """fail_generation twice, in sequence and concurrently: one refund row, the price returned once."""
    await add_user(store, credits=100)
    one = await start(store, await open_draft(store))
    two = await start(store, await open_draft(store))
    assert await store.fail_generation(one.id, "kie_failed") is not None
    assert await store.fail_generation(one.id, "timeout") is None
    results = await asyncio.gather(store.fail_generation(two.id, "timeout"),
                                   store.fail_generation(two.id, "lost"))
    assert sum(r is not None for r in results) == 1
    assert await refunds(store, one.id) == 1 and await refunds(store, two.id) == 1
    assert await balance(store) == 100
    failed = await store.get_generation(one.id)
    assert failed.state is GenerationState.FAILED and failed.failure == "kie_failed"
    await assert_ledger_invariant(store)


async def test_fail_after_success_does_not_refund(store: Store) -> None:
    """A generation marked succeeded cannot be failed: None, no refund row, balance unchanged."""
    await add_user(store, credits=100)
    generation = await start(store, await open_draft(store))
    await store.mark_submitted(generation.id, "task-1", time.time())
    assert await succeed(store, generation.id, ["https://x/1.png"]) is not None
    assert await store.fail_generation(generation.id, "timeout") is None
    assert await refunds(store, generation.id) == 0
    assert await balance(store) == 100 - PRICE
    assert (await store.get_generation(generation.id)).state is GenerationState.SUCCEEDED


async def test_second_refund_row_violates_unique_index(store: Store) -> None:
    """The schema itself refuses a second refund row for one generation."""
    await add_user(store, credits=100)
    generation = await start(store, await open_draft(store))
    await store.fail_generation(generation.id, "timeout")
    with pytest.raises(IntegrityError):
        await store._rows(
            "INSERT INTO ledger (user_id, amount, balance_after, kind, generation_id, created_at)"
            " VALUES (?, ?, ?, 'refund', ?, ?)", (USER, PRICE, 100, generation.id, time.time()))
    assert await refunds(store, generation.id) == 1


# -- grants, top-ups and the ledger's own guards ----------------------------------------------


async def test_starting_credits_granted_once(store: Store) -> None:
    """Registering the same user twice grants starting credits once; 0 starting credits writes no row."""
    _, created = await store.upsert_user(USER, username="a", first_name="A", last_name=None,
                                         tg_language="en", starting_credits=50)
    user, again = await store.upsert_user(USER, username="b", first_name="B", last_name=None,
                                          tg_language="ru", starting_credits=50)
    assert (created, again) == (True, False)
    assert (user.balance, user.username, user.tg_language) == (50, "b", "ru")
    await store.topup(USER, -50, admin_id=7)  # spent down to zero: still no second grant
    await add_user(store, credits=50)
    assert await balance(store) == 0
    assert [row.kind for row in await store.ledger(USER)] == ["topup", "grant"]
    await add_user(store, 43, credits=0)
    assert await balance(store, 43) == 0
    assert await store.ledger(43) == []
    await assert_ledger_invariant(store)


async def test_topup_writes_row_with_admin(store: Store) -> None:
    """A top-up is a `topup` ledger row carrying the admin's id and the new balance."""
    await add_user(store, credits=5)
    row = await store.topup(USER, 30, admin_id=7, note="gift")
    assert (row.kind, row.amount, row.admin_id, row.balance_after, row.note) == (
        "topup", 30, 7, 35, "gift")
    assert (await store.ledger(USER))[0] == row
    assert await balance(store) == 35
    await assert_ledger_invariant(store)


async def test_ledger_is_append_only(store: Store) -> None:
    """Triggers refuse UPDATE and DELETE on ledger rows."""
    await add_user(store, credits=5)
    with pytest.raises(IntegrityError, match="append-only"):
        await store._rows("UPDATE ledger SET amount = 1000")
    with pytest.raises(IntegrityError, match="append-only"):
        await store._rows("DELETE FROM ledger")
    assert [(r.kind, r.amount) for r in await store.ledger(USER)] == [("grant", 5)]


async def test_balance_never_negative(store: Store) -> None:
    """A debit past zero raises InsufficientCredits and writes nothing; the CHECK refuses raw SQL."""
    await add_user(store, credits=5)
    with pytest.raises(InsufficientCredits):
        await store.topup(USER, -6, admin_id=7)
    assert await balance(store) == 5 and len(await store.ledger(USER)) == 1
    with pytest.raises(IntegrityError, match=r"(?i)check"):
        await store._rows("UPDATE users SET balance = -1 WHERE id = ?", (USER,))
    assert await balance(store) == 5


# -- migrations -----------------------------------------------------------------------------


async def test_reopen_keeps_data_and_schema_version(tmp_path: Path) -> None:
    """Opening the same file again migrates nothing, keeps the data, and runs in WAL mode."""
    path = tmp_path / "sub" / "x.sqlite3"
    store = await Store.open(path)
    try:
        await add_user(store, credits=7)
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        assert await balance(store) == 7
        assert await count(store, "PRAGMA user_version") == len(migrations.SQLITE)
        assert (await store._rows("PRAGMA journal_mode"))[0][0] == "wal"
    finally:
        await store.close()


async def test_postgres_reopen_and_concurrent_starts_migrate_once(tmp_path: Path) -> None:
    """Three processes starting at once on a new PostgreSQL database: one migrates, the others
    find it done; opening it again migrates nothing and keeps the data."""
    async with database("postgres", tmp_path) as url:
        stores = await asyncio.gather(*(Store.open(url) for _ in range(3)))
        try:
            await add_user(stores[0], credits=7)
            assert await balance(stores[2]) == 7
            assert await count(stores[1], "SELECT count(*) FROM schema_version") == len(
                migrations.POSTGRES)
        finally:
            for store in stores:
                await store.close()
        store = await Store.open(url)
        try:
            assert await balance(store) == 7
            assert await count(store, "SELECT max(version) FROM schema_version") == len(
                migrations.POSTGRES)
        finally:
            await store.close()


async def _schema(engine: str, folder: Path) -> dict[str, set[str]]:
    """Each table's columns, and each index's name (but SQLite's and PostgreSQL's own)."""
    query = {
        "sqlite": "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p"
                  " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' UNION ALL"
                  " SELECT 'index', name FROM sqlite_master WHERE type = 'index'"
                  " AND name NOT LIKE 'sqlite_%'",
        "postgres": "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name != 'schema_version'"
                    " UNION ALL SELECT 'index', indexname FROM pg_indexes"
                    " WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey'"
                    " AND indexname NOT LIKE '%_key'",
    }[engine]
    async with open_store(engine, folder) as store:
        found: dict[str, set[str]] = {}
        for table, column in await store._rows(query):
            found.setdefault(table, set()).add(column)
        return found


async def test_both_engines_make_the_same_tables_columns_and_indexes(tmp_path: Path) -> None:
    """migrations.SQLITE and migrations.POSTGRES build one schema: a migration added to one
    list only shows here."""
    assert await _schema("sqlite", tmp_path) == await _schema("postgres", tmp_path)


# -- the generation state machine -----------------------------------------------------------


async def test_submit_check_succeed_deliver(store: Store) -> None:
    """pending → running (task id) → checks counted → succeeded once → delivered."""
    await add_user(store, credits=100)
    generation = await start(store, await open_draft(store))
    assert generation.state is GenerationState.PENDING and generation.task_id is None
    await store.mark_submitted(generation.id, "task-1", 123.0)
    await store.mark_submitted(generation.id, "task-2", 456.0)  # not pending any more: ignored
    running = await store.get_generation(generation.id)
    assert (running.state, running.task_id, running.next_check_at) == (
        GenerationState.RUNNING, "task-1", 123.0)
    await store.record_check(generation.id, "generating", 200.0)
    checked = await store.get_generation(generation.id)
    assert (checked.kie_state, checked.checks, checked.next_check_at) == ("generating", 1, 200.0)
    succeeded = await succeed(store, generation.id, ["https://x/1.png", "https://x/2.png"])
    assert succeeded.state is GenerationState.SUCCEEDED
    assert succeeded.result_urls == ["https://x/1.png", "https://x/2.png"]
    assert succeeded.finished_at is not None
    # Its delivery is held by whoever marked it, and due again when that lease ends.
    assert succeeded.next_check_at == pytest.approx(time.time() + 600, abs=5)
    assert succeeded.deadline_at == pytest.approx(time.time() + 3600, abs=5)
    assert await succeed(store, generation.id, ["https://x/3.png"]) is None
    await store.record_check(generation.id, "generating", 999.0)  # finished: ignored
    assert (await store.get_generation(generation.id)).checks == 1
    await store.mark_delivered(generation.id, GenerationState.DELIVERED)
    delivered = await store.get_generation(generation.id)
    assert delivered.state is GenerationState.DELIVERED and delivered.delivered_at is not None
    assert delivered.next_check_at is None


async def test_mark_succeeded_and_delivered_need_the_right_state(store: Store) -> None:
    """A pending generation cannot succeed; a failed one cannot be marked delivered."""
    await add_user(store, credits=100)
    generation = await start(store, await open_draft(store))
    assert await succeed(store, generation.id, ["https://x/1.png"]) is None
    await store.fail_generation(generation.id, "interrupted")
    await store.mark_delivered(generation.id, GenerationState.DELIVERED)
    assert (await store.get_generation(generation.id)).state is GenerationState.FAILED


async def test_claims_overdue_and_next_wakeup(store: Store) -> None:
    """claim_checks: running and due, held by a lease so a second claim misses them; overdue:
    past the deadline with nothing under way; wakeup: the earliest thing to do."""
    await add_user(store, credits=100)
    now = time.time()
    assert await store.next_wakeup() is None
    due = await start(store, await open_draft(store), deadline_at=now + 600)
    later = await start(store, await open_draft(store), deadline_at=now + 600)
    pending_late = await start(store, await open_draft(store), deadline_at=now - 1)
    done_late = await start(store, await open_draft(store), deadline_at=now - 1)
    await store.mark_submitted(due.id, "t-due", now - 1)
    await store.mark_submitted(later.id, "t-later", now + 900)  # capped at its deadline
    await store.mark_submitted(done_late.id, "t-done", now - 5)
    await succeed(store, done_late.id, ["https://x/1.png"], deliver_by=now - 1)  # leased

    assert (await store.get_generation(later.id)).next_check_at == now + 600
    # The pending one has no check time: its deadline (now - 1) is the earliest thing to do.
    # The finished one is being delivered (leased): its deadline waits for that.
    assert await store.next_wakeup() == now - 1
    assert [g.id for g in await store.overdue_generations(now)] == [pending_late.id]
    await store.fail_generation(pending_late.id, "timeout")
    assert await store.claim_checks(now, now + 30, 0) == []
    [claimed] = await store.claim_checks(now, now + 30, 10)
    assert claimed.id == due.id and claimed.next_check_at == now + 30
    assert await store.claim_checks(now, now + 30, 10) == []  # held by the first claim
    assert await store.next_wakeup() == now + 30
    await store.record_check(due.id, "waiting", now + 20)
    assert await store.next_wakeup() == now + 20
    await store.claim_checks(now + 20, now + 50, 10)
    await store.release_leases(now + 21)  # a restart: the read under way is due again
    assert (await store.get_generation(due.id)).next_check_at == now + 21
    assert (await store.get_generation(later.id)).next_check_at == now + 600  # as planned
    assert [g.id for g in await store.claim_checks(now + 601, now + 700, 10)] == [
        due.id, later.id]
    # The restart released the delivery's lease too, and it is past its deadline: overdue.
    assert [g.id for g in await store.overdue_generations(now + 21)] == [done_late.id]


# -- hardening: what the confirm promised, limits, deliveries, repeats, chats ----------------


async def test_a_confirm_drawn_from_an_older_revision_charges_nothing(store: Store) -> None:
    await add_user(store, credits=100)
    draft_id = await open_draft(store)
    changed = await store.update_draft(draft_id, model="imagen4", options={"ar": "16:9"})
    assert changed.revision == 1
    with pytest.raises(DraftChanged):
        await start(store, draft_id, revision=0)
    assert await charges(store) == 0 and (await store.get_draft(draft_id)).state == "open"
    assert (await start(store, draft_id, revision=1)).price == PRICE


async def test_limits_are_checked_in_the_charging_transaction(store: Store) -> None:
    """Open generations and starts per minute: concurrent confirms cannot slip past either."""
    await add_user(store, credits=1000)
    limits = StartLimits(max_open=3, max_per_minute=5)
    drafts = [await open_draft(store) for _ in range(10)]
    results = await asyncio.gather(*(start(store, d, limits=limits) for d in drafts),
                                   return_exceptions=True)
    started = [r for r in results if isinstance(r, Generation)]
    assert len(started) == 3
    assert all(isinstance(r, LimitReached) and r.which == "open" for r in results
               if not isinstance(r, Generation))
    assert await charges(store) == 3
    for generation in started[:2]:  # two finish: room for two more, but the minute is at 5
        await store.fail_generation(generation.id, "kie_failed")
    await start(store, await open_draft(store), limits=limits)
    await start(store, await open_draft(store), limits=limits)
    await store.fail_generation(started[2].id, "kie_failed")
    with pytest.raises(LimitReached) as refused:
        await start(store, await open_draft(store), limits=limits)
    assert (refused.value.which, refused.value.limit) == ("rate", 5)
    assert (await start(store, await open_draft(store))).price == PRICE  # no limits: admins


async def test_a_topup_from_one_command_message_is_applied_once(store: Store) -> None:
    await add_user(store)
    first = await store.topup(USER, 50, admin_id=7, source="topup:-100:5")
    again = await asyncio.gather(*(store.topup(USER, 50, admin_id=7, source="topup:-100:5")
                                   for _ in range(3)))
    assert first is not None and first.source == "topup:-100:5" and again == [None] * 3
    assert await store.topup(USER, 50, admin_id=7, source="topup:-100:6") is not None
    assert (await store.get_user(USER)).balance == 100 == await store.ledger_sum(USER)


async def test_an_update_id_is_new_once(store: Store) -> None:
    assert await store.first_sight_of_update(10) is True
    assert await store.first_sight_of_update(10) is False
    assert await store.first_sight_of_update(11) is True
    await store.purge(drafts_before=0, updates_before=time.time() + 1)
    assert await store.first_sight_of_update(10) is True  # forgotten once too old to repeat


async def last_written(store: Store, user_id: int = USER) -> float:
    [(updated_at,)] = [tuple(r) for r in await store._rows(
        "SELECT updated_at FROM users WHERE id = ?", (user_id,))]
    return float(updated_at)


async def written_at(store: Store, updated_at: float, user_id: int = USER) -> None:
    await store._rows("UPDATE users SET updated_at = ? WHERE id = ?", (updated_at, user_id))


async def test_a_known_user_is_written_only_when_something_changed(store: Store) -> None:
    """upsert_user reads first: the row is rewritten for a new name, username or language, for
    a user who blocked the bot, and once its `updated_at` is SEEN_PRECISION old; not else."""
    await add_user(store, credits=5)
    recently = time.time() - 60
    await written_at(store, recently)
    user, created = await store.upsert_user(USER, username=f"u{USER}", first_name="U",
                                            last_name=None, tg_language="en", starting_credits=5)
    assert not created and user == await store.get_user(USER)
    assert await last_written(store) == recently
    profiles: list[tuple[str | None, str, str | None, str | None]] = [
        (None, "U", None, "en"), (f"u{USER}", "V", None, "en"), (f"u{USER}", "U", "W", "en"),
        (f"u{USER}", "U", None, None)]
    for profile in profiles:
        await written_at(store, recently)
        username, first_name, last_name, tg_language = profile
        user, _ = await store.upsert_user(USER, username=username, first_name=first_name,
                                          last_name=last_name, tg_language=tg_language,
                                          starting_credits=5)
        assert (user.username, user.first_name, user.last_name, user.tg_language) == profile
        assert user == await store.get_user(USER) and await last_written(store) > recently
        await add_user(store)  # back to the first profile
    await written_at(store, time.time() - Store.SEEN_PRECISION - 1)  # seen long ago: refreshed
    await add_user(store)
    assert await last_written(store) > time.time() - 60
    await written_at(store, recently)
    await store.set_blocked(USER)
    await add_user(store)  # writes again: unblocked
    assert not (await store.get_user(USER)).blocked and await last_written(store) > recently
    assert await balance(store) == 5 and len(await store.ledger(USER)) == 1


async def see(store: Store, update_id: int | None, user_id: int = USER, *, username: str = "a",
              tg_language: str | None = "en", credits: int = 50) -> User | None:
    return await store.see_update(update_id, user_id, username=username, first_name="A",
                                  last_name=None, tg_language=tg_language,
                                  starting_credits=credits)


async def test_see_update_records_the_update_and_registers_its_sender(store: Store) -> None:
    """One update: its id recorded and its sender registered (granted once) or refreshed; a
    repeated update reads and writes nothing; None as the id records nothing (a checkout)."""
    first = await see(store, 1)
    assert first is not None and (first.id, first.username, first.balance) == (USER, "a", 50)
    assert first == await store.get_user(USER)
    assert await see(store, 1, username="changed") is None
    assert (await store.get_user(USER)).username == "a"  # a repeat changes nothing
    assert await store.first_sight_of_update(1) is False
    await written_at(store, time.time() - 60)
    known = await see(store, 2)
    assert known == first == await store.get_user(USER)  # read in the same statement
    assert await last_written(store) < time.time() - 30  # and nothing written
    renamed = await see(store, 3, username="b", tg_language="ru")
    assert renamed is not None and (renamed.username, renamed.tg_language) == ("b", "ru")
    assert renamed == await store.get_user(USER)
    await store.set_blocked(USER)
    back = await see(store, 4, username="b", tg_language="ru")
    assert back is not None and not back.blocked and not (await store.get_user(USER)).blocked
    assert await store.set_banned(USER)
    banned = await see(store, 5, username="b", tg_language="ru")
    assert banned is not None and banned.banned
    assert await see(store, None, username="b", tg_language="ru") == banned
    assert await see(store, None, username="b", tg_language="ru") == banned  # not recorded
    assert await store.first_sight_of_update(6) is True
    assert [row.kind for row in await store.ledger(USER)] == ["grant"]
    await assert_ledger_invariant(store)


async def test_a_new_user_seen_in_many_updates_at_once_is_granted_once(store: Store) -> None:
    users = await asyncio.gather(*(see(store, n) for n in range(100, 110)),
                                 *(see(store, None) for _ in range(3)),
                                 *(store.upsert_user(USER, username="a", first_name="A",
                                                     last_name=None, tg_language="en",
                                                     starting_credits=50) for _ in range(3)))
    assert all(user is not None for user in users)
    assert [row.kind for row in await store.ledger(USER)] == ["grant"]
    assert await balance(store) == 50
    await assert_ledger_invariant(store)


async def test_delivered_files_are_kept_in_order_and_replaced_never_duplicated(
        store: Store) -> None:
    """What Telegram holds of a result: an album in its order; a delivery retried (even by two
    instances at once) stores it once; a re-send that had to upload keeps the new file only."""
    await add_user(store, credits=100)
    album_of, other = [(await start(store, await open_draft(store))).id for _ in range(2)]
    assert await store.delivered_files(album_of) == []
    assert await store.with_delivered_files([album_of, other]) == set()
    album = [DeliveredFile("photo", "AgAC-2"), DeliveredFile("photo", "AgAC-1")]
    await store.save_delivered_files(album_of, album)
    await asyncio.gather(*(store.save_delivered_files(album_of, album) for _ in range(5)))
    assert await store.delivered_files(album_of) == album
    assert await count(store, "SELECT count(*) FROM delivered_files") == 2
    assert await store.with_delivered_files([album_of, other]) == {album_of}
    assert await store.with_delivered_files([]) == set()

    await store.save_delivered_files(album_of, [DeliveredFile("document", "BQAC-3")])
    assert await store.delivered_files(album_of) == [DeliveredFile("document", "BQAC-3")]
    assert await store.delivered_files(other) == []


async def test_purge_forgets_old_drafts_only(store: Store) -> None:
    await add_user(store)
    old, new = await open_draft(store), await open_draft(store)
    await store._rows("UPDATE drafts SET created_at = 0 WHERE id = ?", (old,))
    await store.purge(drafts_before=1000, updates_before=0)
    assert await store.get_draft(old) is None and await store.get_draft(new) is not None


async def test_deliveries_are_claimed_retried_released_and_refunded_only_when_asked(
        store: Store) -> None:
    await add_user(store, credits=100)
    generation = await start(store, await open_draft(store))
    await store.mark_submitted(generation.id, "t-1", 0)
    now = time.time()
    await succeed(store, generation.id, ["https://x/1.png"])
    assert await store.claim_deliveries(now, now + 600, 10) == []  # held by the marker's lease
    await store.release_leases(now)
    [claimed] = await store.claim_deliveries(now, now + 600, 10)
    assert claimed.id == generation.id and claimed.next_check_at == now + 600
    assert await store.claim_deliveries(now, now + 600, 10) == []  # claimed once
    await store.retry_delivery(generation.id, now + 5)
    retried = await store.get_generation(generation.id)
    assert (retried.deliveries, retried.next_check_at) == (1, now + 5)
    assert await store.next_wakeup() == now + 5
    # A finished result is refunded only where the caller says so (its delivery given up).
    assert await store.fail_generation(generation.id, "timeout") is None
    failed = await store.fail_generation(generation.id, "undelivered",
                                         states=(GenerationState.SUCCEEDED,))
    assert failed is not None and await refunds(store, generation.id) == 1
    assert (await store.get_user(USER)).balance == 100 == await store.ledger_sum(USER)


async def test_a_migrated_group_takes_its_open_work_along(store: Store) -> None:
    await add_user(store, credits=100)
    old, new = -100, -1009
    drafts = []
    for _ in range(3):
        draft = await store.create_draft(user_id=USER, chat_id=old, request_message_id=1,
                                         kind="image", prompt="a fox", model="imagen4")
        drafts.append(draft.id)
    running = await start(store, drafts[0])
    finished = await start(store, drafts[1])
    await store.fail_generation(finished.id, "kie_failed")
    assert await store.migrate_chat(old, new) == 1
    assert (await store.get_generation(running.id)).chat_id == new
    assert (await store.get_generation(finished.id)).chat_id == old  # history stays as it was
    assert (await store.get_draft(drafts[2])).chat_id == new


async def test_a_recovered_generation_is_delivered_free_and_never_refunded_twice(store: Store) -> None:
    await add_user(store, credits=PRICE * 3)
    generation = await start(store, await open_draft(store))
    failed = await store.fail_generation(generation.id, "interrupted")  # the restart's refund
    assert failed is not None and await refunds(store, generation.id) == 1
    now = time.time()
    recover = dict(deliver_by=now + 3600, lease_until=now + 600)
    assert await store.recover(generation.id, "task_r", ["https://x/1.png"], **recover) is not None
    assert await store.recover(generation.id, "task_r", ["https://x/1.png"], **recover) is None
    # Its delivery given up later: closed again, but the one refund stands alone.
    assert await store.fail_generation(generation.id, "undelivered",
                                       states=(GenerationState.SUCCEEDED,)) is not None
    assert await refunds(store, generation.id) == 1
    assert await store.ledger_sum(USER) == (await store.get_user(USER)).balance


async def test_a_persons_unconfirmed_pickers_are_bounded(store: Store) -> None:
    """One picker a second for hours (with long prompts) keeps at most DRAFTS_PER_USER of them;
    confirmed ones (their generations refer to them) and other people's stay."""
    await add_user(store, credits=PRICE * 3)
    await add_user(store, user_id=USER + 1, credits=0)
    confirmed = await start(store, await open_draft(store))
    other = await store.create_draft(user_id=USER + 1, chat_id=1, request_message_id=None,
                                     kind="image", prompt="x", model="imagen4")
    drafts = [await open_draft(store) for _ in range(DRAFTS_PER_USER + 5)]
    await store.cancel_draft(drafts[-1])
    kept = await store._rows("SELECT id FROM drafts WHERE user_id = ? AND state != 'confirmed'"
                             " ORDER BY id", (USER,))
    assert [row[0] for row in kept] == drafts[-DRAFTS_PER_USER:]
    assert await store.get_draft(confirmed.draft_id) is not None
    assert await store.get_draft(other.id) is not None


async def test_a_task_of_another_generation_recovers_nothing(store: Store) -> None:
    """A signed callback captured and replayed to another generation's path names a task that
    generation never had: nothing changes, and nothing raises (the unique task id)."""
    await add_user(store, credits=PRICE * 3)
    running = await start(store, await open_draft(store))
    await store.mark_submitted(running.id, "task_a", time.time() + 60)
    interrupted = await start(store, await open_draft(store))
    await store.fail_generation(interrupted.id, "interrupted")
    now = time.time()
    assert await store.recover(interrupted.id, "task_a", ["https://x/1.png"],
                               deliver_by=now + 60, lease_until=now + 60) is None
    assert (await store.get_generation(interrupted.id)).state is GenerationState.FAILED


async def test_only_an_interrupted_generation_without_a_task_can_be_recovered(store: Store) -> None:
    await add_user(store, credits=PRICE * 3)
    timed_out = await start(store, await open_draft(store))
    await store.fail_generation(timed_out.id, "timeout")
    running = await start(store, await open_draft(store))
    await store.mark_submitted(running.id, "task_1", time.time() + 60)
    now = time.time()
    for generation in (timed_out, running):
        assert await store.recover(generation.id, "task_x", ["https://x/1.png"],
                                   deliver_by=now + 60, lease_until=now + 60) is None


async def test_money_from_outside_is_committed_fully_synced_and_the_rest_normally(
        sqlite_store: Store) -> None:
    """A purchase, its refund and a top-up survive a power cut (synchronous=FULL for their
    commit); everything else commits with NORMAL, which WAL keeps safe from a crash.
    (PostgreSQL syncs every commit.)"""
    store = sqlite_store
    statements: list[str] = []
    await store._db._db.set_trace_callback(statements.append)
    await add_user(store, credits=100)
    await store.record_purchase(USER, charge_id="c1", package="100:50", credits=100, stars=50)
    await store.hold_purchase_refund("c1", admin_id=1, force=True)
    await store.confirm_purchase_refund("c1")
    await store.topup(USER, 5, admin_id=1)
    await start(store, await open_draft(store))
    await store._db._db.set_trace_callback(None)
    syncs = [s for s in statements if s.startswith(("PRAGMA synchronous", "COMMIT"))]
    durable = ["PRAGMA synchronous=FULL", "COMMIT", "PRAGMA synchronous=NORMAL"]
    # add_user; 3 durable writes; the draft and the charge: plain commits.
    assert syncs == ["COMMIT", *durable * 3, "COMMIT", "COMMIT"]
    rows = await store._rows("PRAGMA synchronous")
    assert rows[0][0] == 1  # NORMAL again afterwards


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_instance_owns_what_it_works_on_until_it_is_gone(engine: str, tmp_path: Path) -> None:
    """Two instances on one database: a step one of them has under way (a create, a read) is
    neither claimed, refunded nor released by the other while it lives; once it is gone (its
    connection closed; on SQLite, any other instance is a past run), the other takes it all
    over. Between steps a generation is nobody's: whoever has room reads it."""
    async with database(engine, tmp_path) as target:
        first, second = await Store.open(target), await Store.open(target)
        try:
            now = time.time()
            for store in (first, second):
                await store.heartbeat(now)
            await add_user(first, credits=100)
            creating = await start(first, await open_draft(first))  # first's create under way
            reading = await start(first, await open_draft(first))
            await first.mark_submitted(reading.id, "t-read", now - 1)
            assert (await first.get_generation(reading.id)).owner is None  # between steps
            [claimed] = await first.claim_checks(now, now + 30, 10)
            assert (claimed.id, claimed.owner) == (reading.id, first.instance)
            if engine == "postgres":  # SQLite: one process per file, so no second live one
                assert await second.refund_orphans(now) == []
                await second.release_leases(now)
                await first.heartbeat(now + 25)  # still there when its read's lease runs out
                assert await second.claim_checks(now + 31, now + 60, 10) == []  # first's, alive
                await first.close()  # gone: its presence connection ends with it
            else:
                await first.close()
            await second.heartbeat(time.time())
            assert [g.id for g in await second.refund_orphans(time.time())] == [creating.id]
            await second.release_leases(now + 1)
            [taken] = await second.claim_checks(now + 1, now + 30, 10)
            assert (taken.id, taken.owner) == (reading.id, second.instance)
        finally:
            await second.close()
            with contextlib.suppress(Exception):
                await first.close()


# -- the conversation: cancel before the create, choices, prompts ---------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_cancel_racing_the_create_fence_one_of_the_two_wins(engine: str,
                                                                    tmp_path: Path) -> None:
    """✖ Cancel (from any instance) against the fence its owner passes just before the create
    goes out: for each generation exactly one wins — refunded and never sent, or sent and not
    refundable by the press."""
    async with database(engine, tmp_path) as target:
        owner, other = await Store.open(target), await Store.open(target)
        try:
            await add_user(owner, credits=30 * PRICE)
            generations = [await start(owner, await open_draft(owner)) for _ in range(30)]
            results = await asyncio.gather(*(
                asyncio.gather(owner.fence_create(g.id), other.cancel_pending(g.id, USER))
                for g in generations))
            for sent, cancelled in results:
                assert sent != (cancelled is not None)
            cancelled_ids = [c.id for _, c in results if c is not None]
            assert sum(sent for sent, _ in results) == 30 - len(cancelled_ids)
            for generation in generations:
                expected = 1 if generation.id in cancelled_ids else 0
                assert await refunds(owner, generation.id) == expected
            # Repeated presses refund nothing more; a sent one stays sent.
            assert [await other.cancel_pending(g.id, USER) for g in generations] == [None] * 30
            assert await balance(owner) == len(cancelled_ids) * PRICE
            await assert_ledger_invariant(owner)
        finally:
            await owner.close()
            await other.close()


async def test_only_its_owner_cancels_a_generation(store: Store) -> None:
    await add_user(store, credits=PRICE)
    await add_user(store, 43)
    generation = await start(store, await open_draft(store))
    assert await store.cancel_pending(generation.id, 43) is None
    assert await store.cancel_pending(generation.id, USER) is not None
    assert await balance(store) == PRICE


async def test_the_last_paid_choice_per_kind_is_remembered(store: Store) -> None:
    await add_user(store, credits=10 * PRICE)
    assert await store.choice(USER, "image") is None
    await start(store, await open_draft(store))
    assert await store.choice(USER, "image") == ("imagen4", {"ar": "1:1"})
    draft = await store.create_draft(user_id=USER, chat_id=USER, request_message_id=2,
                                     kind="image", prompt="b", model="seedream",
                                     options={"size": "16:9"})
    await start(store, draft.id)
    assert await store.choice(USER, "image") == ("seedream", {"size": "16:9"})
    assert await store.choice(USER, "video") is None


async def test_a_question_finds_its_prompt_and_old_prompts_are_purged(store: Store) -> None:
    await add_user(store)
    prompt = await store.create_prompt(user_id=USER, chat_id=-100, message_id=5, picture="F")
    assert await store.answered_prompt(-100, 77) is None
    await store.set_question(prompt.id, kind="video", question_id=77)
    found = await store.answered_prompt(-100, 77)
    assert found is not None and (found.kind, found.picture, found.user_id) == ("video", "F", USER)
    await store.purge(drafts_before=time.time() + 1, updates_before=0)
    assert await store.get_prompt(prompt.id) is None
