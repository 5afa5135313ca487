"""`python -m bot backup FILE`: an online copy of the SQLite database, taken while the bot
runs (its lock held, a write transaction open), that opens with the same rows; it needs only
DATABASE_PATH, never overwrites a file, and a wrong call is one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from bot.store import Store
from bot.store.lock import DatabaseInUse, DatabaseLock
from testkit.chat import Person
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import FakeTelegram
from tests.process.test_e2e_restart import ROOT, start_process
from tests.process.test_startup import stop

ADMIN = 1000
TABLES = ("users", "ledger", "generations")


async def run_backup(cwd: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`python -m bot backup ...` as an operator runs it, with no BOT_TOKEN or KIE_API_KEY:
    exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def fill(path: Path) -> None:
    """A database as the bot writes it: three users, grants, top-ups."""
    store = await Store.open(path)
    try:
        for user_id in (1, 2, 3):
            await store.upsert_user(user_id, username=f"user{user_id}", first_name=f"User {user_id}",
                                    last_name=None, tg_language="en", starting_credits=100)
            await store.topup(user_id, 10 * user_id, admin_id=ADMIN, note="test")
    finally:
        await store.close()


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in TABLES}
    finally:
        db.close()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


async def test_backup_while_locked_and_a_write_transaction_is_open(tmp_path):
    database = tmp_path / "data" / "bot.sqlite3"
    await fill(database)
    committed = rows(database)
    # DATABASE_PATH from .env, as the bot reads it; no token, no Kie key anywhere.
    (tmp_path / ".env").write_text(f"DATABASE_PATH={database}\n")
    target = tmp_path / "backups" / "2025" / "bot.sqlite3"  # folders created

    with DatabaseLock(database):  # the bot's lock: the backup must not need it
        writer = sqlite3.connect(database, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held through the backup
            writer.execute("INSERT INTO users (id, first_name, created_at, updated_at)"
                           " VALUES (99, 'Uncommitted', 0, 0)")
            code, out, err = await run_backup(tmp_path, "backup", str(target))
            writer.execute("COMMIT")
        finally:
            writer.close()
        with pytest.raises(DatabaseInUse):  # still the test's: the backup took it at no point
            DatabaseLock(database).acquire()

    assert code == 0, err
    assert err == ""
    line = one_line(out)
    assert "schema version" in line and "3 users" in line and "6 ledger rows" in line, line
    assert "integrity ok" in line, line
    assert rows(target) == committed  # the last commit, without the open transaction
    assert len(rows(database)["users"]) == 4
    assert sorted(p.name for p in target.parent.iterdir()) == ["bot.sqlite3"]  # no partial file
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(database.stat().st_mode)
    db = sqlite3.connect(target)
    try:  # one self-contained file: no -wal beside it is needed
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        db.close()

    store = await Store.open(target)  # and the bot can start from it
    try:
        assert [row.amount for row in reversed(await store.ledger(3))] == [100, 30]
        user = await store.get_user(3)
        assert user is not None and user.balance == 130
    finally:
        await store.close()


async def test_backup_of_a_running_bot(tg: FakeTelegram, kie: FakeKie, tmp_path):
    process = await start_process(tmp_path, tg, kie)  # DATABASE_PATH = tmp_path/bot.sqlite3
    try:
        alice = Person(tg, 42, "Alice")
        alice.say("/start")
        await alice.told("Hi, Alice!")
        target = tmp_path / "copy.sqlite3"
        code, out, err = await run_backup(tmp_path, "backup", str(target),
                                          DATABASE_PATH=str(tmp_path / "bot.sqlite3"))
        assert code == 0, err
        assert "1 users, 1 ledger rows" in one_line(out), out
        copied = rows(target)
        assert [row[0] for row in copied["users"]] == [42]
        assert [row[2] for row in copied["ledger"]] == [100]  # her starting credits

        bob = Person(tg, 43, "Bob")  # the bot went on undisturbed
        bob.say("/start")
        await bob.told("Hi, Bob!")
    finally:
        output = await stop(process)
    assert process.returncode == 0, output
    assert len(rows(tmp_path / "bot.sqlite3")["users"]) == 2


async def test_an_existing_file_is_never_overwritten(tmp_path):
    database = tmp_path / "bot.sqlite3"
    await fill(database)
    target = tmp_path / "backups" / "bot.sqlite3"
    target.parent.mkdir()
    target.write_text("an older backup")

    code, out, err = await run_backup(tmp_path, "backup", str(target), DATABASE_PATH=str(database))
    assert code == 2, out + err
    assert out == ""
    assert "already exists" in one_line(err) and str(target) in err, err
    assert target.read_text() == "an older backup"
    assert [p.name for p in target.parent.iterdir()] == ["bot.sqlite3"]


async def test_a_missing_database(tmp_path):
    database = tmp_path / "nowhere" / "bot.sqlite3"
    target = tmp_path / "backups" / "copy.sqlite3"
    code, out, err = await run_backup(tmp_path, "backup", str(target), DATABASE_PATH=str(database))
    assert code == 2, out + err
    line = one_line(err)
    assert "DATABASE_PATH" in line and str(database) in line and "does not exist" in line, line
    assert not database.parent.exists()  # nothing created: not the database, not its folder
    assert not target.parent.exists()


async def test_a_file_that_is_not_a_database(tmp_path):
    database = tmp_path / "notes.txt"
    database.write_text("not a database " * 100)
    code, out, err = await run_backup(tmp_path, "backup", str(tmp_path / "copy.sqlite3"),
                                      DATABASE_PATH=str(database))
    assert code == 2, out + err
    assert "DATABASE_PATH" in one_line(err) and str(database) in err, err
    assert not (tmp_path / "copy.sqlite3").exists()


@pytest.mark.parametrize("args", [["frobnicate"], ["backup"], ["backup", "a", "b"]])
async def test_wrong_calls_print_the_usage(tmp_path, args):
    code, out, err = await run_backup(tmp_path, *args)
    assert code == 2, out + err
    assert out == ""
    assert one_line(err).startswith("usage: python -m bot"), err
