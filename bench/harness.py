"""What the benchmarks share: the time scale, the fakes, a bot as a child process (`python -m bot`,
the same with the catalog's durations scaled, or the bare aiogram bot) configured through the
environment as an operator configures it, and what /proc says of that process.

The bot runs in its own process, so its memory and CPU are its own and it has a core of its own;
the fake Bot API and the fake Kie.ai (testkit/fakes) run in the benchmark's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from testkit.bot import ADMIN_ID, KIE_KEY, TOKEN
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import Call, FakeTelegram

if TYPE_CHECKING:  # only for hints: the benchmarks on SQLite need neither
    from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
KIE_WINDOW = 10.0  # Kie.ai's real window: KIE_RATE_LIMIT requests per 10 s
KIE_LIMIT = 20
MAX_OPEN = 3  # MAX_OPEN_GENERATIONS: what one person may have running (the bot's default)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The bot as `python -m bot` runs it; the same with the catalog's durations scaled; the reference.
BOT = "bot"
SCALED_BOT = "bench.scaled_bot"
BARE_BOT = "bench.bare_bot"


@dataclass(frozen=True)
class Scale:
    """Real seconds × factor = benchmark seconds, for everything that waits: Kie's window, task
    durations, poll intervals, deadlines. Only the ratio of a duration to Kie's window matters
    to the Kie budget, so 0.1 measures in 1 s what takes 10 s in production."""

    factor: float = 0.1

    def __call__(self, seconds: float) -> float:
        return seconds * self.factor

    @property
    def window(self) -> float:
        return self(KIE_WINDOW)

    @property
    def ceiling(self) -> float:
        """Generations per second Kie's budget allows: two calls each (create, one read that
        confirms), KIE_LIMIT per window."""
        return KIE_LIMIT / 2 / self.window

    def real(self, per_second: float) -> float:
        """A rate measured at this scale, as it would be at Kie's real window."""
        return per_second * self.factor

    def describe(self) -> str:
        return (f"Time scale {self.factor:g}: every wait is real seconds × {self.factor:g} "
                f"(KIE_RATE_LIMIT={KIE_LIMIT} per KIE_RATE_WINDOW={self.window:g} s instead of "
                f"{KIE_WINDOW:g} s; task durations, the catalog's poll intervals and expected "
                f"durations, KIE_POLL_MAX_INTERVAL and the deadlines alike).")


SCALED = Scale(0.1)  # the benchmarks' default: Kie's window is 1 s
REAL_TIME = Scale(1.0)


# -- the fakes ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fakes(window: float, limit: int = KIE_LIMIT,
                more_keys: Sequence[str] = ()) -> AsyncIterator[tuple[FakeTelegram, FakeKie]]:
    """The fake Bot API and the fake Kie.ai on 127.0.0.1, Kie counting `limit` per `window`
    for each key (KIE_KEY, and `more_keys`: each an account of its own)."""
    async with FakeTelegram(token=TOKEN) as tg, \
            FakeKie(api_key=KIE_KEY, rate_limit=limit, window=window, more_keys=more_keys) as kie:
        yield tg, kie


# -- the bot's settings, as environment variables ------------------------------------------------


Env = dict[str, str]


