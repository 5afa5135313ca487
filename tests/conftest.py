"""Fixtures of every tier: the fake Bot API and Kie.ai servers on 127.0.0.1, and the real bot
between them (testkit/: the fakes, the settings, RunningBot).

The bot and the test kit are imported in the fixtures, not here: under xdist the controller
loads this file too before it starts the workers, and importing the bot (aiogram: seconds of
CPU) is the workers' business alone."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import Store
    from testkit.bot import RunningBot
    from testkit.fakes.kie import FakeKie
    from testkit.fakes.telegram import FakeTelegram
    from testkit.timing import Timing

# The slow tier first: under xdist its long tests (child processes, PostgreSQL instances) start
# at once, spread over the workers beside the short ones (each worker is handed one test at a
# time: pyproject.toml), instead of last, one worker each.
TIER_ORDER = {"process": 0, "app": 1, "unit": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: TIER_ORDER.get(item.path.parent.name, 1))  # stable: files keep order


@pytest.fixture(scope="session", autouse=True)
def lighter_bots() -> Iterator[None]:
    """Every bot a test runs in process, without what costs time and tests nothing (testkit/bot.py)."""
    from testkit.bot import lighter_bots  # noqa: PLC0415 -- in the workers only (see above)

    with lighter_bots():
        yield


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    from testkit.bot import TOKEN  # noqa: PLC0415
    from testkit.fakes.telegram import FakeTelegram  # noqa: PLC0415

    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    from testkit.bot import KIE_KEY, WINDOW  # noqa: PLC0415
    from testkit.fakes.kie import FakeKie  # noqa: PLC0415

    async with FakeKie(api_key=KIE_KEY, rate_limit=20, window=WINDOW) as fake:
        yield fake


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with every migration applied and nothing in it, made once per test worker:
    each test's starts as a copy (migrating an empty file costs ~20 ms of CPU; what migrations
    do is tested where they are: tests/app/test_store.py, the process tier)."""
    from bot.store import Store  # noqa: PLC0415

    async def migrate(path: Path) -> None:
        await (await Store.open(path)).close()

    path = tmp_path_factory.mktemp("migrated") / "bot.sqlite3"
    asyncio.run(migrate(path))
    return path


@pytest.fixture
def settings(tmp_path: Path, tg: FakeTelegram, kie: FakeKie, migrated_database: Path) -> Settings:
    from testkit.bot import make_settings  # noqa: PLC0415

    shutil.copy(migrated_database, tmp_path / "bot.sqlite3")
    return make_settings(tmp_path, tg, kie)


@pytest.fixture
def timing(monkeypatch: pytest.MonkeyPatch) -> Timing:
    """The bot's timing constants, shrunk for one test (testkit/timing.py)."""
    from testkit.timing import Timing  # noqa: PLC0415

    return Timing(monkeypatch)


@pytest.fixture
async def start_bot() -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    from testkit.bot import RunningBot  # noqa: PLC0415

    bots: list[RunningBot] = []

    async def start(settings: Settings) -> RunningBot:
        running = await RunningBot(settings).start()
        bots.append(running)
        return running

    yield start
    for running in bots:
        await running.stop()


@pytest.fixture
async def bot(start_bot: Callable[..., Awaitable[RunningBot]], settings: Settings) -> RunningBot:
    return await start_bot(settings)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """A second connection to the bot's database, for assertions."""
    from bot.store import Store  # noqa: PLC0415

    opened = await Store.open(settings.store.path)
    yield opened
    await opened.close()


@pytest.fixture(autouse=True)
def no_secrets_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no captured log line may hold a secret."""
    from testkit.bot import KIE_KEY, TOKEN  # noqa: PLC0415

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")  # every SQL statement: noise
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert TOKEN not in text and KIE_KEY not in text, f"secret in log: {record.name}"
