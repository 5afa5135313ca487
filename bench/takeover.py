"""Benchmark: how long a takeover takes when the polling instance is SIGKILLed, two `python -m bot`
processes sharing one PostgreSQL database, in real time with production settings.

    .venv/bin/python -m bench.takeover [--runs 3] [--people 20] [--url postgresql://…] [--timeline]

Each run: a new schema on the server at `--url` (TEST_DATABASE_URL, else the local one), new
fakes, two instances. Once both count each other (a heartbeat later, so each spends its half of
Kie's budget), `people` people ask for an Imagen 4 picture each; their tasks run on the fake Kie
until the kill. When all are `running`, the instance holding the polling lock is SIGKILLed, every
task ends on Kie at that moment, and a new person sends /start. From the kill: the survivor holds
the lock (watched in pg_locks), its first getUpdates reaches the fake Bot API, the /start is
answered, every picture is delivered (none refunded, none twice). The schema is dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.harness import (
    BOT,
    KIE_WINDOW,
    Child,
    all_alive,
    bot_env,
    fakes,
    problems,
    recounted,
    spawn,
    stop_all,
)
from bench.report import Row, median, print_report
from bench.store_latency import where
from bot.catalog import Model, get_model
from bot.kie.client import RATE_LIMIT_PAUSE
from bot.runners.polling import POLLING_LOCK
from bot.services.presence import HEARTBEAT
from bot.services.schedule import FIRST_SHARE, STEP_SHARE
from bot.services.tracker import CHECK_LEASE
from bot.store import GenerationState, Store
from bot.store.postgres import LOCK_RETRY
from testkit.chat import Person
from testkit.databases import DEFAULT_URL, schema
from testkit.databases import server_url as postgres_url
from testkit.e2e import generate
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import Call, FakeTelegram
from testkit.load import IMAGEN

RUNS = 3
PEOPLE = 20
FIRST_USER = 30_000
LATE_USER = 39_999
# Production grants nothing on arrival; one Imagen 4 picture costs 40.
CREDITS = 100
PATIENCE = 60.0  # seconds any one wait may take before the run is called failed
LOOK = 0.005  # seconds between two looks at the fakes or the database
# Telegram methods that carry a result or an answer: not part of the survivor's start of polling.
DELIVERY_METHODS = ("sendPhoto", "sendMediaGroup", "sendMessage", "editMessageText", "sendChatAction",
                    "answerCallbackQuery", "deleteMessage")


@dataclass
class Takeover:
    """One run; times in seconds from the kill."""

    gone: float  # the killed instance's presence connection left pg_stat_activity
    beat: float  # the survivor's next heartbeat (from its last, as stored)
    lock: float  # the survivor holds the polling lock
    poll: float  # the survivor's first getUpdates arrived at the fake Bot API
    answered: float  # the /start sent just after the kill was answered
    delivered: float  # the last of the pictures in flight was sent
    held: int  # generations the killed instance had claimed (a read leased for CHECK_LEASE)
    held_delivered: float  # the last of those was sent (nan: none held)
    free_delivered: float  # the last of the others was sent (nan: none)
    before_poll: Counter[str]  # what the survivor asked Telegram before its first poll
    creates: float  # seconds from the first create of the pictures to the last (before the kill)
    reads: int  # Kie status reads after the kill
    limited_before: int  # Kie 429 answers before the kill
    limited_after: int  # and after it
    first_limited: float  # the first 429 after the kill (nan: none)
    photos: int  # sendPhoto calls, the whole run (each picture once: `people`)
    served: int  # people they went to
    refunds: int
    seconds: float  # the whole run


# -- the database --------------------------------------------------------------------------------


async def poller(db: asyncpg.Connection, name: str) -> str:
    """The instance id holding the polling lock (tests/process/test_e2e_postgres.py `poller_pid`)."""
    holders = await lock_holders(db, name)
    if len(holders) != 1:
        raise RuntimeError(f"expected one instance holding the polling lock, found {holders}")
    return holders[0]


async def lock_holders(db: asyncpg.Connection, name: str) -> list[str]:
    """Ids of this schema's instances whose connection holds an advisory lock: the presence
    connection holds only the polling turn (the migrations' lock ends with its transaction)."""
    rows = await db.fetch(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted"
        f" AND a.application_name IN (SELECT 'kie-bot ' || id FROM {name}.instances)")
    return [str(row[0]).removeprefix("kie-bot ") for row in rows]


def pid_of(instance: str) -> int:
    """The instance id starts with its process id (bot/store/store.py)."""
    return int(instance.split("-", maxsplit=1)[0])


async def watch_lock(db: asyncpg.Connection, name: str, dead: str, killed: float) -> tuple[float, float]:
    """(presence gone, lock taken), seconds after `killed`: the dead instance's connection leaves
    pg_stat_activity (the server frees its lock then), and another instance holds the lock."""
    gone = math.nan
    async with asyncio.timeout(PATIENCE):
        while True:
            now = time.monotonic()
            if math.isnan(gone) and not await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    f"kie-bot {dead}"):
                gone = now - killed
            holders = await lock_holders(db, name)
            if holders and dead not in holders:
                return gone, now - killed
            await asyncio.sleep(LOOK)