def bot_env(folder: Path, tg: FakeTelegram, kie: FakeKie | None, **settings: object) -> Env:
    """The environment of a bot talking to the fakes: the runtime contract's variables (Settings'
    fields, upper-cased), `settings` added (None: left unset)."""
    env: Env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(folder), "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN, "ADMIN_IDS": str(ADMIN_ID), "TELEGRAM_API_URL": tg.url,
        "KIE_API_KEY": KIE_KEY, "DATABASE_PATH": str(database(folder)),
    }
    if kie is not None:
        env |= {"KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.url}
    env |= {name.upper(): str(value) for name, value in settings.items() if value is not None}
    return env


def database(folder: Path) -> Path:
    return folder / "bot.sqlite3"


def scaled_settings(scale: Scale) -> dict[str, object]:
    """The production defaults with every wait scaled (Settings' defaults × factor), and the
    fairness limits opened: a benchmark's few users stand for many people."""
    return {
        "bench_time_scale": scale.factor,  # read by bench.scaled_bot: the catalog's durations
        "kie_rate_limit": KIE_LIMIT, "kie_rate_window": scale.window,
        "kie_poll_max_interval": scale(30.0),
        "kie_deadline_image": scale(600.0), "kie_deadline_video": scale(1800.0),
        "kie_deadline_audio": scale(900.0), "delivery_deadline": scale(3600.0),
        "max_open_generations": MAX_OPEN, "max_starts_per_minute": 1000,
        "starting_credits": 1_000_000,
    }


def callback_settings(port: int) -> dict[str, object]:
    """Kie callbacks on: the bot's web server on 127.0.0.1:port receives them. KIE_POLL_INTERVAL
    stays unset, so the status poll is the late fallback."""
    return {"web_host": "127.0.0.1", "web_port": port,
            "kie_callback_url": f"http://127.0.0.1:{port}/kie"}


# -- the child process --------------------------------------------------------------------------


class Child:
    """A bot in its own process; its output goes to a file (a pipe nobody reads would fill)."""

    def __init__(self, process: asyncio.subprocess.Process, started: float, log: Path,
                 output: IO[bytes]) -> None:
        self.process = process
        self.started = started  # time.monotonic() just before the process was made
        self.log = log
        self._output = output

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), in MiB."""
        return proc_status(self.pid, "VmRSS") / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far."""
        return cpu_seconds(self.pid)

    def output(self) -> str:
        if not self._output.closed:
            self._output.flush()
        return self.log.read_text(errors="replace")

    async def stop(self, grace: float = 15.0) -> int:
        """SIGTERM (the graceful stop), SIGKILL if it has not ended in `grace` s."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._output.close()
        return self.process.returncode if self.process.returncode is not None else -1

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise RuntimeError(f"the bot (pid {self.pid}) ended with {self.process.returncode}:\n"
                               f"{self.output()[-3000:]}")


async def spawn(module: str, env: Mapping[str, str], folder: Path, name: str = "bot") -> Child:
    """`python -m <module>` in `folder` (so no .env of the repo is read), output to a log file."""
    log = folder / f"{name}.log"
    output = _append(log)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, cwd=folder, env=dict(env), stdout=output,
        stderr=asyncio.subprocess.STDOUT)
    return Child(process, started, log, output)


def _append(log: Path) -> IO[bytes]:
    return open(log, "ab")  # closed by Child.stop


async def first_poll(tg: FakeTelegram, child: Child, since: int, patience: float = 60.0) -> Call:
    """The first getUpdates the child made among tg.calls[since:] (a call is recorded when it is
    answered, stamped with its arrival: a long poll of an earlier process may come later)."""
    deadline = time.monotonic() + patience
    while True:
        for call in tg.calls[since:]:
            if call.method == "getUpdates" and call.time >= child.started:
                return call
        child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no getUpdates {patience} s after start:\n{child.output()[-3000:]}")
        await asyncio.sleep(0.002)


async def start(module: str, env: Mapping[str, str], folder: Path, tg: FakeTelegram,
                name: str = "bot") -> tuple[Child, Call]:
    """Start a bot and wait until it polls for updates."""
    since = len(tg.calls)
    child = await spawn(module, env, folder, name)
    try:
        return child, await first_poll(tg, child, since)
    except BaseException:
        await child.stop()
        raise


@contextlib.asynccontextmanager
async def profiled(child: Child, output: Path | None) -> AsyncIterator[None]:
    """py-spy records the child while the block runs, into `output` as collapsed stacks (one
    line per stack and its sample count: flamegraph.pl or speedscope read it): samples of the
    thread holding the GIL, so where the Python CPU goes (SQLite's own work, which releases it,
    is left out). Nothing happens when `output` is None. py-spy is not a dependency:
    `.venv/bin/pip install py-spy`; it slows the bot down while it samples."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    process = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(child.pid), "--rate", "500", "--format", "raw", "--gil",
        "--output", str(output), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # attached
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()


def problems(log: str) -> list[str]:
    """The lines of a bot's log that say something went wrong."""
    return [line for line in log.splitlines()
            if "Traceback" in line or " ERROR " in line or "CRITICAL" in line]


# -- several instances on one PostgreSQL database ---------------------------------------------------

async def all_alive(store: Store, tg: FakeTelegram, children: Sequence[Child],
                    patience: float = 60.0) -> None:
    """Every instance present (heartbeat and presence connection), one of them polling."""
    deadline = time.monotonic() + patience
    while await store.live_instances(time.time()) < len(children) or not tg.calls_of("getUpdates"):
        for child in children:
            child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {len(children)} instances did not all start")
        await asyncio.sleep(0.05)


async def recounted(store: Store, since: float, children: Sequence[Child],
                    patience: float = 60.0) -> None:
    """Every instance has had a heartbeat after `since` (its row's seen_at), so counted the
    instances alive then, and spends only its part of Kie's budget."""
    deadline = time.monotonic() + patience
    while True:
        rows = await store._rows("SELECT min(seen_at) FROM instances")
        if rows[0][0] is not None and rows[0][0] > since:
            await asyncio.sleep(0.5)  # its count comes just after the row is written
            return
        for child in children:
            child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("no heartbeat of every instance after all started")
        await asyncio.sleep(0.1)


async def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM each (a killed one is only reaped), SIGKILL what that did not end, whatever
    went wrong (an interrupt too): no bot outlives the benchmark."""
    failures: list[BaseException] = []
    for child in children:
        try:
            await child.stop()
        except BaseException as error:  # the others are still stopped; raised after
            failures.append(error)
        finally:
            if child.process.returncode is None:
                child.process.kill()
    if failures:
        raise failures[0]


# -- /proc ---------------------------------------------------------------------------------------


def proc_status(pid: int, field: str) -> int:
    """A kB figure of /proc/<pid>/status (VmRSS, VmHWM...)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """utime + stime of /proc/<pid>/stat (fields 14 and 15; the name in field 2 may hold spaces)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
