"""`python -m bot` on PostgreSQL (DATABASE_URL): a whole generation paid and delivered, one
process per database until several instances share one, and a database that cannot be used
is one line and exit 2, never a traceback or the password."""

from __future__ import annotations

import pytest

from bot.store import Store
from tests.chat import Person
from tests.databases import database, environment
from tests.test_e2e_image import charges, generate, refunds
from tests.test_e2e_restart import start_process
from tests.test_startup import run_to_exit, stop, telegram_calls


async def test_a_generation_paid_and_delivered_on_postgres(tg, kie, tmp_path):
    async with database("postgres", tmp_path) as url:
        process = await start_process(tmp_path, tg, kie, **environment(url))
        try:
            alice = Person(tg, 42, "Alice")
            await generate(alice, "a fox on postgres")
            await tg.wait_for("sendPhoto")
        finally:
            output = await stop(process)
        assert process.returncode == 0, output
        assert not (tmp_path / "bot.sqlite3").exists()  # DATABASE_URL wins over DATABASE_PATH
        store = await Store.open(url)
        try:
            assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
            assert (await store.get_user(42)).balance == 60
            assert await store.ledger_sum(42) == 60
        finally:
            await store.close()


async def test_second_process_on_the_same_postgres_database_exits(tg, kie, tmp_path):
    async with database("postgres", tmp_path) as url:
        first = await start_process(tmp_path, tg, kie, **environment(url))
        try:
            await tg.wait_for("getUpdates")
            before = telegram_calls(tg)
            code, output, _ = await run_to_exit(tmp_path, tg, kie, **environment(url))
            assert code == 2, output
            lines = output.strip().splitlines()
            assert len(lines) == 1 and "DATABASE_URL" in lines[0] and "in use" in lines[0], output
            assert telegram_calls(tg) == before, "the second process called Telegram"
        finally:
            output = await stop(first)
        assert first.returncode == 0, output
        third = await start_process(tmp_path, tg, kie, **environment(url))  # the lock went
        output = await stop(third)
        assert third.returncode == 0, output


@pytest.mark.parametrize("url", [
    "postgresql://kiebot:s3cretpass@127.0.0.1:1/nothing",            # nothing listens
    "postgresql://postgres:s3cretpass@127.0.0.1:5432/no_such_database",
    "mysql://root@127.0.0.1/x",                                        # not PostgreSQL
])
async def test_database_url_that_cannot_be_used(tg, kie, tmp_path, url):
    code, output, _ = await run_to_exit(tmp_path, tg, kie, DATABASE_URL=url)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0], output
    assert "Traceback" not in output and "s3cretpass" not in output
    assert tg.calls_of("getMe") == []
