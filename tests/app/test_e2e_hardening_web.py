"""End to end, the bot's web server against hostile clients: callback bodies dropped midway
cost one log line at most (the path secret is checked before the body is read), and a
non-ASCII path secret or webhook secret header is refused (404, 401), never a 500."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.services.callback_url import path_secret
from tests.app.test_e2e_web import get_json, web_settings, webhook_settings

ABORTS = 20  # requests of each kind


async def raw_request(port: int, head: bytes, body: bytes = b"", *,
                      abort: bool = False) -> bytes:
    """Send `head` (request line and headers, without the blank line) and `body` as bytes.
    Returns the answer's status line; with abort, drops the connection at once instead."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"\r\n\r\n" + body)
    await writer.drain()
    if abort:
        writer.close()
        await writer.wait_closed()
        return b""
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    return status


def post_head(path: bytes, *headers: bytes, length: int) -> bytes:
    return b"\r\n".join([b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1",
                         b"Content-Type: application/json", b"Content-Length: %d" % length,
                         *headers])


def web_lines(caplog: pytest.LogCaptureFixture, since: int) -> list[logging.LogRecord]:
    """What the web server logged (aiohttp's own loggers and the bot's web side)."""
    return [r for r in caplog.records[since:]
            if r.name.startswith(("aiohttp", "bot.web", "bot.services.callbacks"))]


async def test_aborted_callback_bodies_cost_one_line_at_most(tg, kie, tmp_path, start_bot, caplog):
    settings = web_settings(tmp_path, tg, kie)
    await start_bot(settings)
    port = settings.web.port

    async def aborted(secret: str) -> list[logging.LogRecord]:
        """ABORTS posts declaring 50 kB, sending one byte, dropped: what they logged."""
        since = len(caplog.records)
        head = post_head(f"/kie/callbacks/{secret}/1".encode(), length=50_000)
        for _ in range(ABORTS):
            await raw_request(port, head, b"{", abort=True)
        await asyncio.sleep(0.5)  # the server sees each connection go
        lines = web_lines(caplog, since)
        assert not [r for r in lines if r.exc_info or r.exc_text], lines[0].exc_text
        assert all("\n" not in r.getMessage() for r in lines)
        return lines

    assert await aborted("0" * 32) == []  # refused before the body is read: nothing to log
    lines = await aborted(path_secret(settings.bot.token))
    assert len(lines) <= ABORTS, [r.getMessage() for r in lines]
    status, body = await get_json(f"http://127.0.0.1:{port}/healthz")
    assert status == 200 and body["ok"]


def failures(caplog) -> list[logging.LogRecord]:
    """What the bot and its web server logged as failing. asyncio's report of an aiohttp
    session left unclosed is not theirs: the garbage collector makes it whenever it frees one
    another test left (CI once saw it in the middle of this file's test)."""
    return [r for r in caplog.records if (r.exc_info or r.levelno >= logging.ERROR)
            and not (r.name == "asyncio" and r.getMessage().startswith("Unclosed"))]


async def test_a_non_ascii_callback_path_secret_is_404(tg, kie, tmp_path, start_bot, caplog):
    settings = web_settings(tmp_path, tg, kie)
    await start_bot(settings)
    for secret in (b"%C3%A9" * 16, b"%E9" * 32, b"%FF%FE"):
        status = await raw_request(settings.web.port, post_head(
            b"/kie/callbacks/" + secret + b"/1", length=2), b"{}")
        assert status.startswith(b"HTTP/1.1 404"), (secret, status)
    assert not failures(caplog)


@pytest.mark.parametrize("header", ["é".encode(), "é".encode("latin-1"), "секрет".encode()],
                         ids=["utf-8", "latin-1", "cyrillic"])
async def test_a_non_ascii_webhook_secret_header_is_401(tg, kie, tmp_path, start_bot, store,
                                                        caplog, header):
    settings = webhook_settings(tmp_path, tg, kie)
    await start_bot(settings)
    body = (b'{"update_id": 900002, "message": {"message_id": 1, "date": 0, "chat": {"id": 66,'
            b' "type": "private"}, "from": {"id": 66, "is_bot": false, "first_name": "M"},'
            b' "text": "/start"}}')
    status = await raw_request(settings.web.port, post_head(
        b"/telegram", b"X-Telegram-Bot-Api-Secret-Token: " + header, length=len(body)), body)
    assert status.startswith(b"HTTP/1.1 401"), status
    await asyncio.sleep(0.2)
    assert await store.get_user(66) is None and tg.sent_to(66) == []
    assert not failures(caplog)
