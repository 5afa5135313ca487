"""`python -m bot migrate-to URL`, as an operator runs it (no token or key needed): a SQLite
database with people, money and generations in every state lands in PostgreSQL row for row,
ids kept, new ids after them, balances checked; it refuses a running bot, a target holding
data or in use, and what is no PostgreSQL URL, with one line and nothing written."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from bot.store import GenerationState, Store
from bot.store.lock import DatabaseLock
from testkit.databases import postgres_url
from tests.process.test_e2e_restart import ROOT

TABLES = ("users", "generations", "ledger", "drafts", "purchases", "updates", "chats",
          "model_overrides", "flags")


async def migrate(folder: Path, url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate-to", url, cwd=folder,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "PYTHONPATH": str(ROOT),
             "DATABASE_PATH": str(folder / "bot.sqlite3")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode is not None
    return process.returncode, output


async def fill(store: Store) -> None:
    """People, money from every source, and generations in each state."""
    now = time.time()
    for user_id, name in ((1, "ann"), (2, "bob"), (3, None)):
        await store.upsert_user(user_id, username=name, first_name=f"U{user_id}", last_name=None,
                                tg_language="ru", starting_credits=100)
    await store.topup(2, 250, admin_id=9, note="gift", source="9:77")
    await store.record_purchase(3, charge_id="ch1", package="100:50", credits=100, stars=50)
    await store.hold_purchase_refund("ch1", admin_id=9, force=True)
    await store.confirm_purchase_refund("ch1")
    await store.set_model_price("imagen4", 33)
    await store.set_flag("kie_low", "1")
    await store.first_sight_of_update(5000)
    await store.set_chat_unreachable(-100)
    for n in range(4):
        draft = await store.create_draft(user_id=1 + n % 2, chat_id=1, request_message_id=n,
                                         kind="image", prompt=f"p{n}", model="imagen4",
                                         options={"ar": "1:1"})
        generation = await store.start_generation(draft.id, revision=0, input={"prompt": "p"},
                                                  price=20, deadline_at=now + 600)
        if n >= 1:
            await store.mark_submitted(generation.id, f"task{n}", now + 5)
        if n >= 2:
            await store.mark_succeeded(generation.id, [f"https://x/{n}.png"], deliver_by=now + 60,
                                       lease_until=now + 30)
        if n == 3:
            await store.mark_delivered(generation.id, GenerationState.DELIVERED)
    await store.fail_generation(1, "interrupted")  # never sent to Kie: refunded
    await store.create_draft(user_id=3, chat_id=3, request_message_id=None, kind="video",
                             prompt="open", model=None)


async def dump(store: Store) -> dict[str, list[tuple]]:
    return {table: [tuple(row) for row in await store._rows(f"SELECT * FROM {table} ORDER BY 1")]
            for table in TABLES}


async def test_everything_moves_and_the_bot_goes_on_from_it(tmp_path: Path) -> None:
    source = await Store.open(tmp_path / "bot.sqlite3")
    try:
        await fill(source)
        before = await dump(source)
    finally:
        await source.close()
    async with postgres_url() as url:
        code, output = await migrate(tmp_path, url)
        assert code == 0, output
        assert output.strip() == (f"copied 3 users, {len(before['ledger'])} ledger rows, 4 "
                                  "generations, 1 purchases; every balance equals the sum of "
                                  "its ledger"), output
        assert len(before["ledger"]) == 11  # 3 grants, a top-up, a purchase and its refund,
        # 4 charges and 1 refund
        target = await Store.open(url)
        try:
            after = await dump(target)
            for table in TABLES:
                assert after[table] == before[table], table
            for user_id in (1, 2, 3):
                user = await target.get_user(user_id)
                assert user.balance == await target.ledger_sum(user_id)
            # New rows get ids after the copied ones; the copied ledger still refuses a repeat.
            draft = await target.create_draft(user_id=1, chat_id=1, request_message_id=9,
                                              kind="image", prompt="new", model="imagen4")
            generation = await target.start_generation(
                draft.id, revision=0, input={}, price=5, deadline_at=time.time() + 60)
            assert draft.id > max(row[0] for row in before["drafts"])
            assert generation.id == 5
            assert await target.topup(2, 250, admin_id=9, source="9:77") is None
            assert await target.record_purchase(3, charge_id="ch1", package="100:50",
                                                credits=100, stars=50) is None
        finally:
            await target.close()

        code, output = await migrate(tmp_path, url)  # into a database that holds data now
        assert code == 2 and "already holds users" in output and "Traceback" not in output


async def test_refusals_write_nothing(tmp_path: Path) -> None:
    code, output = await migrate(tmp_path, "postgresql://postgres@127.0.0.1:5432/postgres")
    assert code == 2 and "does not exist" in output  # no SQLite file yet
    source = await Store.open(tmp_path / "bot.sqlite3")
    try:
        await fill(source)
    finally:
        await source.close()
    code, output = await migrate(tmp_path, "mysql://root@127.0.0.1/bot")
    assert code == 2 and "postgresql://" in output
    code, output = await migrate(tmp_path, "postgresql://kiebot:s3cretpass@127.0.0.1:1/x")
    assert code == 1 and "nothing was kept" in output and "s3cretpass" not in output

    async with postgres_url() as url:
        running = await Store.open(url)  # a bot running on the target
        await running.heartbeat(time.time())
        try:
            code, output = await migrate(tmp_path, url)
            assert code == 2 and "in use by a running bot" in output, output
            assert (await running._rows("SELECT count(*) FROM users"))[0][0] == 0
        finally:
            await running.close()


async def test_a_running_bot_on_the_file_is_refused(tmp_path: Path) -> None:
    await (await Store.open(tmp_path / "bot.sqlite3")).close()
    with DatabaseLock(tmp_path / "bot.sqlite3"):  # what `python -m bot` holds while it runs
        code, output = await migrate(tmp_path, "postgresql://postgres@127.0.0.1:5432/postgres")
    assert code == 2 and "in use by a running bot" in output
    assert len(output.strip().splitlines()) == 1


async def test_a_target_with_a_bad_host_or_port_is_one_line_naming_the_argument(
        tmp_path: Path) -> None:
    await (await Store.open(tmp_path / "bot.sqlite3")).close()
    for url in ("postgresql://u@h:99999/db", "postgresql://u@[::1/kie"):
        code, output = await migrate(tmp_path, url)
        assert code == 2, output
        assert len(output.strip().splitlines()) == 1, output
        assert "target URL (migrate-to's argument)" in output and "host or port" in output
        assert "Traceback" not in output and url not in output
