"""`python -m bot` for the process tier, without paying its imports at every start.

Importing the bot costs seconds of CPU (aiogram has pydantic build a schema for each of its
hundreds of Telegram types), and the process tier starts a bot some forty times. So each one is
forked from multiprocessing's fork server, which imported the bot once for the test worker; the
child then does what `python -m bot` does: it takes the environment and the working folder it
is given (settings, `.env`), runs `bot.__main__.main()`, and exits with its code. It is a process
of its own (its own pid, locks, database connections, signals: SIGKILL, SIGSTOP, SIGTERM), and
`BotProcess` hands the tests what `asyncio.subprocess.Process` did.

What the fork skips is the cold start itself, which the tests that run `python -m bot` in a new
interpreter keep checking: test_startup.py (the database lock taken before the slow imports),
test_config_exit.py (the settings refused before them), test_backup.py, test_migrate_to.py, and
test_e2e_restart.py's SIGTERM test (`start_process(..., cold=True)`: a start to a clean exit).

TEST_TIMING in the environment (`timing_environment`) shrinks the timing constants a test waits
on, in that process only, before main() runs.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path

import bot.__main__
import bot.app
import bot.store.postgres  # the lazy imports too: DATABASE_URL

# What the fork server imports once (this module imports the bot).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])

# The constants a bot process may have shrunk (name in TEST_TIMING → module, attribute). Each is
# a module global read when it is used, so setting it before main() reaches every use.
TIMING = {
    # An instance without a heartbeat for this long is gone (bot/store/store.py).
    "INSTANCE_TIMEOUT": ("bot.store.store", "INSTANCE_TIMEOUT"),
    # The heartbeat, and with it the takeover of what gone instances left (bot/services/presence.py).
    "HEARTBEAT": ("bot.services.presence", "HEARTBEAT"),
    # A standby's pause between two tries for long polling's advisory lock (bot/store/postgres.py).
    "LOCK_RETRY": ("bot.store.postgres", "LOCK_RETRY"),
}


def timing_environment(**seconds: float) -> dict[str, str]:
    """The environment that sets these TIMING constants in a forked bot process."""
    unknown = set(seconds) - set(TIMING)
    assert not unknown, f"not a constant testkit.bot_process.TIMING knows: {unknown}"
    return {"TEST_TIMING": ",".join(f"{name}={value}" for name, value in seconds.items())}


def _set_timing(assignments: str) -> None:
    for assignment in filter(None, assignments.split(",")):
        name, value = assignment.split("=")
        module, attribute = TIMING[name]
        setattr(importlib.import_module(module), attribute, float(value))


def _run(folder: str, environment: dict[str, str], output: socket.socket) -> None:
    """The child: `python -m bot` in `folder` with exactly `environment`, its stdout and
    stderr into `output`, buffered as a piped interpreter's are."""
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 -- for the process's life
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1, closefd=False)
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(environment)
    _set_timing(environment.get("TEST_TIMING", ""))
    sys.argv = [str(Path(bot.__main__.__file__))]
    sys.exit(bot.__main__.main([]))


class BotProcess:
    """A forked bot, as asyncio.subprocess.Process showed it to the tests: pid, returncode,
    stdout (its stdout and stderr together), send_signal, kill, wait, communicate."""

    def __init__(self, process: multiprocessing.process.BaseProcess, stdout: asyncio.StreamReader,
                 stream: asyncio.StreamWriter) -> None:
        self._process = process
        self.pid = process.pid
        self.stdout = stdout
        self._stream = stream  # held: a StreamWriter closes its socket when collected
        self.returncode: int | None = None
        self._exited = asyncio.get_running_loop().create_future()
        # The fork server writes the exit code to the sentinel when the child has ended.
        asyncio.get_running_loop().add_reader(process.sentinel, self._on_exit)

    def _on_exit(self) -> None:
        asyncio.get_running_loop().remove_reader(self._process.sentinel)
        self.returncode = self._process.exitcode
        self._process.close()
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def communicate(self) -> tuple[bytes, None]:
        """Everything it wrote, once it has exited (like Process.communicate with
        stdout=PIPE, stderr=STDOUT)."""
        output = await self.stdout.read()
        await self.wait()
        self._stream.close()
        return output, None


async def fork_bot(folder: Path, environment: dict[str, str]) -> BotProcess:
    """`python -m bot` in `folder` with `environment` (and nothing else of this process's)."""
    ours, theirs = socket.socketpair()
    process = _CONTEXT.Process(target=_run, args=(str(folder), environment, theirs), daemon=True)
    try:
        # Blocking: the first start in a test worker starts the fork server and waits for its
        # imports (seconds, before any bot runs); every later one is a fork (milliseconds).
        process.start()
    finally:
        theirs.close()
    stdout, stream = await asyncio.open_unix_connection(sock=ours)
    return BotProcess(process, stdout, stream)
