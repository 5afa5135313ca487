"""`python -m bot` meeting Telegram and Kie.ai at start (bot/runners/checks.py): a token or key
they refuse is one line naming the setting and exit 2, never a traceback nor the secret;
Telegram unreachable is waited for, one log line per retry, and the bot starts when it answers;
Kie.ai unreachable is a warning and the bot starts all the same."""

from __future__ import annotations

import asyncio

from aiohttp import web

from testkit.chat import Person
from testkit.fakes.server import AppServer
from tests.process.test_e2e_restart import start_process
from tests.process.test_startup import NoStartWait, stop

WRONG_TOKEN = "123456:wrong-token-SECRET"
WRONG_KEY = "kie-wrong-key-SECRET"
# services/telegram.with_retry's line, and the Kie client's, for each retry.
TELEGRAM_RETRY = "Telegram error (TelegramNetworkError); retry in"
KIE_RETRY = "Kie.ai GET /api/v1/chat/credit failed"


def assert_one_line(output: str, *words: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output and "SECRET" not in output, output
    assert lines[0].startswith("Configuration error: "), output
    for word in words:
        assert word in lines[0], output


async def run_to_exit(tmp_path, tg, kie, **extra: str) -> tuple[int, str]:
    """`python -m bot` expected to stop by itself, past its imports (slow on a busy machine)."""
    process = await start_process(tmp_path, NoStartWait(tg), kie, **extra)
    output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    assert process.returncode is not None
    return process.returncode, output


async def closed_url() -> str:
    """An address nobody listens at: connection refused."""
    async with AppServer(web.Application()) as server:
        return server.url


async def test_a_token_telegram_refuses_is_one_line_and_exit_2(tg, kie, tmp_path):
    code, output = await run_to_exit(tmp_path, tg, kie, BOT_TOKEN=WRONG_TOKEN)
    assert code == 2, output
    assert_one_line(output, "BOT_TOKEN", "401")
    assert [c.error_code for c in tg.calls_of("getMe")] == [401] and kie.requests == []


async def test_a_key_kie_refuses_is_one_line_and_exit_2(tg, kie, tmp_path):
    code, output = await run_to_exit(tmp_path, tg, kie, KIE_API_KEY=WRONG_KEY)
    assert code == 2, output
    assert_one_line(output, "KIE_API_KEY", "401")
    assert [r.code for r in kie.requests] == [401] and tg.calls_of("getUpdates") == []


async def test_telegram_unreachable_for_a_while_then_the_bot_starts(tg, kie, tmp_path):
    down = NoStartWait(tg)  # Telegram's URL, the same when it is back
    await tg.stop()
    process = await start_process(tmp_path, down, kie)
    seen = []
    while sum(TELEGRAM_RETRY in line for line in seen) < 2:  # two failed tries: 2 s, then 4 s
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the bot stopped"
        seen.append(line.decode())
    await tg.start()
    try:
        await tg.wait_for("getUpdates", timeout=20)
        alice = Person(tg, 42, "Alice")
        alice.say("/start")
        await alice.told("Hi, Alice!")
    finally:
        output = "".join(seen) + await stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count(TELEGRAM_RETRY) == 2, output  # the third try found it
    assert [c.ok for c in tg.calls_of("getMe")] == [True] and kie.count("/chat/credit") == 1


async def test_kie_unreachable_is_a_warning_and_the_bot_starts(tg, kie, tmp_path):
    process = await start_process(tmp_path, tg, kie, KIE_API_URL=await closed_url())
    try:
        await tg.wait_for("getUpdates", timeout=30)  # after a few tries of Kie (7 s)
        alice = Person(tg, 42, "Alice")
        alice.say("/start")
        await alice.told("Hi, Alice!")
    finally:
        output = await stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count(KIE_RETRY) == 3, output  # the client's four tries, a line per retry
    assert "the Kie.ai check of KIE_API_KEY failed" in output, output