# -- the fakes -----------------------------------------------------------------------------------


async def first(tg: FakeTelegram, match: Callable[[Call], bool], since: int, what: str,
                children: Sequence[Child]) -> Call:
    """The first call among tg.calls[since:] that matches (by arrival: a call is recorded when
    answered, stamped with the time it arrived)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        found = [c for c in tg.calls[since:] if match(c)]
        if found:
            return min(found, key=lambda c: c.time)
        for child in children:
            child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} {PATIENCE:g} s after the kill\n{tg.summary()[-3000:]}")
        await asyncio.sleep(LOOK)


async def photos(tg: FakeTelegram, count: int, children: Sequence[Child]) -> list[Call]:
    """The first `count` pictures sent."""
    deadline = time.monotonic() + PATIENCE
    while True:
        sent = [c for c in tg.calls_of("sendPhoto") if c.ok]
        if len(sent) >= count:
            return sorted(sent, key=lambda c: c.time)[:count]
        for child in children:
            child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(sent)} of {count} pictures sent {PATIENCE:g} s after the kill")
        await asyncio.sleep(LOOK)


# -- one run -------------------------------------------------------------------------------------


async def all_running(store: Store, count: int, children: Sequence[Child]) -> None:
    """Every task's id stored: a create still under way when its instance dies is refunded."""
    deadline = time.monotonic() + PATIENCE
    while len(await store.generations_in([GenerationState.RUNNING])) < count:
        for child in children:
            child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the generations did not all start")
        await asyncio.sleep(0.05)


@dataclass
class Pair:
    """Two instances on one schema, with the fakes they talk to."""

    url: str
    name: str  # the schema
    tg: FakeTelegram
    kie: FakeKie
    store: Store
    children: list[Child]


async def start_pair(pair: Pair, folder: Path, phase: float) -> None:
    """Both at once (the migrations take turns; the first to ask for the lock polls), each in a
    folder of its own, until both count each other; then `phase` seconds more."""
    for n in range(2):
        home = folder / f"instance{n}"
        home.mkdir()
        env = bot_env(home, pair.tg, pair.kie, database_url=pair.url, starting_credits=CREDITS)
        pair.children.append(await spawn(BOT, env, home, f"instance{n}"))
    await all_alive(pair.store, pair.tg, pair.children, PATIENCE)
    # Each recounts the others at its heartbeat, and only then spends just its half of Kie's
    # budget: the steady state of two instances, not the first seconds of one.
    await recounted(pair.store, time.time(), pair.children, PATIENCE)
    # The heartbeat starts with the process: without a phase, every run would kill at the same
    # point of it.
    await asyncio.sleep(phase)


async def put_in_flight(pair: Pair, people: int) -> list[Person]:
    """`people` pictures asked for, their tasks all created and running on Kie."""
    crowd = [Person(pair.tg, FIRST_USER + n, f"P{n}") for n in range(people)]
    await asyncio.gather(*(generate(p, f"a lighthouse, number {n}") for n, p in enumerate(crowd)))
    await all_running(pair.store, people, pair.children)
    if pair.tg.calls_of("sendPhoto"):
        raise RuntimeError("a picture was sent before the kill")
    return crowd


@dataclass
class Seen:
    """What one run saw after the kill (monotonic times, the fakes' clock)."""

    killed: float
    since: int  # tg.calls before the kill
    held: set[int]  # chats whose generation the killed instance had claimed
    beat: float  # seconds from the kill
    gone: float  # seconds from the kill
    lock: float  # seconds from the kill
    poll: Call
    answer: Call
    sent: list[Call]


