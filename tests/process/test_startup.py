"""Start-up of `python -m bot` against its database: one process per SQLite file, and a
DATABASE_PATH that cannot hold a database is one line and exit 2, never a traceback."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.bot_process import BotProcess
from testkit.chat import Person
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import Call, FakeTelegram
from tests.process.test_e2e_restart import start_process


class NoStartWait:
    """The fake Telegram as start_process sees it, minus its wait for getMe: for a process
    that must exit before ever calling Telegram (start_process keeps the one environment)."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.url = tg.url
        self.calls_of = tg.calls_of

    async def wait_for(self, *args: Any, **kwargs: Any) -> list[Call]:
        return []


async def run_to_exit(tmp_path: Path, tg: FakeTelegram, kie: FakeKie,
                      **extra: str) -> tuple[int, str, float]:
    """Start `python -m bot` expecting it to stop by itself: exit code, output, seconds. A new
    interpreter (`cold`): what it checks comes before its slow imports, and that is timed."""
    started = time.monotonic()
    process = await start_process(tmp_path, NoStartWait(tg), kie, cold=True, **extra)
    output = (await asyncio.wait_for(process.communicate(), 10))[0].decode()
    assert process.returncode is not None
    return process.returncode, output, time.monotonic() - started


async def stop(process: BotProcess | asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return (await asyncio.wait_for(process.communicate(), 15))[0].decode()


def telegram_calls(tg: FakeTelegram) -> list[str]:
    """Every call but the running bot's long polls: what a second process would add."""
    return [c.method for c in tg.calls if c.method != "getUpdates"]


def assert_one_line_naming_database_path(output: str, *words: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "DATABASE_PATH" in lines[0] and "Traceback" not in output, output
    for word in words:
        assert word in lines[0], output


async def test_second_process_on_the_same_database_exits(tg, kie, tmp_path):
    database = tmp_path / "bot.sqlite3"
    first = await start_process(tmp_path, tg, kie)
    try:
        await tg.wait_for("getUpdates")  # its start-up calls are done: only polls from here
        before = telegram_calls(tg)
        code, output, seconds = await run_to_exit(tmp_path, tg, kie)
        assert code == 2, output
        assert_one_line_naming_database_path(output, str(database), "in use")
        assert seconds < 5
        assert telegram_calls(tg) == before, "the second process called Telegram"

        alice = Person(tg, 42, "Alice")  # the first one is untouched and still answers
        alice.say("/start")
        await alice.told("Hi, Alice!")
    finally:
        output = await stop(first)
    assert first.returncode == 0, output

    third = await start_process(tmp_path, tg, kie)  # the lock went with the first process
    output = await stop(third)
    assert third.returncode == 0, output


async def test_sigkilled_process_leaves_no_stale_lock(tg, kie, tmp_path):
    first = await start_process(tmp_path, tg, kie)
    first.send_signal(signal.SIGKILL)
    await first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert (tmp_path / "bot.sqlite3.lock").exists()  # the file stays; its lock died with it

    second = await start_process(tmp_path, tg, kie)
    output = await stop(second)
    assert second.returncode == 0, output


@pytest.mark.parametrize("case", ["folder", "under-a-file", "not-sqlite"])
async def test_database_path_that_cannot_hold_a_database(tg, kie, tmp_path, case):
    if case == "folder":
        path = tmp_path / "data"
        path.mkdir()
    elif case == "under-a-file":
        (tmp_path / "plain").write_text("a file, not a folder")
        path = tmp_path / "plain" / "bot.sqlite3"
    else:  # a file SQLite cannot open: caught by main(), not by the settings
        path = tmp_path / "notes.txt"
        path.write_text("not a database " * 100)
    code, output, _ = await run_to_exit(tmp_path, tg, kie, DATABASE_PATH=str(path))
    assert code == 2, output
    assert_one_line_naming_database_path(output, str(path))
    assert tg.calls_of("getMe") == []
