"""The chaos run of testkit/chaos.py on PostgreSQL: several `python -m bot` processes on one schema,
a pool of Kie keys, and each process SIGKILLed or frozen (SIGSTOP, 20-45 s, then SIGCONT).

    .venv/bin/python -m bench.chaos_pg [--instances 2] [--keys 2] [--freezes 4] [--seed N] [...]
    .venv/bin/python -m bench.chaos --engine postgres [...]        (the same)

Everything of the SQLite run (people, the admin, Stars, every fault of the fakes, aimed and
random kills) with these differences:

- a new schema on the server at `--url` (TEST_DATABASE_URL, else the local one), dropped after
  (kept with `--keep`); `--instances` processes share it (DATABASE_URL), each in a folder of its
  own with a web server of its own; KIE_API_KEYS gives a pool of `--keys` keys, each an account
  of its own on the fake Kie;
- the fake Bot API is reached by instance X at <url>/iX, so each call is known by its sender;
  Kie's callbacks go through a load balancer that picks a running instance for each (a frozen
  one too: it times out); each instance's KIE_CALLBACK_URL names its own port, so every create
  says which instance sent it;
- a kill picks its victim: at a random moment either instance, aimed at an event the instance
  that caused it (the sender of the media, the maker of the create, the poller);
- `--freezes` times an instance is frozen for 20-45 s (one at a time): at a random moment, or
  aimed (`--aim` of them) — right after it charged a generation and before it sent the create
  (its status line answered), as Kie answers its create, or as Telegram refuses its media with a
  429 or 502 — the process stopped before it reads the answer;
- the audit reads the schema and checks every invariant of the SQLite run, with two more: a
  result sent twice only across a SIGKILL of its sender within 1 s of Telegram accepting it,
  and no create sent to Kie after its generation was refunded. Each generation a broken
  invariant names gets its timeline.

Exit status 0 when every invariant held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import signal
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from testkit.bot import KIE_KEY, TOKEN, more_keys
from testkit.chaos import (
    CREATE_PATHS,
    RATE_LIMIT,
    WINDOW,
    BotProcess,
    ChaosConfig,
    Check,
    GenerationRow,
    Killer,
    Life,
    Money,
    Report,
    Run,
    Snapshot,
    Watch,
    arguments,
    at,
    audit,
    bot_env,
    chaos,
    crowd,
    end_all,
    free_port,
    generation_of,
    generation_rows,
    keep,
    plan_tasks,
    provoker,
    spread,
)
from testkit.chaos import Faults as ChaosFaults
from testkit.databases import schema
from testkit.databases import server_url as postgres_url
from testkit.fakes.kie import CallbackRecord, FakeKie, Req, Task
from testkit.fakes.telegram import Call, FakeTelegram
from testkit.load import MEDIA_METHODS

__all__ = ["PgChaosConfig", "run_chaos_pg"]

NAMES = "ABCDEFGH"  # the instances, as the report names them
DUPLICATE_WINDOW = 1.0  # a result sent again is explained by a SIGKILL this soon after Telegram took it
FREEZE_AIM_WAIT = 10.0  # how long an aimed freeze waits for its event
FREEZE_TRIGGERS = ("charged, create not sent", "Kie create answered", "media refused")
STATUS_LINE = "⏳"  # the status line's first character (bot/texts.py status_line)
STORIES = 10  # timelines printed, at most
# Seconds after a frozen instance is let go in which another may still refund its creates as
# interrupted (the refund was decided while it was frozen; it has not said it is back yet).
THAW_SLACK = 5.0


@dataclass(frozen=True)
class PgChaosConfig(ChaosConfig):
    arrivals: float = 120.0  # longer than on SQLite: the freezes (one at a time) fall among people
    instances: int = 2
    keys: int = 2
    freezes: int = 4
    freeze_min: float = 20.0
    freeze_max: float = 45.0
    url: str | None = None  # the PostgreSQL server (a new schema is made there)


# -- the fakes, told who is who -------------------------------------------------------------------

class ChaosTelegram(FakeTelegram):
    """The fake Bot API, served also under /i<name> for each instance (its TELEGRAM_API_URL):
    `senders` says which instance made each call. `hooks` run as each such call is answered,
    before the answer leaves (one returning True is done): a process stopped there never reads
    the answer until it is let go."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.senders: dict[int, str] = {}  # id(call) -> instance name
        self.hooks: list[Callable[[Call, str], bool]] = []
        self.status_lines: set[tuple[Any, Any]] = set()  # (chat, message) that showed a status line
        self.first_status: set[int] = set()  # id(call) of each call that first showed one there

    def base_url(self, name: str) -> str:
        return f"{self.url}/i{name}"

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_route("*", "/i{instance}/bot{token}/{method}", self._handle)
        app.router.add_get("/i{instance}/file/bot{token}/{path:.+}", self._download)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        instance = request.match_info.get("instance")
        if instance is not None:
            # The call just recorded: the parent appends it and returns without awaiting.
            call = self.calls[-1]
            self.senders[id(call)] = instance
            self._status_line(call)
            self.hooks[:] = [hook for hook in self.hooks if not hook(call, instance)]
        return response

    def _status_line(self, call: Call) -> None:
        if not str(call.params.get("text") or "").startswith(STATUS_LINE):
            return
        if call.method == "editMessageText":
            where = (call.params.get("chat_id"), call.params.get("message_id"))
        elif call.method == "sendMessage":
            where = (call.params.get("chat_id"), id(call))
        else:
            return
        if where not in self.status_lines:
            self.status_lines.add(where)
            self.first_status.add(id(call))