async def kill_poller(pair: Pair, people: int) -> tuple[Seen, Child]:
    """SIGKILL the poller, end every task on Kie, send /start; wait for all of it to be done."""
    # Connected before the kill: the watch starts at once.
    db = await asyncpg.connect(pair.url, timeout=5)
    try:
        return await _kill_poller(pair, people, db)
    finally:
        await db.close()


async def _kill_poller(pair: Pair, people: int, db: asyncpg.Connection) -> tuple[Seen, Child]:
    dead = await poller(db, pair.name)
    victim = next(c for c in pair.children if c.pid == pid_of(dead))
    survivor = next(c for c in pair.children if c is not victim)
    tg, since = pair.tg, len(pair.tg.calls)
    late = Person(tg, LATE_USER, "Late")
    # The survivor's last heartbeat (time.time()); its next comes HEARTBEAT after it.
    last_beat = await db.fetchval(f"SELECT seen_at FROM {pair.name}.instances WHERE id != $1", dead)

    killed, killed_wall = time.monotonic(), time.time()
    victim.process.send_signal(signal.SIGKILL)
    for task_id in list(pair.kie.tasks):
        pair.kie.finish(task_id)
    late.say("/start")
    watcher = asyncio.create_task(watch_lock(db, pair.name, dead, killed))
    try:
        # Claimed by the dead instance (a read leased for CHECK_LEASE): such a row keeps its
        # lease time until a survivor's heartbeat releases it. (Read after the kill: the dead
        # claim no more, and no one else can claim a leased row.)
        held = {int(row[0]) for row in await pair.store._rows(
            "SELECT chat_id FROM generations WHERE owner = ?", (dead,))}
        await victim.process.wait()
        alive = [survivor]
        poll = await first(tg, lambda c: c.method == "getUpdates" and c.time >= killed, since,
                           "getUpdates from the survivor", alive)
        answer = await first(tg, lambda c: c.method == "sendMessage" and c.ok
                             and c.params.get("chat_id") == LATE_USER, since, "answer to /start", alive)
        sent = await photos(tg, people, alive)
        gone, lock = await watcher
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    beat = last_beat + HEARTBEAT - killed_wall
    return Seen(killed, since, held, beat, gone, lock, poll, answer, sent), survivor


async def takeover(admin: asyncpg.Connection, server: str, people: int, folder: Path, *,
                   phase: float = 0.0, timeline: bool = False) -> Takeover:
    began = time.monotonic()
    async with schema(admin, server) as (url, name), fakes(window=KIE_WINDOW) as (tg, kie):
        # Running until the kill (no read moves it): nothing can be delivered before, and every
        # result is ready at the kill, so what follows is the survivor's doing alone.
        kie.default_plan = TaskPlan(reads_before_done=10**9)
        pair = Pair(url, name, tg, kie, await Store.open(url), [])
        try:
            await start_pair(pair, folder, phase)
            crowd = await put_in_flight(pair, people)
            seen, survivor = await kill_poller(pair, people)
            await asyncio.sleep(1.0)  # time enough for a second, wrong delivery to show
            refunds = len(await pair.store._rows("SELECT id FROM ledger WHERE kind = 'refund'"))
        finally:
            await stop_all(pair.children)
            await pair.store.close()
    trouble = problems(survivor.output())
    if trouble:
        print("takeover: the survivor's log says:", *trouble[:10], sep="\n", file=sys.stderr)
    if timeline:
        print_timeline(tg, kie, seen)
    return measured(seen, crowd, tg, kie, refunds=refunds, seconds=time.monotonic() - began)


