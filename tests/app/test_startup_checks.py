"""The start-up checks in process (bot/runners/checks.py): a token or key refused is a
SettingRefused before anything starts; a key of KIE_API_KEYS refused is left out; Kie.ai out of
credits is a warning; Telegram not answering is waited for, one log line per retry, and a stop
meanwhile ends the wait. `python -m bot` itself: tests/process/test_startup_checks.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.app import Application
from bot.errors import SettingRefused
from bot.kie.client import key_id
from testkit.bot import KIE_KEY, WINDOW, make_settings
from testkit.chat import Person
from testkit.fakes.kie import FakeKie
from testkit.timing import until

MORE = ["kie-second-key-do-not-log", "kie-third-key-do-not-log"]
WRONG_TOKEN = "123456:TEST-wrong-token-do-not-log"
WRONG_KEY = "kie-wrong-key-do-not-log"


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    async with FakeKie(api_key=KIE_KEY, rate_limit=20, window=WINDOW, more_keys=MORE) as fake:
        yield fake


def logged(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


async def test_a_token_telegram_refuses_stops_the_start(tg, kie, tmp_path, start_bot, caplog):
    with pytest.raises(SettingRefused) as refused:
        await start_bot(make_settings(tmp_path, tg, kie, bot_token=WRONG_TOKEN))
    message = str(refused.value)
    assert "BOT_TOKEN" in message and "401" in message and "@BotFather" in message
    assert WRONG_TOKEN not in message and "wrong-token" not in " ".join(logged(caplog, 0))
    assert [c.error_code for c in tg.calls_of("getMe")] == [401]
    assert tg.calls_of("getUpdates") == [] and kie.requests == []  # Kie is not even asked


async def test_a_key_kie_refuses_stops_the_start(tg, kie, tmp_path, start_bot):
    with pytest.raises(SettingRefused) as refused:
        await start_bot(make_settings(tmp_path, tg, kie, kie_api_key=WRONG_KEY))
    message = str(refused.value)
    assert "KIE_API_KEY" in message and "401" in message and WRONG_KEY not in message
    assert [(r.path, r.code) for r in kie.requests] == [("/api/v1/chat/credit", 401)]
    assert tg.calls_of("getUpdates") == [] and tg.calls_of("setMyCommands") == []


async def test_kie_api_key_refused_stops_the_start_even_when_other_keys_work(tg, kie, tmp_path,
                                                                           start_bot):
    kie.refused_keys[KIE_KEY] = 401  # revoked; the other two accounts are fine
    with pytest.raises(SettingRefused, match="KIE_API_KEY was refused"):
        await start_bot(make_settings(tmp_path, tg, kie, kie_api_keys=",".join(MORE)))
    assert tg.calls_of("getUpdates") == []


async def test_a_refused_key_of_kie_api_keys_is_left_out(tg, kie, tmp_path, start_bot, caplog):
    kie.refused_keys[MORE[0]] = 401
    keys = ",".join([MORE[0], MORE[1], WRONG_KEY])  # the third: unknown to Kie, 401 as well
    running = await start_bot(make_settings(tmp_path, tg, kie, kie_api_keys=keys))
    client = running.app.parts.kie
    assert client.retired(key_id(SecretStr(MORE[0]))) and client.retired(key_id(SecretStr(WRONG_KEY)))
    assert not client.retired(key_id(SecretStr(MORE[1])))
    assert not client.retired(key_id(SecretStr(KIE_KEY)))
    warnings = logged(caplog)
    assert any("KIE_API_KEYS key #1 was refused" in w for w in warnings), warnings
    assert any("KIE_API_KEYS key #3 was refused" in w for w in warnings), warnings
    assert not any("#2" in w for w in warnings), warnings
    assert not any(key in w for w in logged(caplog, 0) for key in (*MORE, WRONG_KEY))
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")


async def test_kie_out_of_credits_is_a_warning_not_a_refusal(tg, kie, tmp_path, start_bot,
                                                             caplog):
    kie.refused_keys[KIE_KEY] = 402
    await start_bot(make_settings(tmp_path, tg, kie))
    assert any("KIE_API_KEY has no credits left" in w for w in logged(caplog)), logged(caplog)
    await tg.wait_for("getUpdates")


async def test_telegram_not_answering_is_waited_for_one_line_per_retry(tg, kie, tmp_path,
                                                                       start_bot, caplog):
    tg.fail_next("getMe", error_code=502)
    tg.fail_next("getMe", error_code=429, retry_after=1)
    await start_bot(make_settings(tmp_path, tg, kie))
    assert [c.error_code for c in tg.calls_of("getMe")] == [502, 429, None]
    retries = [r for r in caplog.records if r.name == "bot.services.telegram"]
    assert len(retries) == 2 and not any(r.exc_info for r in caplog.records), retries
    assert kie.count("/chat/credit") == 1  # asked once Telegram answered
    await tg.wait_for("getUpdates")


async def test_a_stop_while_waiting_for_telegram_ends_the_wait(tg, kie, tmp_path):
    tg.outage(502, "getMe")
    app = Application(make_settings(tmp_path, tg, kie), handle_signals=False)
    running = asyncio.create_task(app.run())
    await until(lambda: bool(tg.calls_of("getMe")))
    await app.stop()
    await asyncio.wait_for(running, 5)  # no exception, no waiting out the retry delay
    assert not app.started.is_set() and tg.calls_of("getUpdates") == [] and kie.requests == []