class ChaosKie(FakeKie):
    """The fake Kie.ai with a load balancer in front of the instances' callback receivers
    (`balance`: the base URL a callback goes to, chosen as it is sent), and `create_hooks` run
    as a create makes a task, before the answer leaves (one returning True is done)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.balance: Callable[[], str | None] | None = None
        self.create_hooks: list[Callable[[Task], bool]] = []

    def _callback_target(self, url: str, *, redirect: bool = True) -> str:
        if redirect and self.balance is not None:
            self.deliver_callbacks_to = self.balance()
        return super()._callback_target(url, redirect=redirect)

    async def _create_task(self, request: web.Request) -> web.Response:
        return self._created(await super()._create_task(request))

    async def _suno_generate(self, request: web.Request) -> web.Response:
        return self._created(await super()._suno_generate(request))

    def _created(self, response: web.Response) -> web.Response:
        try:
            answer = json.loads(response.body) if isinstance(response.body, bytes) else {}
        except ValueError:
            return response
        task = self.tasks.get(str(((answer or {}).get("data") or {}).get("taskId")))
        if task is not None:
            self.create_hooks[:] = [hook for hook in self.create_hooks if not hook(task)]
        return response


# -- the instances ---------------------------------------------------------------------------------

@dataclass
class Freeze:
    number: int
    trigger: str  # "random moment", or the event it was aimed at
    fired: bool  # the event happened (else the freeze came when the wait for it ran out)
    instance: str
    life: int
    at: float  # time.monotonic()
    at_wall: float
    planned: float  # seconds
    ended: float | None = None  # time.monotonic(): let go, or killed
    ended_wall: float | None = None
    end: str = ""  # "thawed", or "killed" (a kill of the frozen process)

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.at


class Instance(BotProcess):
    """One of several bot processes on the schema: it can be frozen, and it has started when its
    presence shows in the database (`probe`: that check, by process id) — a process standing by
    for the polling turn never logs "bot started"."""

    def __init__(self, folder: Path, env: dict[str, str], name: str,
                 probe: Callable[[int], Any]) -> None:
        super().__init__(folder, env, name)
        self.probe = probe
        self.freezes: list[Freeze] = []

    @property
    def frozen(self) -> Freeze | None:
        last = self.freezes[-1] if self.freezes else None
        return last if last is not None and last.ended is None else None

    def freeze(self, freeze: Freeze) -> bool:
        if self.frozen is not None or not self.send(signal.SIGSTOP):
            return False
        self.freezes.append(freeze)
        return True

    def thaw(self) -> Freeze | None:
        freeze = self.frozen
        if freeze is not None:
            self.send(signal.SIGCONT)
            freeze.ended, freeze.ended_wall, freeze.end = time.monotonic(), time.time(), "thawed"
        return freeze

    async def _end(self, sig: signal.Signals, how: str) -> Life:
        if sig != signal.SIGKILL:  # a frozen process would never hear it
            self.thaw()
        freeze = self.frozen
        life = await super()._end(sig, how)
        if freeze is not None:
            freeze.ended, freeze.ended_wall, freeze.end = life.ended, life.ended_wall, how
        return life

    async def started(self, within: float = 60.0) -> None:
        life = self.lives[-1]
        deadline = time.monotonic() + within
        while self.pid is None or not await self.probe(self.pid):
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError(f"instance {self.name} did not start; see {life.log}")
            await asyncio.sleep(0.05)

    def frozen_within(self, life: Life, since: float, until: float) -> float:
        """Seconds `life` spent frozen between two moments (time.time())."""
        total = 0.0
        for f in self.freezes:
            if f.life == life.number:
                end = f.ended_wall if f.ended_wall is not None else time.time()
                total += max(0.0, min(end, until) - max(f.at_wall, since))
        return total


async def present(db: asyncpg.Connection, pid: int) -> bool:
    """The process's instance has a row and its presence connection (the bot's own test of
    being alive, bot/store/postgres.py)."""
    try:
        return bool(await db.fetchval(
            "SELECT count(*) FROM instances i JOIN pg_stat_activity a"
            " ON a.application_name = 'kie-bot ' || i.id WHERE i.id LIKE $1", f"{pid}-%"))
    except asyncpg.UndefinedTableError:  # not migrated yet
        return False


class Who:
    """Which instance did what: a Bot API call (its URL), a create (its callBackUrl's port), a
    callback (where the balancer sent it), the polling (the last getUpdates)."""

    def __init__(self, bots: list[Instance], tg: ChaosTelegram, ports: dict[int, Instance]) -> None:
        self.bots = bots
        self.tg = tg
        self.ports = ports
        self._by_name = {bot.name: bot for bot in bots}
        self._fetches: tuple[int, dict[int, list[tuple[float, Instance]]]] = (-1, {})

    def named(self, name: str) -> Instance | None:
        return self._by_name.get(name)

    def sender(self, call: Call) -> Instance | None:
        return self._by_name.get(self.tg.senders.get(id(call), ""))

    def at_url(self, url: object) -> Instance | None:
        try:
            port = urllib.parse.urlsplit(str(url or "")).port
        except ValueError:
            return None
        return self.ports.get(port) if port is not None else None

    def of(self, found: object) -> Instance | None:
        """The instance behind what showed an event (Killer._event)."""
        if isinstance(found, Call):
            return self.sender(found)
        if isinstance(found, Req) and isinstance(found.body, dict):
            return self.at_url(found.body.get("callBackUrl"))
        if isinstance(found, CallbackRecord):
            return self.at_url(found.url)
        return None

    def poller(self, before: float | None = None) -> Instance | None:
        """The sender of the last getUpdates that arrived (before `before`, time.monotonic())."""
        polls = [c for c in self.tg.calls if c.method == "getUpdates"
                 and (before is None or c.time <= before)]
        return self.sender(max(polls, key=lambda c: c.time)) if polls else None

    def fetches(self) -> dict[int, list[tuple[float, Instance]]]:
        """Update id -> each getUpdates that handed it out: (arrival, instance)."""
        if self._fetches[0] == len(self.tg.calls):
            return self._fetches[1]
        found: dict[int, list[tuple[float, Instance]]] = {}
        for call in self.tg.calls:
            bot = self.sender(call) if call.method == "getUpdates" and call.ok else None
            if bot is not None and isinstance(call.response, list):
                for update in call.response:
                    found.setdefault(update["update_id"], []).append((call.time, bot))
        self._fetches = (len(self.tg.calls), found)
        return found

    def balancer(self, rng: random.Random) -> Callable[[], str | None]:
        """A load balancer without health checks: any instance whose process runs."""
        def pick() -> str | None:
            running = [port for port, bot in self.ports.items() if bot.alive]
            return f"http://127.0.0.1:{rng.choice(running)}" if running else None
        return pick


class PgWatch(Watch):
    """The Watch on the schema (asyncpg), its pending clock stopped while a process is down or
    frozen."""

    RECOVERING = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    def __init__(self, url: str, bots: list[Instance]) -> None:
        super().__init__(Path(), bots[0])
        self.url = url
        self.bots = bots
        self._pg: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one query at a time on the connection (run and refresh)

    async def _connect(self) -> None:
        self._pg = await asyncpg.connect(self.url, timeout=10)

    async def _close(self) -> None:
        if self._pg is not None:
            await self._pg.close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> Iterable[Sequence[Any]]:
        if self._pg is None or self._pg.is_closed():  # (a connection lost: the next look reopens it)
            await self._connect()
        assert self._pg is not None
        numbers = iter(range(1, len(params) + 1))
        rows = await self._pg.fetch(re.sub(r"\?", lambda _: f"${next(numbers)}", sql), *params)
        return [tuple(row) for row in rows]

    async def refresh(self) -> None:
        async with self._lock:
            await super().refresh()

    def _epoch(self) -> object:
        if any(not bot.alive or bot.frozen for bot in self.bots):
            return 0
        return tuple((len(bot.lives), len(bot.freezes)) for bot in self.bots)


# -- kills and freezes ------------------------------------------------------------------------------

class PgKiller(Killer):
    """Kills as on SQLite; the victim: whoever caused the event aimed at (the poller for an
    update), else an instance at random."""

    def __init__(self, bots: list[Instance], who: Who, **kwargs: Any) -> None:
        super().__init__(bots[0], **kwargs)
        self.bots = bots
        self.who = who

    def victim(self, trigger: str, found: object | None) -> BotProcess:
        bot = self.who.of(found) if found is not None else None
        if bot is None and trigger in ("update confirmed", "payment fetched"):
            bot = self.who.poller()
        if bot is not None and bot.alive and not bot.frozen:
            return bot
        # At random: one that runs (a kill would cut a freeze short, and what a freeze is
        # for shows only once the others take its work over).
        running = [b for b in self.bots if b.alive and not b.frozen]
        return self.rng.choice(running or [b for b in self.bots if b.alive] or self.bots)


class Freezer:
    """Freezes one instance at a time for freeze_min-freeze_max seconds: at random moments, or
    aimed (hooks in the fakes stop the process as the event's answer is about to leave)."""

    def __init__(self, bots: list[Instance], who: Who, *, tg: ChaosTelegram, kie: ChaosKie,
                 rng: random.Random, config: PgChaosConfig, lock: asyncio.Lock) -> None:
        self.bots = bots
        self.who = who
        self.tg = tg
        self.kie = kie
        self.rng = rng
        self.config = config
        self.lock = lock  # the killer's: no freeze chosen at random while a kill restarts one
        self.freezes: list[Freeze] = []

    async def run(self, start: float) -> None:
        config = self.config
        moments = spread(self.rng, config.freezes, 2.0, max(2.0, config.arrivals - config.freeze_min))
        for moment in moments:
            await at(start, moment)
            aimed = self.rng.random() < config.aim
            await self.freeze(self.rng.choice(FREEZE_TRIGGERS) if aimed else "random moment")

    async def freeze(self, trigger: str) -> Freeze | None:
        """Freeze (aimed: when the event comes, else at the end of the wait), then let go."""
        duration = self.rng.uniform(self.config.freeze_min, self.config.freeze_max)
        freeze = await self._aimed(trigger, duration) if trigger != "random moment" else None
        if freeze is None:
            async with self.lock:
                running = [b for b in self.bots if b.alive]
                if running:
                    freeze = self._stop(self.rng.choice(running), trigger,
                                        trigger == "random moment", duration)
        if freeze is None:
            return None
        await asyncio.sleep(max(0.0, freeze.at + freeze.planned - time.monotonic()))
        bot = next(b for b in self.bots if b.name == freeze.instance)
        if bot.frozen is freeze:
            bot.thaw()
        return freeze

    def _stop(self, bot: Instance, trigger: str, fired: bool, duration: float) -> Freeze | None:
        if not bot.alive or any(b.frozen for b in self.bots):
            return None
        freeze = Freeze(len(self.freezes) + 1, trigger, fired, bot.name, bot.lives[-1].number,
                        time.monotonic(), time.time(), duration)
        if not bot.freeze(freeze):
            return None
        self.freezes.append(freeze)
        return freeze

    async def _aimed(self, trigger: str, duration: float) -> Freeze | None:
        done = asyncio.Event()
        frozen: list[Freeze] = []

        def stop(bot: Instance | None) -> bool:
            freeze = self._stop(bot, trigger, True, duration) if bot is not None else None
            if freeze is not None:
                frozen.append(freeze)
                done.set()
            return freeze is not None

        def on_call(call: Call, _: str) -> bool:
            if trigger == "charged, create not sent" and id(call) in self.tg.first_status:
                return stop(self.who.sender(call))
            if trigger == "media refused" and call.method in MEDIA_METHODS \
                    and call.error_code in (429, 502):
                return stop(self.who.sender(call))
            return False

        def on_create(task: Task) -> bool:
            return stop(self.who.at_url(task.callback_url))

        hooks: list[Any]
        hook: Any
        hooks, hook = ((self.kie.create_hooks, on_create) if trigger == "Kie create answered"
                       else (self.tg.hooks, on_call))
        hooks.append(hook)
        try:
            async with asyncio.timeout(FREEZE_AIM_WAIT):
                await done.wait()
        except TimeoutError:
            pass
        finally:
            if hook in hooks:
                hooks.remove(hook)
        return frozen[0] if frozen else None


class Faults(ChaosFaults):
    """The fakes' faults; stopping them also drops the hooks of a freeze still waiting."""

    def __init__(self, tg: ChaosTelegram, kie: ChaosKie, rng: random.Random) -> None:
        super().__init__(tg, kie, rng)
        self.hooked = (tg.hooks, kie.create_hooks)

    def stop(self) -> None:
        super().stop()
        for hooks in self.hooked:
            hooks.clear()


# -- the run -----------------------------------------------------------------------------------------

@dataclass
class PgRun(Run):
    who: Who | None = None
    freezer: Freezer | None = None
    schema: str = ""
    offset: float = field(default_factory=lambda: time.time() - time.monotonic())  # wall - monotonic
    creates_seen: tuple[int, list[CreateSent]] = (-1, [])  # creates(): for so many Kie requests

    @property
    def instances(self) -> list[Instance]:
        return [bot for bot in self.bots if isinstance(bot, Instance)]

    def frozen(self) -> bool:
        return any(bot.frozen for bot in self.instances)

    def sender(self, call: Call) -> BotProcess | None:
        assert self.who is not None
        return self.who.sender(call)

    def life_taking(self, update_id: int, confirmed: float) -> Life | None:
        assert self.who is not None
        fetched = [(t, bot) for t, bot in self.who.fetches().get(update_id, []) if t <= confirmed]
        if not fetched:
            return None
        return max(fetched, key=lambda f: f[0])[1].life_at(confirmed)

    def charging_life(self, g: GenerationRow) -> Life | None:
        """The life that took the ✅ press last before the charge (else the poller then)."""
        assert self.who is not None
        charged = g.created_at - self.offset
        fetches = self.who.fetches()
        presses = [u for w in self.walked if w.generation_id == g.id for u in w.confirms]
        fetched = [(t, bot) for u in presses for t, bot in fetches.get(u, []) if t <= charged]
        bot = max(fetched, key=lambda f: f[0])[1] if fetched else self.who.poller(charged)
        return bot.life_at(charged) if bot is not None else None

    def running(self, life: Life, since_wall: float, until_wall: float) -> float:
        bot = next((b for b in self.instances if b.name == life.instance), None)
        frozen = bot.frozen_within(life, since_wall, until_wall) if bot else 0.0
        return max(0.0, until_wall - since_wall - frozen)

    def timeline(self) -> dict[str, Any]:
        assert self.who is not None
        return super().timeline() | {
            "schema": self.schema,
            "freezes": [vars(f) for f in self.freezer.freezes] if self.freezer else [],
            "creates": [{"generation": c.generation_id, "instance": c.instance, "time": c.at,
                         "status": c.status, "code": c.code} for c in creates(self)],
        }


async def run_chaos_pg(config: PgChaosConfig) -> Report:
    """One chaos run on a new PostgreSQL schema, start to audit."""
    rng = random.Random(config.seed)
    random.seed(config.seed)  # the Kie fake draws callback losses from the module's generator
    server = postgres_url(config.url)
    admin = await asyncpg.connect(server, timeout=10)
    try:
        with tempfile.TemporaryDirectory(prefix="chaos-pg-") as tmp:
            folder = Path(tmp)
            async with schema(admin, server, drop=config.keep is None) as (url, name), \
                    ChaosTelegram(token=TOKEN) as tg, \
                    ChaosKie(api_key=KIE_KEY, rate_limit=RATE_LIMIT, window=WINDOW,
                             more_keys=more_keys(config.keys)) as kie:
                probe = await asyncpg.connect(url, timeout=10)
                try:
                    run = await prepare(config, rng, folder, url=url, name=name, tg=tg, kie=kie,
                                        probe=probe)
                    try:
                        assert run.freezer is not None
                        await chaos(run, rng, [run.freezer.run])
                    finally:
                        await end_all(run)
                finally:
                    await probe.close()
                report = audit_pg(run, await read_postgres(url))
                if config.keep is not None:
                    keep(folder, config.keep)
                    (config.keep / "run.json").write_text(json.dumps(run.timeline(), indent=1))
                    report.notes.append(f"schema {name} kept (DROP SCHEMA {name} CASCADE when done)")
    finally:
        await admin.close()
    return report


async def prepare(config: PgChaosConfig, rng: random.Random, folder: Path, *, url: str, name: str,
                  tg: ChaosTelegram, kie: ChaosKie, probe: asyncpg.Connection) -> PgRun:
    """The fakes primed, the instances started (all present), the cast chosen."""
    plan_tasks(kie, rng, config)
    kie.rate_scope = "creates" if config.rate_scope == "creates" else "all"
    bots: list[Instance] = []
    ports: dict[int, Instance] = {}
    for n in range(config.instances):
        home = folder / NAMES[n]
        home.mkdir()
        port = free_port()
        env = bot_env(home, tg, kie, port, config) | {
            "DATABASE_URL": url, "TELEGRAM_API_URL": tg.base_url(NAMES[n]),
            "KIE_API_KEYS": ",".join(more_keys(config.keys))}
        del env["DATABASE_PATH"]
        bot = Instance(home, env, NAMES[n], lambda pid: present(probe, pid))
        bots.append(bot)
        ports[port] = bot
    for bot in bots:
        await bot.start()
    for bot in bots:
        await bot.started()
    who = Who(bots, tg, ports)
    kie.balance = who.balancer(random.Random(config.seed))

    def paused() -> bool:
        return any(bot.frozen for bot in bots)

    watch = PgWatch(url, bots)
    money = Money(tg, watch, paused)
    persons = crowd(config, tg)
    killer = PgKiller(bots, who, tg=tg, kie=kie, rng=rng, aim=config.aim,
                      provoke_payment=provoker(config, rng, money, persons))
    freezer = Freezer(bots, who, tg=tg, kie=kie, rng=rng, config=config, lock=killer.lock)
    blocked = {p.id for p in rng.sample(persons, config.blocked)}
    return PgRun(config, folder, tg, kie, list(bots), watch, money, Faults(tg, kie, rng), killer,
                 persons, blocked, duplicate_window=DUPLICATE_WINDOW, who=who, freezer=freezer,
                 schema=name)


async def read_postgres(url: str) -> Snapshot:
    db = await asyncpg.connect(url, timeout=10)
    try:
        return Snapshot(
            [dict(r) for r in await db.fetch("SELECT * FROM generations ORDER BY id")],
            [dict(r) for r in await db.fetch("SELECT * FROM ledger ORDER BY id")],
            {r["id"]: dict(r) for r in await db.fetch("SELECT * FROM users")},
            {r["charge_id"]: dict(r) for r in await db.fetch("SELECT * FROM purchases")})
    finally:
        await db.close()


# -- the audit's additions ---------------------------------------------------------------------------

@dataclass
class CreateSent:
    """A create request that reached Kie (answered or not)."""

    generation_id: int
    instance: str  # "?" when its callBackUrl names no instance's port
    at: float  # time.monotonic() on arrival
    at_wall: float
    status: int | None
    code: int | None
    task_id: str | None  # the task it made


def creates(run: PgRun) -> list[CreateSent]:
    """Every create that reached Kie, by generation (its callBackUrl) and sender (its port)."""
    assert run.who is not None
    if run.creates_seen[0] == len(run.kie.requests):
        return run.creates_seen[1]
    tasks = {json.dumps(t.body, sort_keys=True): t.task_id for t in run.kie.tasks.values()}
    found = []
    for req in run.kie.requests:
        if not req.path.endswith(CREATE_PATHS) or not isinstance(req.body, dict):
            continue
        gid = generation_of(req.body.get("callBackUrl"))
        if gid is None:
            continue
        bot = run.who.at_url(req.body.get("callBackUrl"))
        made = tasks.get(json.dumps(req.body, sort_keys=True)) if req.code == 200 else None
        found.append(CreateSent(gid, bot.name if bot else "?", req.time, req.time + run.offset,
                                req.status, req.code, made))
    run.creates_seen = (len(run.kie.requests), found)
    return found


def _check_creates_after_refund(run: PgRun, generations: dict[int, GenerationRow]) -> Check:
    """A refund settles a generation: no create of it may reach Kie afterwards (Kie would work,
    and charge the operator, for a result nobody paid for; only the recovery by callback may
    deliver it, free)."""
    problems = []
    for c in creates(run):
        g = generations.get(c.generation_id)
        if g is None or g.refunded_at is None or c.at_wall <= g.refunded_at:
            continue
        answer = f"task {c.task_id} made" if c.task_id else f"answered {c.status}/{c.code}"
        problems.append(f"generation {g.id} (user {g.user_id}; {g.state}, {g.failure}): create "
                        f"sent by {c.instance} {1000 * (c.at_wall - g.refunded_at):.0f} ms after "
                        f"its refund ({answer})")
    return Check("no create sent to Kie after its generation was refunded", problems)


def _check_interrupted(run: PgRun, generations: dict[int, GenerationRow]) -> Check:
    """DESIGN.md: nothing is refunded while a live instance still owns it. A generation is
    refunded as interrupted (its create may never have reached Kie) only once the life that
    charged it was gone: ended (killed, stopped) before the refund, or frozen then (a frozen
    instance stops being seen; one let go a moment before has not said so yet)."""
    problems = []
    for g in generations.values():
        if g.failure != "interrupted" or g.refunded_at is None:
            continue
        life = run.charging_life(g)
        bot = run.who.named(life.instance) if run.who and life else None
        if life is None or bot is None or (life.ended_wall is not None
                                           and life.ended_wall <= g.refunded_at):
            continue
        if any(f.life == life.number and f.at_wall <= g.refunded_at
               and (f.ended_wall is None or f.ended_wall >= g.refunded_at - THAW_SLACK)
               for f in bot.freezes):
            continue
        problems.append(f"generation {g.id} (user {g.user_id}): refunded as interrupted at "
                        f"+{g.refunded_at - run.offset - run.began:.3f} s while life {life.label}, "
                        "which charged it, ran (neither ended nor frozen)")
    return Check("refunded as interrupted only once the instance that charged it was gone "
                 "(killed, stopped or frozen)", problems)


def audit_pg(run: PgRun, data: Snapshot) -> Report:
    report = audit(run, data)
    generations = generation_rows(data, run)
    report.checks += [_check_creates_after_refund(run, generations),
                      _check_interrupted(run, generations)]
    config = run.config
    assert isinstance(config, PgChaosConfig)
    freezes = run.freezer.freezes if run.freezer else []
    report.setting = (f" on PostgreSQL ({config.instances} instances, {config.keys} Kie keys; "
                      f"{len(freezes)} freezes)")
    report.sections = [("freezes", [
        (f"#{f.number} {f.trigger}" + ("" if f.fired else " (timed out)"),
         f"life {f.instance}{f.life}, {f.seconds:.1f} s" + ("" if f.end == "thawed" else f", {f.end}"))
        for f in freezes]), ("instances", _instances(run)), ("Kie keys", _keys(run))]
    named = []
    for check in report.checks:
        for problem in check.problems:
            for gid in re.findall(r"generation (\d+)", problem):
                if int(gid) in generations and int(gid) not in named:
                    named.append(int(gid))
    rows = {r["id"]: r for r in data.generations}
    for gid in named[:STORIES]:
        report.stories += ["", *story(run, generations[gid], rows[gid], data)]
    if len(named) > STORIES:
        report.stories.append(f"(timelines of {len(named) - STORIES} more generations left out)")
    return report


def _instances(run: PgRun) -> list[tuple[str, object]]:
    polls = Counter(bot.name for c in run.tg.calls if c.method == "getUpdates"
                    and (bot := run.sender(c)) is not None)
    rows: list[tuple[str, object]] = []
    for bot in run.instances:
        ends = Counter(life.end or "running" for life in bot.lives)
        rows.append((bot.name, f"{len(bot.lives)} lives ({', '.join(f'{n} {e}' for e, n in ends.items())}), "
                               f"{len(bot.freezes)} freezes, {polls[bot.name]} getUpdates"))
    return rows


def _keys(run: PgRun) -> list[tuple[str, object]]:
    kie = run.kie
    names = {kie.api_key: "key 1"} | {k: f"key {n + 2}" for n, k in enumerate(kie.more_keys)}
    requests = Counter(r.key for r in kie.requests)
    tasks = Counter(t.key for t in kie.tasks.values())
    return [(names[k], f"{requests[k]} requests, {tasks[k]} tasks made, "
                       f"{kie.rate_limited_by_key[k]} 429 of its rate limit")
            for k in names]


Events = list[tuple[float, str]]  # (time.monotonic(), what happened)


def story(run: PgRun, g: GenerationRow, row: dict[str, Any], data: Snapshot) -> list[str]:
    """One generation's timeline, seconds from the start (time.monotonic() - run.began), with
    the freezes and kills around it."""
    tasks = {t.task_id: t for t in run.kie.tasks.values() if generation_of(t.callback_url) == g.id}
    events = [*_telegram_events(run, g, row), *_kie_events(run, g, tasks),
              *_ledger_events(run, g, row, data)]
    if not events:
        return [f"generation {g.id}: nothing to show"]
    events += _process_events(run, min(t for t, _ in events) - 2.0, max(t for t, _ in events) + 2.0)
    head = (f"timeline of generation {g.id} (user {g.user_id}, {row['model']}, {g.state}"
            + (f": {g.failure}" if g.failure else "") + "), seconds from the start:")
    return [head] + [f"  {t - run.began:+9.3f}  {text}" for t, text in sorted(events, key=lambda e: e[0])]


def _telegram_events(run: PgRun, g: GenerationRow, row: dict[str, Any]) -> Events:
    """Its ✅ presses handed out, its status line first shown, its results sent."""
    assert run.who is not None and isinstance(run.tg, ChaosTelegram)
    events: Events = []
    fetches = run.who.fetches()
    for walked in run.walked:
        if walked.generation_id == g.id:
            for update in walked.confirms:
                events += [(t, f"✅ press (update {update}) handed to {bot.name}")
                           for t, bot in fetches.get(update, [])]
    events += [(call.time, f"status line shown by {_label(run.life_of(call))}")
               for call in run.tg.calls if id(call) in run.tg.first_status
               and call.params.get("chat_id") == row["chat_id"]
               and call.params.get("message_id") in (row.get("status_message_id"), None)]
    events += [(s.call.time, f"result sent by {_label(s.life)} ({s.call.method})") for s in g.sends]
    return events


def _kie_events(run: PgRun, g: GenerationRow, tasks: dict[str, Task]) -> Events:
    """Its creates (by whom, answered how), its tasks' ends, callbacks and status reads."""
    assert run.who is not None
    events: Events = []
    for c in creates(run):
        if c.generation_id == g.id:
            made = f", task {c.task_id}" if c.task_id else ""
            events.append((c.at, f"create from {c.instance} reached Kie: {c.status}/{c.code}{made}"))
    events += [(t.complete_time / 1000 - run.offset, f"Kie: task {t.task_id} ended ({t.plan.outcome})")
               for t in tasks.values() if t.complete_time is not None]
    for record in run.kie.callback_log:
        if record.task_id in tasks:
            target = run.who.at_url(record.url)
            what = "lost" if record.lost else f"→ {target.name if target else '?'}: " + (
                str(record.status) if record.status is not None else record.error or "no answer")
            events.append((record.time, f"callback ({record.stage}) {what}"
                                        + (" (repeat)" if record.duplicate else "")))
    events += [(r.time, f"status read: {r.status}/{r.code}") for r in run.kie.requests
               if r.query.get("taskId") in tasks]
    return events


def _ledger_events(run: PgRun, g: GenerationRow, row: dict[str, Any], data: Snapshot) -> Events:
    events: Events = [(g.created_at - run.offset, f"charged {g.price} (life {_label(run.charging_life(g))})")]
    events += [(r["created_at"] - run.offset, f"{r['kind']} {r['amount']} ({g.failure})")
               for r in data.ledger if r["generation_id"] == g.id and r["kind"] != "charge"]
    if row.get("delivered_at") is not None:
        events.append((row["delivered_at"] - run.offset, "recorded as delivered"))
    return events


def _process_events(run: PgRun, low: float, high: float) -> Events:
    """The freezes and kills between two moments."""
    events: Events = []
    for bot in run.instances:
        for f in bot.freezes:
            if f.at <= high and (f.ended or f.at) >= low:
                events.append((f.at, f"{bot.name}{f.life} frozen (#{f.number} {f.trigger})"))
                if f.ended is not None:
                    events.append((f.ended, f"{bot.name}{f.life} {f.end} after {f.seconds:.1f} s"))
    events += [(k.at, f"{k.instance}{k.life} killed (#{k.number} {k.trigger})")
               for k in run.killer.kills if low <= k.at <= high]
    return events


def _label(life: Life | None) -> str:
    return life.label if life is not None else "?"


# -- the command line -------------------------------------------------------------------------------

def parse(argv: list[str] | None = None) -> PgChaosConfig:
    defaults = PgChaosConfig()
    parser = arguments(defaults, (__doc__ or "").split("\n\n")[0])
    for name in ("instances", "keys", "freezes"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("freeze_min", "freeze_max"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                            default=getattr(defaults, name))
    parser.add_argument("--url", help="the PostgreSQL server (default: TEST_DATABASE_URL, else "
                                      "the local one); a new schema is made there")
    args = vars(parser.parse_args(argv))
    args.pop("engine")
    return PgChaosConfig(**args)


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    if config.kills < 1 or config.people < config.blocked:
        raise SystemExit("--kills must be ≥ 1 and --blocked ≤ --people")
    if not 1 <= config.instances <= len(NAMES) or config.keys < 1:
        raise SystemExit(f"--instances must be 1-{len(NAMES)}, --keys ≥ 1")
    report = asyncio.run(run_chaos_pg(config))
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
