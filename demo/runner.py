"""Starts the demo and stops it: the fake Bot API and the fake Kie.ai, the chat page, and the
real bot as a child process (`python -m bot`) whose settings point at the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import aiohttp

from demo.media import stage
from demo.page import ChatPage, Person
from testkit import ROOT
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import FakeTelegram

TOKEN = "777000:DEMO-not-a-real-token"  # the fake Bot API's: nothing else accepts it
KIE_KEY = "demo-kie-key"
PERSON = Person(4242, "Alice", "person", (
    "/start", "/image a red fox in the snow", "/video a paper boat on a river",
    "/music a calm piano tune", "/balance", "/buy", "/history", "/help"))
ADMIN = Person(1000, "Admin", "admin", (
    "/dashboard", "/stats", "/user 4242", "/topup 4242 100", "/kie", "/help"))
STARTING_CREDITS = 500
READY_WAIT = 60.0  # seconds the bot has to answer /healthz after its start
STOP_WAIT = 15.0  # seconds the bot has to stop after SIGTERM before it is killed
PR_SET_PDEATHSIG = 1  # prctl(2)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the bot's child process: SIGTERM when the demo dies, even by SIGKILL, so no bot is
    left polling fakes that are gone."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def bot_environment(folder: Path, tg: FakeTelegram, kie: FakeKie, web_port: int) -> dict[str, str]:
    """`python -m bot`'s settings, and nothing of the caller's environment but PATH and HOME:
    a real BOT_TOKEN or DATABASE_URL exported in the shell must not reach the demo's bot."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(folder)),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": tg.token, "KIE_API_KEY": kie.api_key, "ADMIN_IDS": str(ADMIN.id),
        "DATABASE_PATH": str(folder / "bot.sqlite3"), "TELEGRAM_API_URL": tg.url,
        "KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.url,
        "KIE_POLL_INTERVAL": "1", "KIE_POLL_MAX_INTERVAL": "2",
        "STARTING_CREDITS": str(STARTING_CREDITS),
        "WEB_HOST": "127.0.0.1", "WEB_PORT": str(web_port),
        "DASHBOARD_URL": f"http://127.0.0.1:{web_port}", "LOG_LEVEL": "WARNING",
    }


async def _ready(bot: asyncio.subprocess.Process, web_port: int) -> bool:
    """True once the bot's /healthz answers 200; False if it exits or never does."""
    url = f"http://127.0.0.1:{web_port}/healthz"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        for _ in range(int(READY_WAIT / 0.2)):
            if bot.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with client.get(url) as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.2)
    return False


async def _stop_bot(bot: asyncio.subprocess.Process) -> None:
    if bot.returncode is None:
        bot.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(bot.wait(), STOP_WAIT)
        except TimeoutError:
            bot.kill()
            await bot.wait()


async def run(port: int, web_port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not _port_free(web_port):
        print(f"demo: port {web_port} (the bot's web server) is in use; pick another with "
              "--web-port or DEMO_WEB_PORT", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kie-demo-") as temp:
        folder = Path(temp)
        async with FakeTelegram(token=TOKEN, bot_username="kie_demo_bot") as tg, \
                FakeKie(api_key=KIE_KEY) as kie:
            stage(kie)
            tg.max_poll_wait = 10.0  # long polling as Telegram's: few idle calls
            page = ChatPage(tg, [PERSON, ADMIN])
            try:
                await page.start(port)
            except OSError:
                await page.stop()
                print(f"demo: port {port} (the chat page) is in use; pick another with --port "
                      "or DEMO_PORT", file=sys.stderr)
                return 2
            # Its own session: Ctrl-C in the terminal reaches the demo alone, which stops the
            # bot with SIGTERM (a SIGINT while it is still importing would print a traceback).
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=folder, env=bot_environment(folder, tg, kie, web_port),
                start_new_session=True, preexec_fn=_die_with_parent)
            try:
                return await _serve(bot, stop, port, web_port)
            finally:
                await _stop_bot(bot)
                await page.stop()


async def _serve(bot: asyncio.subprocess.Process, stop: asyncio.Event, port: int, web_port: int) -> int:
    ready = asyncio.create_task(_ready(bot, web_port))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        ready.cancel()
        return 0
    if not ready.result():
        stopped.cancel()
        print(f"demo: the bot did not start (exit code {bot.returncode})", file=sys.stderr)
        return 1
    print(f"demo: ready. Open http://127.0.0.1:{port}/ (the bot's web server, with the dashboard: "
          f"http://127.0.0.1:{web_port}/). Ctrl-C stops it.", flush=True)
    exited = asyncio.create_task(bot.wait())
    await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        stopped.cancel()
        print(f"demo: the bot stopped by itself (exit code {bot.returncode})", file=sys.stderr)
        return 1
    exited.cancel()
    print("demo: stopping", flush=True)
    return 0