def measured(seen: Seen, crowd: Sequence[Person], tg: FakeTelegram, kie: FakeKie, *, refunds: int,
             seconds: float) -> Takeover:
    killed = seen.killed

    def last(chats: set[int]) -> float:
        times = [c.time for c in seen.sent if int(c.params["chat_id"]) in chats]
        return max(times) - killed if times else math.nan

    everyone = {p.id for p in crowd}
    held = seen.held & everyone
    creates = [r.time for r in kie.requests if r.path.endswith("/createTask")]
    late_429 = [r.time - killed for r in kie.requests if r.status == 429 and r.time >= killed]
    return Takeover(
        gone=seen.gone, beat=seen.beat, lock=seen.lock, poll=seen.poll.time - killed,
        answered=seen.answer.time - killed, delivered=max(c.time for c in seen.sent) - killed,
        held=len(held), held_delivered=last(held), free_delivered=last(everyone - held),
        before_poll=Counter(c.method for c in tg.calls[seen.since:]
                            if killed <= c.time < seen.poll.time
                            and c.method not in DELIVERY_METHODS),
        creates=max(creates) - min(creates),
        reads=sum(1 for r in kie.requests if r.time >= killed and r.path.endswith("/recordInfo")),
        limited_before=sum(1 for r in kie.requests if r.status == 429 and r.time < killed),
        limited_after=len(late_429), first_limited=min(late_429, default=math.nan),
        photos=len(tg.calls_of("sendPhoto")),
        served=len({int(c.params["chat_id"]) for c in tg.calls_of("sendPhoto")} & everyone),
        refunds=refunds, seconds=seconds)


def print_timeline(tg: FakeTelegram, kie: FakeKie, seen: Seen) -> None:
    """Every Kie request and every picture sent, in seconds from the kill (on stderr)."""
    events = [(r.time, f"Kie {r.path.rsplit('/', 1)[-1]} {r.status}") for r in kie.requests]
    for c in tg.calls:
        if c.method in ("sendPhoto", "setMyCommands", "deleteWebhook", "getMe"):
            claimed = " (claimed by the killed instance)" if c.params.get("chat_id") in seen.held else ""
            events.append((c.time, f"Telegram {c.method} to {c.params.get('chat_id')}{claimed}"))
    events += [(seen.killed + seen.gone, "the killed instance's presence connection gone"),
               (seen.killed + seen.lock, "the survivor holds the polling lock"),
               (seen.poll.time, "the survivor's first getUpdates"),
               (seen.answer.time, "/start answered")]
    for at, what in sorted(events):
        print(f"  {at - seen.killed:+8.3f} s  {what}", file=sys.stderr)


# -- the report ----------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> str:
    """min / median / max in ms, runs where the figure does not apply (nan) left out."""
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return "n/a"
    return (f"{1000 * min(known):.0f} / {1000 * median(known):.0f} / {1000 * max(known):.0f} ms"
            + (f" ({len(known)} of {len(values)} runs)" if len(known) < len(values) else ""))


def each(runs: Sequence[Takeover], figure: Callable[[Takeover], int]) -> str:
    return ", ".join(str(figure(r)) for r in runs)


def rows(runs: list[Takeover], people: int) -> list[Row]:
    def of(figure: Callable[[Takeover], float]) -> str:
        return spread([figure(r) for r in runs])

    return [
        Row("Takeover: kill → survivor holds the polling lock", of(lambda r: r.lock),
            f"LOCK_RETRY {1000 * LOCK_RETRY:.0f} ms; presence gone {of(lambda r: r.gone)}"),
        Row("Takeover: kill → survivor's first getUpdates", of(lambda r: r.poll),
            f"lock → first getUpdates {of(lambda r: r.poll - r.lock)}"),
        Row("Takeover: kill → /start sent after the kill answered", of(lambda r: r.answered)),
        Row(f"Takeover: kill → all {people} pictures in flight delivered", of(lambda r: r.delivered),
            f"Kie window {KIE_WINDOW:g} s"),
        Row("  kill → the survivor's next heartbeat (recount, release)", of(lambda r: r.beat),
            f"HEARTBEAT {HEARTBEAT:g} s"),
        Row("  claimed by the killed instance: last delivered", of(lambda r: r.held_delivered),
            f"claimed at the kill: {each(runs, lambda r: r.held)} of {people}"),
        Row("  not claimed: last delivered", of(lambda r: r.free_delivered)),
        Row(f"Before the kill: first → last create of the {people}", of(lambda r: r.creates),
            f"Kie window {KIE_WINDOW:g} s"),
        Row("Kie status reads after the kill (429s included), per run", each(runs, lambda r: r.reads),
            f"floor {people} (one read each)"),
        Row("Pictures sent per run (each once)", each(runs, lambda r: r.photos),
            f"to {each(runs, lambda r: r.served)} people", f"{people} to {people}",
            all(r.photos == r.served == people for r in runs)),
        Row("Refunds per run", each(runs, lambda r: r.refunds), "", "0", not any(r.refunds for r in runs)),
        Row("Kie 429 answers per run, before the kill", each(runs, lambda r: r.limited_before), "", "0",
            not any(r.limited_before for r in runs)),
        Row("Kie 429 answers per run, after the kill", each(runs, lambda r: r.limited_after),
            f"kill → first 429 {of(lambda r: r.first_limited)}", "0", not any(r.limited_after for r in runs)),
    ]


