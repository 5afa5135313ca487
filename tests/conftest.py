"""Fixtures of every tier: the fake Bot API and Kie.ai servers on 127.0.0.1, and the real bot
between them (testkit/: the fakes, the settings, RunningBot)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.store import Store
from testkit import bot as testkit_bot
from testkit.bot import KIE_KEY, TOKEN, WINDOW, RunningBot, make_settings
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import FakeTelegram
from testkit.timing import Timing

# The slow tier first: under xdist its long tests (child processes, PostgreSQL instances) start
# at once, spread over the workers beside the short ones, instead of last, one worker each.
TIER_ORDER = {"process": 0, "app": 1, "unit": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: TIER_ORDER.get(item.path.parent.name, 1))  # stable: files keep order


@pytest.fixture(scope="session", autouse=True)
def lighter_bots() -> Iterator[None]:
    """Every bot a test runs in process, without what costs time and tests nothing (testkit/bot.py)."""
    with testkit_bot.lighter_bots():
        yield


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    async with FakeKie(api_key=KIE_KEY, rate_limit=20, window=WINDOW) as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, tg: FakeTelegram, kie: FakeKie) -> Settings:
    return make_settings(tmp_path, tg, kie)


@pytest.fixture
def timing(monkeypatch: pytest.MonkeyPatch) -> Timing:
    """The bot's timing constants, shrunk for one test (testkit/timing.py)."""
    return Timing(monkeypatch)


@pytest.fixture
async def start_bot() -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
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
    opened = await Store.open(settings.store.path)
    yield opened
    await opened.close()


@pytest.fixture(autouse=True)
def no_secrets_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no captured log line may hold a secret."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")  # every SQL statement: noise
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert TOKEN not in text and KIE_KEY not in text, f"secret in log: {record.name}"
