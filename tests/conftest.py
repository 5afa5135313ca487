"""Fixtures: the fake Bot API and Kie.ai servers on 127.0.0.1, and the real bot between them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Application
from bot.config import Settings
from bot.store import Store
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-secret-token-do-not-log"
KIE_KEY = "kie-secret-key-do-not-log"
ADMIN_ID = 1000
# Tests shrink Kie's 10 s window to this; the fake counts in the same window.
WINDOW = 0.5


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


def make_settings(tmp_path: Path, tg: FakeTelegram, kie: FakeKie, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        bot_token=TOKEN, kie_api_key=KIE_KEY, admin_ids=str(ADMIN_ID),
        database_path=tmp_path / "bot.sqlite3", telegram_api_url=tg.url,
        kie_api_url=kie.url, kie_upload_url=kie.url, kie_rate_limit=20, kie_rate_window=WINDOW,
        kie_poll_interval=0.05, kie_poll_max_interval=0.2, starting_credits=100,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class RunningBot:
    """The real Application, run in this event loop as `python -m bot` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = Application(settings, handle_signals=False)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> RunningBot:
        self.task = asyncio.create_task(self.app.run())
        started = asyncio.create_task(self.app.started.wait())
        await asyncio.wait({self.task, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()
        assert self.app.started.is_set(), "the bot did not start"
        return self

    async def stop(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.app.stop()
        await asyncio.wait_for(self.task, 15)

    async def kill(self) -> None:
        """An abrupt stop: the polling task is cancelled wherever it is."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


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