def imagen() -> Model:
    """The model tests.test_e2e_image's `generate` picks by default."""
    model = get_model(IMAGEN.model)
    if model is None:
        raise LookupError(IMAGEN.model)
    return model


def notes(runs: list[Takeover], people: int, url: str, server: str) -> list[str]:
    model = imagen()
    starting = Counter[str]()
    for r in runs:
        starting.update(r.before_poll)
    return [
        f"{len(runs)} runs, each on a new schema of PostgreSQL {server} at {where(url)}, new fakes and two "
        f"new `python -m bot` processes in real time with production settings (KIE_RATE_LIMIT 20 per "
        f"10 s for both, the catalog's read schedule; only STARTING_CREDITS={CREDITS} added); "
        "min / median / max of the runs.",
        f"{people} people ask for an Imagen 4 picture each, once both instances count each other "
        "(a heartbeat of each after both were up); "
        "their tasks run on the fake Kie until the poller (the holder of the advisory lock in "
        "pg_locks) is SIGKILLed, then all end on Kie at that instant and a new person sends /start. "
        "Times are from the kill to a call's arrival at the fake Bot API (the lock and the presence: "
        f"to the first look at pg_locks / pg_stat_activity, every {1000 * LOOK:g} ms, that shows it).",
        f"Run k of n waits (k - 1) / n × {HEARTBEAT:g} s more before the crowd asks: the kill falls at "
        "another point of the survivor's heartbeat each run (its next beat: its last, as stored in "
        f"`instances`, + {HEARTBEAT:g} s).",
        f"Standing by, an instance asks for the polling lock every {LOCK_RETRY:g} s. Reads the killed "
        f"instance had claimed stay leased (CHECK_LEASE {CHECK_LEASE:g} s) until the survivor's next "
        f"heartbeat (every {HEARTBEAT:g} s) releases them; that heartbeat also gives the survivor the "
        "whole Kie budget, while the killed one's last requests still count in Kie's window.",
        f"{model.name}'s reads (production schedule): the first {model.poll_interval:g} s after its "
        f"create, the next near {FIRST_SHARE:g} × its expected {model.expected_seconds} s, then every "
        f"{max(model.poll_interval, STEP_SHARE * model.expected_seconds):g} s; a 429 holds every read "
        f"back {RATE_LIMIT_PAUSE:g} s and, like any request, takes a slot of the window.",
        "Between the kill and its first getUpdates the survivor called (all runs): "
        + (", ".join(f"{m} ×{n}" for m, n in sorted(starting.items())) or "nothing"),
        "Each run (s): " + ", ".join(f"{r.seconds:.0f}" for r in runs),
    ]


async def run(runs: int = RUNS, people: int = PEOPLE, url: str | None = None,
              timeline: bool = False) -> tuple[list[str], list[Row]]:
    url = postgres_url(url)
    admin = await asyncpg.connect(url, timeout=5)
    results: list[Takeover] = []
    try:
        server = str(await admin.fetchval("SHOW server_version"))
        for n in range(runs):
            print(f"takeover: run {n + 1} of {runs}…", file=sys.stderr)
            with tempfile.TemporaryDirectory() as folder:
                results.append(await takeover(admin, url, people, Path(folder),
                                              phase=HEARTBEAT * n / runs, timeline=timeline))
    finally:
        await admin.close()
    return notes(results, people, url, server), rows(results, people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="takeovers, each on a new schema")
    parser.add_argument("--people", type=int, default=PEOPLE, help="pictures in flight at the kill")
    parser.add_argument("--url", help="PostgreSQL server (default: TEST_DATABASE_URL, else "
                                      f"{DEFAULT_URL}); a new schema is made there and dropped")
    parser.add_argument("--timeline", action="store_true",
                        help="print each run's Kie requests and pictures sent, from the kill, on stderr")
    args = parser.parse_args()
    lines, table = asyncio.run(run(args.runs, args.people, args.url, args.timeline))
    print_report(f"Takeover after SIGKILL ({POLLING_LOCK!r} lock)", lines, table)


if __name__ == "__main__":
    main()
