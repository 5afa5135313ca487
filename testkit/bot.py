"""The bot's test settings and the real Application run in process (tests' fixtures, bench)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiogram.client.session.aiohttp import AiohttpSession

import bot.app
from bot.app import Application
from bot.config import Settings
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-secret-token-do-not-log"
KIE_KEY = "kie-secret-key-do-not-log"
ADMIN_ID = 1000
# Tests shrink Kie's 10 s window to this; the fake counts in the same window.
WINDOW = 0.5


def make_settings(tmp_path: Path, tg: FakeTelegram, kie: FakeKie, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        bot_token=TOKEN, kie_api_key=KIE_KEY, admin_ids=str(ADMIN_ID),
        database_path=tmp_path / "bot.sqlite3", telegram_api_url=tg.url,
        kie_api_url=kie.url, kie_upload_url=kie.url, kie_rate_limit=20, kie_rate_window=WINDOW,
        kie_poll_interval=0.05, kie_poll_max_interval=0.2, starting_credits=100,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def more_keys(keys: int) -> list[str]:
    """The keys a bot with `keys` Kie keys has beside KIE_KEY (its KIE_API_KEYS)."""
    return [f"{KIE_KEY}-{n}" for n in range(1, keys)]


@contextmanager
def lighter_bots() -> Iterator[None]:
    """Every bot run in this process without what costs each test time and tests nothing (most
    of what a test with the bot cost beyond its own steps); nothing the bot does changes:
    - the TLS trust store each of its three HTTP clients loads (certifi's bundle, a tenth of a
      second of CPU) is loaded once, the same for all: the fakes speak plain HTTP anyway;
    - its catalogs are compiled from `locales/` once, and shared as one bot's updates share them;
    - its Telegram session closes without aiogram's 250 ms wait for TLS connections to end."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssl, "create_default_context", functools.cache(ssl.create_default_context))
        patch.setattr(bot.app, "create_i18n", functools.cache(bot.app.create_i18n))
        patch.setattr(AiohttpSession, "close", _close_at_once)
        yield


async def _close_at_once(session: AiohttpSession) -> None:
    """AiohttpSession.close (aiogram 3.31) but for its sleep."""
    if session._session is not None and not session._session.closed:
        await session._session.close()


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
