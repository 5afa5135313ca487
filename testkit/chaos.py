"""Chaos run: many people, every fault at once, the bot SIGKILLed and restarted, and at the end
not one credit out of place.

    .venv/bin/python -m bench.chaos [--generations 200] [--people 50] [--kills 5] [--seed N]
    .venv/bin/python -m bench.chaos --engine postgres [...]     (bench/chaos_pg.py: two instances
                                                                on PostgreSQL, kills and freezes)

The real bot (`python -m bot`, a subprocess, callbacks on: WEB_PORT + KIE_CALLBACK_URL) runs
between the fake Bot API and the fake Kie.ai of testkit/fakes, on 127.0.0.1. People ask for
pictures, videos, Suno songs and speech through the picker as a person does (and ask again
when a kill swallowed their command or press); an admin tops balances up, a few people buy
credits with Stars and the admin refunds some of them; a few people block the bot once their
requests are in. Meanwhile:

- the bot is SIGKILLed (`--kills` times, at least) and restarted after a short pause: at a
  random moment, or aimed at one (`--aim` of the kills) — right after Telegram accepted a
  result, Kie accepted a create, Telegram forgot an update the bot fetched, a callback
  was answered, or a Stars payment was fetched;
- Kie fails `--kie-fail` of the tasks and answers bursts of 429 and 5xx to creates and reads,
  loses and repeats callbacks;
- the Bot API answers bursts of 429 (and of 502) and 403 for the people who blocked the bot.

Task durations are realistic ones (pictures 8-20 s, videos 60-180 s, songs 30-90 s, speech
5-15 s) times `--scale`. Then every fault stops, the bot is restarted once more and settles,
and the SQLite file is audited: balances against the ledger and against what happened, one
charge per generation and one refund per failure, every result delivered (or undeliverable
for a blocked person), nothing left open, and every duplicate delivery explained by a kill.
Exit status 0 when every invariant held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import aiosqlite

from bot.keyboards import Pick
from bot.store.models import UNRECORDED_FAILURES
from testkit.bot import ADMIN_ID, KIE_KEY, TOKEN
from testkit.chat import Person, buttons
from testkit.e2e import free_port
from testkit.fakes.kie import SUNO_MODELS, FakeKie, TaskPlan
from testkit.fakes.telegram import Call, FakeTelegram
from testkit.load import MEDIA_METHODS, MIXED, Ask, crowd_user_id

__all__ = ["ChaosConfig", "Report", "run_chaos"]

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

WINDOW = 0.5  # Kie's 10 s rate window, shrunk (the fake counts in the same window)
RATE_LIMIT = 20
POLL = 0.05  # how often the people and the admin look at their chats
GRACE = 8.0  # after the bot took an update: how long its effect may take before it counts as lost
PATIENCE = 90.0  # the longest anyone waits for one effect, whatever happens
# A charged generation without a Kie task this long, in one life of the bot, is stuck: a
# create retried through 429s (1 + 2 + 4 s, plus the limiter's pauses) takes about 13 s.
STUCK_PENDING = 30.0
# Seconds from the charge to the end of that life with no create sent: not a submission in
# progress (a 429 pauses every Kie call for 2 s, so a storm of them can hold creates a while).
UNSUBMITTED = 15.0
PACKAGE, PACKAGE_CREDITS, PACKAGE_STARS = "100:50", 100, 50
# Realistic durations in seconds, by what the task makes (see kind_of).
DURATIONS = {"image": (8.0, 20.0), "video": (60.0, 180.0), "song": (30.0, 90.0),
             "speech": (5.0, 15.0)}
TRIGGERS = ("media sent", "Kie create answered", "update confirmed", "callback answered")
CREATE_PATHS = ("/jobs/createTask", "/v1/generate")  # Kie's create endpoints (market, Suno)
OPEN_STATES = ("pending", "running", "succeeded")
RECOVERED = "recovered by callback"


@dataclass(frozen=True)
class ChaosConfig:
    generations: int = 200
    people: int = 50
    kills: int = 5
    seed: int = 1
    kie_fail: float = 0.2  # share of Kie tasks that fail
    callback_loss: float = 0.25
    callback_duplicate: float = 0.25
    blocked: int = 4  # people who block the bot once their requests are in
    topups: int = 12
    purchases: int = 4
    purchase_refunds: int = 2
    arrivals: float = 60.0  # seconds over which the requests start
    scale: float = 0.05  # task durations: realistic seconds times this
    aim: float = 0.6  # share of kills aimed at an event rather than at a random moment
    starting_credits: int = 1000
    settle_timeout: float = 180.0
    # KIE_RATE_SCOPE of the bot and what the fake Kie counts: `creates` runs both on Kie's
    # documented budget (only creates count), `all` as before.
    rate_scope: str = "all"
    keep: Path | None = None  # keep the database and the bot's logs here


# -- the bot process ------------------------------------------------------------------------------

@dataclass
class Life:
    """One run of the bot process, from start to its end (times: time.monotonic())."""

    number: int
    started: float
    started_wall: float
    log: Path
    ended: float | None = None
    ended_wall: float | None = None
    end: str = ""  # "killed" or "stopped"
    exit_code: int | None = None
    instance: str = ""  # which bot process, when there are several ("A", "B")

    @property
    def label(self) -> str:
        """How the report names it: "3", or "B3" among several instances."""
        return f"{self.instance}{self.number}"


def bot_env(folder: Path, tg: FakeTelegram, kie: FakeKie, port: int,
            config: ChaosConfig) -> dict[str, str]:
    """`python -m bot` configured as an operator would, through the environment."""
    return {
        "PATH": os.environ.get("PATH", ""), "HOME": str(folder), "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN, "KIE_API_KEY": KIE_KEY, "ADMIN_IDS": str(ADMIN_ID),
        "DATABASE_PATH": str(folder / "bot.sqlite3"), "TELEGRAM_API_URL": tg.url,
        "KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.url, "KIE_RATE_LIMIT": str(RATE_LIMIT),
        "KIE_RATE_WINDOW": str(WINDOW), "KIE_POLL_INTERVAL": "0.5", "KIE_POLL_MAX_INTERVAL": "0.5",
        "STARTING_CREDITS": str(config.starting_credits), "MAX_OPEN_GENERATIONS": "50",
        "MAX_STARTS_PER_MINUTE": "100", "CREDIT_PACKAGES": f"{PACKAGE},500:200",
        "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port),
        "KIE_CALLBACK_URL": f"http://127.0.0.1:{port}/kie/callbacks",
        "KIE_RATE_SCOPE": config.rate_scope,
    }


class BotProcess:
    """The bot as a subprocess: started, SIGKILLed, stopped; each life logs to its own file."""

    def __init__(self, folder: Path, env: dict[str, str], name: str = "") -> None:
        self.folder = folder
        self.env = env
        self.name = name  # among several instances; "" when it is the only one
        self.lives: list[Life] = []
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def send(self, sig: signal.Signals) -> bool:
        """Send `sig` to the current process (SIGSTOP, SIGCONT); False if it is gone."""
        if not self.alive or self._process is None:
            return False
        try:
            self._process.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    async def start(self) -> Life:
        assert not self.alive, "one bot process at a time"
        life = Life(len(self.lives) + 1, time.monotonic(), time.time(),
                    self.folder / f"bot-{len(self.lives) + 1}.log", instance=self.name)
        self._log = life.log.open("wb")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=self.folder, env=self.env,
            stdout=self._log, stderr=asyncio.subprocess.STDOUT)
        self.lives.append(life)
        return life

    async def started(self, within: float = 30.0) -> None:
        """Until the current life logs that it runs (tracker resumed, polling)."""
        life = self.lives[-1]
        deadline = time.monotonic() + within
        while b"bot started" not in life.log.read_bytes():
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start; see {life.log}")
            await asyncio.sleep(0.05)

    async def kill(self) -> Life:
        return await self._end(signal.SIGKILL, "killed")

    async def stop(self) -> Life:
        """SIGTERM: the graceful stop an operator uses."""
        return await self._end(signal.SIGTERM, "stopped")

    def life_at(self, moment: float) -> Life | None:
        """The life a request arriving at `moment` (time.monotonic()) came from: the last one
        started before it (a request still in flight when its process was killed arrives
        after the kill, and before the next life starts)."""
        started = [life for life in self.lives if life.started <= moment]
        return started[-1] if started else None

    async def _end(self, sig: signal.Signals, how: str) -> Life:
        assert self._process is not None and self._log is not None
        life = self.lives[-1]
        life.ended, life.ended_wall, life.end = time.monotonic(), time.time(), how
        self._process.send_signal(sig)
        life.exit_code = await asyncio.wait_for(self._process.wait(), 30)
        self._log.close()
        return life


# -- the people's side ----------------------------------------------------------------------------

class Watch:
    """What the database says, read through a connection of our own every POLL seconds:
    generations by draft, ledger sources, refunded purchases, open generations and how
    long each charged generation has waited for its Kie task within one life.

    The SQLite file here; a subclass reads another engine (`_connect`, `_fetch`, `_close`)
    and says what "one life" is among several processes (`_epoch`)."""

    # What a read may meet while the bot recovers its database after a kill: skipped.
    RECOVERING: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path, bot: BotProcess) -> None:
        self.path = path
        self.bot = bot
        self.by_draft: dict[int, int] = {}
        self.sources: set[str] = set()
        self.refunded: set[str] = set()
        self.open = 0
        self.stuck: dict[int, float] = {}  # generation id -> seconds pending within one life
        self._pending_since: dict[int, tuple[object, float]] = {}  # id -> (epoch, first seen)
        self._last_generation = 0
        self._last_ledger = 0
        self._db: aiosqlite.Connection | None = None

    async def run(self) -> None:
        await self._connect()
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(POLL)
        finally:
            await self._close()

    async def _connect(self) -> None:
        self._db = await aiosqlite.connect(self.path)

    async def _close(self) -> None:
        if self._db is not None:
            await self._db.close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> Iterable[Sequence[Any]]:
        """The rows of one query (`?` placeholders)."""
        assert self._db is not None
        return await self._db.execute_fetchall(sql, params)

    def _epoch(self) -> object:
        """What must stay the same for a pending generation's clock to run on: the life of
        the bot (falsy: no bot running, no clock)."""
        return self.bot.lives[-1].number if self.bot.alive else 0

    async def refresh(self) -> None:
        with contextlib.suppress(*self.RECOVERING):  # being recovered after a kill
            await self._read()

    async def _read(self) -> None:
        for gid, draft in await self._fetch(
                "SELECT id, draft_id FROM generations WHERE id > ?", (self._last_generation,)):
            self.by_draft[draft] = gid
            self._last_generation = max(self._last_generation, gid)
        for row_id, source in await self._fetch(
                "SELECT id, source FROM ledger WHERE id > ?", (self._last_ledger,)):
            if source:
                self.sources.add(source)
            self._last_ledger = max(self._last_ledger, row_id)
        self.refunded = {charge for (charge,) in await self._fetch(
            "SELECT charge_id FROM purchases WHERE refunded_at IS NOT NULL")}
        states: dict[str, int] = {state: count for state, count in await self._fetch(
            "SELECT state, count(*) FROM generations GROUP BY state")}
        self.open = sum(states.get(s, 0) for s in OPEN_STATES)
        pending = [gid for (gid,) in await self._fetch(
            "SELECT id FROM generations WHERE state = 'pending'")]
        self._track_pending(pending)

    def _track_pending(self, pending: list[int]) -> None:
        now = time.monotonic()
        life = self._epoch()
        for gid in pending:
            seen_life, since = self._pending_since.setdefault(gid, (life, now))
            if seen_life != life or not life:  # a new life (or none): its clock starts again
                self._pending_since[gid] = (life, now)
            elif now - since >= STUCK_PENDING:
                self.stuck[gid] = now - since
        for gid in set(self._pending_since) - set(pending):
            del self._pending_since[gid]


class Chats:
    """Waiting for what an update should cause, and telling a lost update from a slow one: an
    update Telegram still holds may yet be handled; one the bot took (Telegram forgot it) has
    GRACE seconds to show its effect, else a kill swallowed it. While `paused()` (a process
    that may hold it is frozen) those seconds do not run."""

    def __init__(self, tg: FakeTelegram, paused: Callable[[], bool] | None = None) -> None:
        self.tg = tg
        self.paused = paused or (lambda: False)

    def queued(self, update_id: int) -> bool:
        return any(u["update_id"] == update_id for u in self.tg.updates)

    async def effect(self, update_id: int, check: Callable[[], T | None]) -> T | None:
        taken_at: float | None = None
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            found = check()
            if found is not None:
                return found
            now = time.monotonic()
            if (taken_at is None or self.paused()) and not self.queued(update_id):
                taken_at = now
            if taken_at is not None and now - taken_at > GRACE:
                return None
            await asyncio.sleep(POLL)
        return None

    def answer_to(self, person: Person, request: dict[str, Any], since: int) -> dict[str, Any] | None:
        """The bot's message replying to `request` (a picker), as it is now."""
        for call in self.tg.calls[since:]:
            if (call.ok and call.method == "sendMessage" and call.params.get("chat_id") == person.id
                    and (call.params.get("reply_parameters") or {}).get("message_id")
                    == request["message_id"]):
                return self.tg.message(person.id, call.response["message_id"])
        return None


def button_data(message: dict[str, Any] | None, starts_with: str) -> str | None:
    if message is None:
        return None
    found = [b["callback_data"] for b in buttons(message) if b["text"].startswith(starts_with)]
    return found[0] if found else None


@dataclass
class Walked:
    """One generation a person asked for, and what it took."""

    user_id: int
    ask: Ask
    commands: int = 0  # commands sent (more than one: a kill or a fault swallowed one)
    presses: int = 0
    confirms: list[int] = field(default_factory=list)  # update ids of the ✅ presses
    generation_id: int | None = None


class Walker:
    """A person walking the picker: command, model, ✅ — and again when something was lost."""

    WALKS = 6  # commands per generation before giving up
    PRESSES = 4  # presses of one button before starting over

    def __init__(self, tg: FakeTelegram, watch: Watch,
                 paused: Callable[[], bool] | None = None) -> None:
        self.tg = tg
        self.watch = watch
        self.chats = Chats(tg, paused)

    async def walk(self, person: Person, ask: Ask, label: str) -> Walked:
        walked = Walked(person.id, ask)
        for attempt in range(1, self.WALKS + 1):
            walked.commands += 1
            generation_id = await self._once(person, ask, f"chaos {label} try {attempt}", walked)
            if generation_id is not None:
                walked.generation_id = generation_id
                break
        return walked

    async def _once(self, person: Person, ask: Ask, prompt: str, walked: Walked) -> int | None:
        since, update_id = len(self.tg.calls), self.tg.next_update_id
        request = person.say(f"{ask.command} {prompt}")
        picker = await self.chats.effect(update_id,
                                         lambda: self.chats.answer_to(person, request, since))
        if picker is None:
            return None
        confirm = await self._choose(person, picker, ask, walked)
        return None if confirm is None else await self._confirm(person, picker, walked)

    def _current(self, picker: dict[str, Any]) -> dict[str, Any] | None:
        return self.tg.message(picker["chat"]["id"], picker["message_id"])

    async def _choose(self, person: Person, picker: dict[str, Any], ask: Ask,
                      walked: Walked) -> str | None:
        """Press the model until the picker shows its ✅; the ✅ button's data."""
        for _ in range(self.PRESSES):
            current = self._current(picker)
            if (confirm := button_data(current, "✅")) is not None:
                return confirm
            model = button_data(current, ask.button)
            if current is None or model is None:
                return None
            walked.presses += 1
            update_id = self.tg.next_update_id
            self.tg.press(person.user, current, model)
            await self.chats.effect(update_id, lambda: button_data(self._current(picker), "✅"))
        return button_data(self._current(picker), "✅")

    async def _confirm(self, person: Person, picker: dict[str, Any], walked: Walked) -> int | None:
        """Press ✅ until the generation is in the database (a second press charges nothing)."""
        for _ in range(self.PRESSES):
            current = self._current(picker)
            confirm = button_data(current, "✅")
            if current is None or confirm is None:
                return None
            draft = Pick.unpack(confirm).draft
            if (found := self.watch.by_draft.get(draft)) is not None:
                return found
            walked.presses += 1
            update_id = self.tg.next_update_id
            walked.confirms.append(update_id)
            self.tg.press(person.user, current, confirm)
            found = await self.chats.effect(update_id, partial(self.watch.by_draft.get, draft))
            if found is not None:
                return found
        return None


@dataclass
class Topup:
    user_id: int
    amount: int
    source: str | None = None  # the ledger source of the command that was applied
    commands: int = 0


@dataclass
class Purchase:
    user_id: int
    charge_id: str
    update_id: int  # the update carrying `successful_payment`
    credited: bool = False
    refund_asked: bool = False
    refund_commands: int = 0


class Money:
    """The admin's top-ups and refunds, and people's Stars purchases, each checked in the
    database the way an admin checks /user: a command that a kill swallowed is sent again."""

    def __init__(self, tg: FakeTelegram, watch: Watch,
                 paused: Callable[[], bool] | None = None) -> None:
        self.tg = tg
        self.watch = watch
        self.chats = Chats(tg, paused)
        self.admin = Person(tg, ADMIN_ID, "Admin")
        self.topups: list[Topup] = []
        self.purchases: list[Purchase] = []

    async def topup(self, user_id: int, amount: int) -> Topup:
        topup = Topup(user_id, amount)
        self.topups.append(topup)
        for _ in range(Walker.WALKS):
            topup.commands += 1
            update_id = self.tg.next_update_id
            message = self.admin.say(f"/topup {user_id} {amount}")
            source = f"topup:{ADMIN_ID}:{message['message_id']}"
            if await self.chats.effect(update_id, partial(self._applied, source)):
                topup.source = source
                break
        return topup

    def _applied(self, source: str) -> bool | None:
        return True if source in self.watch.sources else None

    def pay(self, person: Person) -> Purchase:
        """The person pays a Stars invoice: Telegram sends the bot `successful_payment`, once."""
        update_id = self.tg.next_update_id
        charge_id, _ = self.tg.pay(person.user, currency="XTR", total_amount=PACKAGE_STARS,
                                   invoice_payload=PACKAGE)
        purchase = Purchase(person.id, charge_id, update_id)
        self.purchases.append(purchase)
        return purchase

    async def credited(self, purchase: Purchase) -> None:
        """Wait for the credits; a payment the bot took and lost is never sent again."""
        purchase.credited = await self.chats.effect(
            purchase.update_id, partial(self._applied, f"purchase:{purchase.charge_id}")) is not None

    async def refund(self, purchase: Purchase) -> None:
        purchase.refund_asked = True
        for _ in range(Walker.WALKS):
            purchase.refund_commands += 1
            update_id = self.tg.next_update_id
            self.admin.say(f"/refund {purchase.charge_id} force")
            if await self.chats.effect(update_id, lambda: True if purchase.charge_id
                                       in self.watch.refunded else None):
                return


# -- faults ---------------------------------------------------------------------------------------

TG_METHODS = ("sendPhoto", "sendVideo", "sendAudio", "sendMediaGroup", "sendMessage",
              "editMessageText", "answerCallbackQuery")


class Faults:
    """Injects one burst at a time, at random intervals, until stopped; `injected` counts the
    failing answers asked for, by type. The fakes queue a burst as a count of answers for the
    next calls of an endpoint, so a new burst waits until that endpoint's last one is spent
    (else bursts would pile up on an endpoint called rarely and become an outage)."""

    def __init__(self, tg: FakeTelegram, kie: FakeKie, rng: random.Random) -> None:
        self.tg = tg
        self.kie = kie
        self.rng = rng
        self.injected: Counter[str] = Counter()
        self._stopped = asyncio.Event()
        self._kinds: list[tuple[Callable[[], None], int]] = [
            (self._kie_create_429, 2), (self._kie_create_5xx, 1), (self._kie_read_429, 3),
            (self._kie_read_5xx, 2), (self._telegram_429, 4), (self._telegram_502, 1)]

    async def run(self) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.rng.uniform(0.3, 1.5))
            if not self._stopped.is_set():
                inject = self.rng.choices([k for k, _ in self._kinds],
                                          [w for _, w in self._kinds])[0]
                inject()

    def stop(self) -> None:
        """No new burst, and what is left of the queued ones is dropped."""
        self._stopped.set()
        # The fakes have no public reset for queued failures: their queues are emptied here.
        self.kie._create_failures.clear()
        self.kie._read_failures.clear()
        self.tg._fail_rules.clear()
        self.kie.callback_loss = self.kie.callback_duplicate = 0.0

    def _telegram_busy(self, method: str) -> bool:
        return any(rule.method == method.lower() and rule.times > 0 for rule in self.tg._fail_rules)

    def _kie_create_429(self) -> None:
        if not self.kie._create_failures:
            times = self.rng.randint(1, 3)
            self.kie.fail_create_next(429, times=times, http_status=429)
            self.injected["Kie create 429"] += times

    def _kie_create_5xx(self) -> None:
        if self.kie._create_failures:
            return
        if self.rng.random() < 0.5:
            self.kie.fail_create_next(500)
        else:  # a proxy's page in front of Kie
            self.kie.fail_create_next(502, http_status=502, raw_body="<html>502 Bad Gateway</html>")
        self.injected["Kie create 5xx"] += 1

    def _kie_read_429(self) -> None:
        if not self.kie._read_failures:
            times = self.rng.randint(1, 5)
            self.kie.fail_reads_next(429, times=times)
            self.injected["Kie read 429"] += times

    def _kie_read_5xx(self) -> None:
        if not self.kie._read_failures:
            times = self.rng.randint(1, 4)
            code = self.rng.choice((500, 455))
            self.kie.fail_reads_next(code, times=times, http_status=self.rng.choice((200, 500)))
            self.injected["Kie read 5xx"] += times

    def _telegram_429(self) -> None:
        method = self.rng.choice(TG_METHODS)
        if not self._telegram_busy(method):
            times = self.rng.randint(1, 6)
            self.tg.fail_next(method, error_code=429, retry_after=1, times=times)
            self.injected["Telegram 429"] += times

    def _telegram_502(self) -> None:
        method = self.rng.choice(TG_METHODS)
        if not self._telegram_busy(method):
            times = self.rng.randint(1, 3)
            self.tg.fail_next(method, error_code=502, times=times)
            self.injected["Telegram 502"] += times


def kind_of(kie: FakeKie, model: str) -> str:
    """image, video, song or speech: what a Kie model makes (for its duration)."""
    if model in SUNO_MODELS:
        return "song"
    rule = kie.rules.get(model)
    kind = rule.kind if rule else "image"
    return "speech" if kind == "audio" else kind


def plan_tasks(kie: FakeKie, rng: random.Random, config: ChaosConfig) -> None:
    """Every task ends by the clock, after its kind's scaled duration; `kie_fail` of them fail."""
    def plan(body: dict[str, Any]) -> TaskPlan:
        low, high = DURATIONS[kind_of(kie, str(body.get("model")))]
        finish_after = rng.uniform(low, high) * config.scale
        if rng.random() < config.kie_fail:
            return TaskPlan(outcome="fail", finish_after=finish_after, fail_msg="chaos: failed")
        return TaskPlan(finish_after=finish_after)
    kie.plan = plan
    kie.auto_callbacks = True
    kie.callback_loss = config.callback_loss
    kie.callback_duplicate = config.callback_duplicate
    kie.latency = (0.001, 0.01)


# -- kills ----------------------------------------------------------------------------------------

@dataclass
class Kill:
    number: int
    trigger: str  # "random moment", or the event it was aimed at
    fired: bool  # the event happened (else the kill came when the wait for it ran out)
    at: float  # time.monotonic()
    life: int
    downtime: float
    instance: str = ""  # the process killed, among several


class Killer:
    """SIGKILLs the bot at the given moments, each at random or aimed at an event, and starts
    it again after a short pause."""

    AIM_WAIT = 6.0  # how long an aimed kill waits for its event

    def __init__(self, bot: BotProcess, *, tg: FakeTelegram, kie: FakeKie, rng: random.Random,
                 aim: float, provoke_payment: Callable[[], int] | None) -> None:
        """`provoke_payment`: makes a Stars payment now, returns its update id."""
        self.bot = bot
        self.tg = tg
        self.kie = kie
        self.rng = rng
        self.aim = aim
        self.provoke_payment = provoke_payment
        self.kills: list[Kill] = []
        self.lock = asyncio.Lock()  # one of kill-and-restart at a time

    async def run(self, moments: list[float], start: float) -> None:
        triggers = self._triggers(len(moments))
        for moment, trigger in zip(moments, triggers, strict=True):
            await asyncio.sleep(max(0.0, start + moment - time.monotonic()))
            await self.kill(trigger)

    def _triggers(self, count: int) -> list[str]:
        chosen = [self.rng.choice(TRIGGERS) if self.rng.random() < self.aim else "random moment"
                  for _ in range(count)]
        if self.provoke_payment is not None and count >= 2:
            chosen[1] = "payment fetched"  # a payment the bot took but had not credited
        return chosen

    def victim(self, trigger: str, found: object | None) -> BotProcess:
        """The process to kill, given the event the kill was aimed at (`found`: what showed
        it; None for a random moment or an event that did not come): the only one here."""
        return self.bot

    async def kill(self, trigger: str) -> Kill:
        async with self.lock:
            found = None if trigger == "random moment" else await self._wait_for(trigger)
            fired = trigger == "random moment" or found is not None
            bot = self.victim(trigger, found)
            life = bot.lives[-1].number
            await bot.kill()
            downtime = self.rng.uniform(0.2, 2.0)
            kill = Kill(len(self.kills) + 1, trigger, fired, time.monotonic(), life, downtime,
                        bot.name)
            self.kills.append(kill)
            await asyncio.sleep(downtime)
            await bot.start()
            return kill

    async def _wait_for(self, trigger: str) -> object | None:
        """What showed the event (a Telegram call, a Kie request, a callback, True), or None
        when it did not come within AIM_WAIT."""
        happened = self._event(trigger)
        deadline = time.monotonic() + self.AIM_WAIT
        while time.monotonic() < deadline:
            if (found := happened()) is not None:
                return found
            await asyncio.sleep(0.001)
        return None

    def _event(self, trigger: str) -> Callable[[], object | None]:
        calls, requests, callbacks = len(self.tg.calls), len(self.kie.requests), len(self.kie.callback_log)
        if trigger == "media sent":
            return lambda: next((c for c in self.tg.calls[calls:]
                                 if c.ok and c.method in MEDIA_METHODS), None)
        if trigger == "Kie create answered":
            return lambda: next((r for r in self.kie.requests[requests:]
                                 if r.status == 200 and r.code == 200
                                 and r.path.endswith(CREATE_PATHS)), None)
        if trigger == "callback answered":
            return lambda: next((r for r in self.kie.callback_log[callbacks:]
                                 if r.status is not None), None)
        if trigger == "payment fetched":
            assert self.provoke_payment is not None
            return self._forgotten({self.provoke_payment()})
        return self._forgotten(set())

    def _forgotten(self, updates: set[int]) -> Callable[[], object | None]:
        """Telegram forgets an update once the bot's next getUpdates confirms it (an offset past
        it): from then on nothing sends it again, whether or not the bot finished with it.
        `updates`: these (else any update queued from now on)."""
        watched = set(updates)

        def check() -> object | None:
            queued = {u["update_id"] for u in self.tg.updates}
            if not updates:
                gone = watched - queued
                watched.update(queued)
                return True if gone else None
            return None if watched & queued else True
        return check


# -- the run --------------------------------------------------------------------------------------

@dataclass
class Run:
    """Everything the audit needs from the run itself (the rest is in the database).

    `bots`: the bot processes (here one; several on PostgreSQL, bench.chaos_pg). The methods
    say which process did what; a subclass answers them among several."""

    config: ChaosConfig
    folder: Path
    tg: FakeTelegram
    kie: FakeKie
    bots: list[BotProcess]
    watch: Watch
    money: Money
    faults: Faults
    killer: Killer
    persons: list[Person]
    blocked: set[int]  # people who block the bot once their requests are in
    walked: list[Walked] = field(default_factory=list)
    confirmed: dict[int, float] = field(default_factory=dict)  # update id -> when Telegram forgot it
    first_walk: asyncio.Event = field(default_factory=asyncio.Event)  # someone is registered
    began: float = 0.0  # time.monotonic() when the people started
    seconds: float = 0.0
    settled_in: float | None = None
    final_exit: int | None = None
    # A result sent again across a kill counts as explained only when the kill came within
    # this many seconds of Telegram accepting the first send (None: any time before).
    duplicate_window: float | None = None

    @property
    def bot(self) -> BotProcess:
        """The bot process (the first, when there are several)."""
        return self.bots[0]

    @property
    def lives(self) -> list[Life]:
        return [life for bot in self.bots for life in bot.lives]

    def registered(self) -> list[Person]:
        """People the bot knows (an admin's /topup names only those)."""
        known = {w.user_id for w in self.walked if w.generation_id is not None}
        return [p for p in self.persons if p.id in known]

    def sender(self, call: Call) -> BotProcess | None:
        """The process that made a Bot API call: the only one."""
        return self.bot

    def life_of(self, call: Call) -> Life | None:
        """The life that made a Bot API call."""
        bot = self.sender(call)
        return bot.life_at(call.time) if bot is not None else None

    def life_taking(self, update_id: int, confirmed: float) -> Life | None:
        """The life that had taken an update when Telegram forgot it (at `confirmed`)."""
        return self.bot.life_at(confirmed)

    def charging_life(self, g: GenerationRow) -> Life | None:
        """The life that charged a generation."""
        return next((life for life in self.bot.lives if life.started_wall <= g.created_at
                     and (life.ended_wall is None or g.created_at <= life.ended_wall)), None)

    def running(self, life: Life, since_wall: float, until_wall: float) -> float:
        """Seconds `life` was running between two moments (time.time())."""
        return max(0.0, until_wall - since_wall)

    def kill_ending(self, life: Life) -> Kill | None:
        return next((k for k in self.killer.kills
                     if k.life == life.number and k.instance == life.instance), None)

    def timeline(self) -> dict[str, Any]:
        """For a post-mortem beside the kept logs: lives, kills, and each result Telegram took
        (monotonic times, seconds; `time.time()` = monotonic + the offset given)."""
        return {
            "wall_minus_monotonic": time.time() - time.monotonic(),
            "lives": [vars(life) | {"log": life.log.name} for life in self.lives],
            "kills": [vars(kill) for kill in self.killer.kills],
            "sends": [{"task": s.task_id, "method": s.call.method, "time": s.call.time,
                       "life": s.life.number if s.life else None,
                       "instance": s.life.instance if s.life else None,
                       "chat": s.call.params.get("chat_id")} for s in sends(self)],
            "purchases": [vars(p) for p in self.money.purchases],
            "topups": [vars(t) for t in self.money.topups],
        }


def spread(rng: random.Random, count: int, low: float, high: float) -> list[float]:
    return sorted(rng.uniform(low, high) for _ in range(count))


async def at(start: float, moment: float) -> None:
    await asyncio.sleep(max(0.0, start + moment - time.monotonic()))


async def people(run: Run, rng: random.Random, start: float) -> None:
    """Each person asks for their share of the generations, at random moments."""
    config, walker = run.config, Walker(run.tg, run.watch, run.money.chats.paused)

    async def person(n: int, who: Person) -> None:
        share = config.generations // config.people + (n < config.generations % config.people)
        for k, moment in enumerate(spread(rng, share, 0.0, config.arrivals)):
            await at(start, moment)
            walked = await walker.walk(who, rng.choice(MIXED), f"u{n} g{k}")
            run.walked.append(walked)
            if walked.generation_id is not None:
                run.first_walk.set()
        if who.id in run.blocked:
            await asyncio.sleep(rng.uniform(0.0, 3.0))
            run.tg.block(who.id)

    await asyncio.gather(*(person(n, who) for n, who in enumerate(run.persons)))


async def admin(run: Run, rng: random.Random, start: float) -> None:
    """Top-ups, Stars purchases and refunds of some of them, at random moments."""
    config, money = run.config, run.money

    async def topup(moment: float) -> None:
        await at(start, moment)
        await run.first_walk.wait()
        await money.topup(rng.choice(run.registered()).id, rng.randint(10, 500))

    async def purchase(moment: float, refund: bool) -> None:
        await at(start, moment)
        bought = money.pay(rng.choice(run.persons))
        await money.credited(bought)
        if refund and bought.credited:
            await asyncio.sleep(rng.uniform(1.0, 10.0))
            await money.refund(bought)

    refunds = set(rng.sample(range(config.purchases), min(config.purchase_refunds, config.purchases)))
    await asyncio.gather(
        *(topup(m) for m in spread(rng, config.topups, 0.0, config.arrivals)),
        *(purchase(m, n in refunds)
          for n, m in enumerate(spread(rng, config.purchases, 0.0, config.arrivals))))


async def settle(run: Run) -> None:
    """Every fault stopped: a graceful restart, then until nothing is open and Telegram holds
    no update; then a quiet spell, in which a late second delivery would show."""
    run.faults.stop()
    for purchase in run.money.purchases:  # made by an aimed kill: not waited for yet
        if not purchase.credited:
            await run.money.credited(purchase)
    async with run.killer.lock:
        for bot in run.bots:
            await bot.stop()
        for bot in run.bots:
            await bot.start()
        for bot in run.bots:
            await bot.started()
    began = time.monotonic()
    while time.monotonic() - began < run.config.settle_timeout:
        if run.watch.open == 0 and not run.tg.updates:
            run.settled_in = time.monotonic() - began
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(3.0)
    await run.watch.refresh()
    exits = [(await bot.stop()).exit_code for bot in run.bots]
    run.final_exit = next((code for code in exits if code != 0), 0)


async def end_all(run: Run) -> None:
    """Whatever went wrong: no bot process outlives the run (a frozen one dies of SIGKILL too)."""
    for bot in run.bots:
        if bot.alive:
            await bot.kill()


async def run_chaos(config: ChaosConfig) -> Report:
    """One chaos run, start to audit."""
    rng = random.Random(config.seed)
    random.seed(config.seed)  # the Kie fake draws callback losses from the module's generator
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        folder = Path(tmp)
        async with FakeTelegram(token=TOKEN) as tg, \
                FakeKie(api_key=KIE_KEY, rate_limit=RATE_LIMIT, window=WINDOW) as kie:
            run = await prepare(config, rng, folder, tg, kie)
            try:
                await chaos(run, rng)
            finally:
                await end_all(run)
            report = audit(run, read_sqlite(folder / "bot.sqlite3"))
            if config.rate_scope != "all":
                report.setting = f" with KIE_RATE_SCOPE={config.rate_scope}"
            if config.keep is not None:
                keep(folder, config.keep)
                (config.keep / "run.json").write_text(json.dumps(run.timeline(), indent=1))
    return report


async def prepare(config: ChaosConfig, rng: random.Random, folder: Path, tg: FakeTelegram,
                  kie: FakeKie) -> Run:
    """The fakes primed, the bot started, the cast chosen."""
    plan_tasks(kie, rng, config)
    kie.rate_scope = "creates" if config.rate_scope == "creates" else "all"
    bot = BotProcess(folder, bot_env(folder, tg, kie, free_port(), config))
    await bot.start()
    await bot.started()
    watch = Watch(folder / "bot.sqlite3", bot)
    money = Money(tg, watch)
    persons = crowd(config, tg)
    killer = Killer(bot, tg=tg, kie=kie, rng=rng, aim=config.aim,
                    provoke_payment=provoker(config, rng, money, persons))
    blocked = {p.id for p in rng.sample(persons, config.blocked)}
    return Run(config, folder, tg, kie, [bot], watch, money, Faults(tg, kie, rng), killer,
               persons, blocked)


def crowd(config: ChaosConfig, tg: FakeTelegram) -> list[Person]:
    return [Person(tg, crowd_user_id(n), f"User{n}") for n in range(config.people)]


def provoker(config: ChaosConfig, rng: random.Random, money: Money,
             persons: list[Person]) -> Callable[[], int] | None:
    """What an aimed kill uses to make a Stars payment now (its update id), when it may."""
    def provoke_payment() -> int:
        return money.pay(rng.choice(persons)).update_id

    return provoke_payment if config.purchases and config.kills >= 2 else None


Disruption = Callable[[float], Coroutine[Any, Any, None]]


async def chaos(run: Run, rng: random.Random, disruptions: Sequence[Disruption] = ()) -> None:
    """People, the admin, faults and kills at once (and `disruptions`, each given the start,
    time.monotonic(): they end by themselves); then everything stops and the bot settles."""
    start = run.began = time.monotonic()
    moments = spread(rng, run.config.kills, 2.0, run.config.arrivals + 5.0)
    background = [asyncio.create_task(run.watch.run()), asyncio.create_task(run.faults.run()),
                  asyncio.create_task(confirmations(run.tg, run.confirmed))]
    kills = asyncio.create_task(run.killer.run(moments, start))
    others = [asyncio.create_task(disrupt(start)) for disrupt in disruptions]
    try:
        await asyncio.gather(people(run, rng, start), admin(run, rng, start))
        await kills
        await asyncio.gather(*others)
        await settle(run)
    finally:
        for task in [*background, kills, *others]:
            task.cancel()
        await asyncio.gather(*background, kills, *others, return_exceptions=True)
    run.seconds = time.monotonic() - start


async def confirmations(tg: FakeTelegram, confirmed: dict[int, float]) -> None:
    """When each update left Telegram's queue (the bot's getUpdates confirmed it), to 2 ms."""
    queued: set[int] = set()
    while True:
        now = {u["update_id"] for u in tg.updates}
        moment = time.monotonic()
        for update_id in queued - now:
            confirmed[update_id] = moment
        queued = now
        await asyncio.sleep(0.002)


def keep(folder: Path, target: Path) -> None:
    """The logs and the database files, those of the processes' own folders too (named
    `<folder>-<name>`)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix == ".log" or "sqlite3" in path.name):
            name = "-".join(path.relative_to(folder).parts)
            (target / name).write_bytes(path.read_bytes())


# -- the audit ------------------------------------------------------------------------------------

@dataclass
class Send:
    """A successful Bot API call that carried a result into a chat."""

    call: Call
    task_id: str
    life: Life | None  # the life of the process that sent it


@dataclass
class GenerationRow:
    id: int
    user_id: int
    state: str
    price: int
    task_id: str | None
    failure: str | None
    detail: str | None
    created_at: float
    finished_at: float | None
    charges: list[int] = field(default_factory=list)
    refunds: list[int] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    refunded_at: float | None = None  # its refund row's time (time.time())

    @property
    def recovered(self) -> bool:
        return self.detail == RECOVERED


@dataclass
class Duplicate:
    generation_id: int
    sends: int
    explained: bool
    kill: int | None  # the kill between the first send and the second
    window_ms: float | None  # Telegram accepted the first send → that kill
    detail: str = ""  # when unexplained: who sent it when


@dataclass
class Check:
    name: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    config: ChaosConfig
    seconds: float
    settled_in: float | None
    lives: list[Life]
    kills: list[Kill]
    faults: dict[str, str]
    outcomes: dict[str, int]
    latency: dict[str, str]
    money: dict[str, int]
    duplicates: list[Duplicate]
    checks: list[Check]
    notes: list[str]
    sections: list[tuple[str, list[tuple[str, object]]]] = field(default_factory=list)  # after kills
    setting: str = ""  # how the bot ran, when not as one process on SQLite
    stories: list[str] = field(default_factory=list)  # lines after the invariants' problems

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def table(self) -> str:
        return render(self)


@dataclass
class Snapshot:
    """The database at the end of the run: the rows the audit reads, as dicts by column."""

    generations: list[dict[str, Any]]  # by id
    ledger: list[dict[str, Any]]  # by id
    users: dict[int, dict[str, Any]]
    purchases: dict[str, dict[str, Any]]  # by charge id


def read_sqlite(path: Path) -> Snapshot:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return Snapshot(
            [dict(r) for r in db.execute("SELECT * FROM generations ORDER BY id")],
            [dict(r) for r in db.execute("SELECT * FROM ledger ORDER BY id")],
            {r["id"]: dict(r) for r in db.execute("SELECT * FROM users")},
            {r["charge_id"]: dict(r) for r in db.execute("SELECT * FROM purchases")})
    finally:
        db.close()


def audit(run: Run, data: Snapshot) -> Report:
    generations = generation_rows(data, run)
    ledger, users, purchases = data.ledger, data.users, data.purchases
    checks = [
        _check_ledger_sums(users, ledger),
        _check_balances(run, users, generations, purchases),
        _check_generations(run, generations),
        _check_orphan_rows(ledger, generations),
        _check_money_from_outside(run, ledger, purchases),
        _check_duplicates(run, generations),
        _check_kie(run, generations),
        _check_walks(run),
        _check_pending(run, generations),
        _check_process(run),
    ]
    return Report(
        config=run.config, seconds=run.seconds, settled_in=run.settled_in, lives=run.lives,
        kills=run.killer.kills, faults=_faults(run), outcomes=_outcomes(generations, run),
        latency=_latency(run, generations),
        money=_money(ledger), duplicates=_duplicates(run, generations), checks=checks,
        notes=_notes(run, ledger))


def generation_rows(data: Snapshot, run: Run) -> dict[int, GenerationRow]:
    """The generations, each with its ledger rows and the results Telegram took for it."""
    rows = {r["id"]: GenerationRow(r["id"], r["user_id"], r["state"], r["price"], r["task_id"],
                                   r["failure"], r["failure_detail"], r["created_at"],
                                   r["finished_at"])
            for r in data.generations}
    for r in data.ledger:
        row = rows.get(r["generation_id"]) if r["generation_id"] is not None else None
        if row is not None:
            (row.charges if r["kind"] == "charge" else row.refunds).append(r["amount"])
            if r["kind"] == "refund" and row.refunded_at is None:
                row.refunded_at = r["created_at"]
    by_task = {g.task_id: g for g in rows.values() if g.task_id}
    for send in sends(run):
        if send.task_id in by_task:
            by_task[send.task_id].sends.append(send)
    return rows


def sends(run: Run) -> list[Send]:
    """Every result Telegram accepted, by the Kie task whose files it carried."""
    found = []
    for call in run.tg.calls:
        if not call.ok or call.method not in MEDIA_METHODS:
            continue
        tasks = {task for url in _media_urls(call) if (task := _task_of(url))}
        for task in tasks:
            found.append(Send(call, task, run.life_of(call)))
    return found


def _media_urls(call: Call) -> list[str]:
    if call.method == "sendMediaGroup":
        return [str(m.get("media")) for m in call.params.get("media") or [] if isinstance(m, dict)]
    field_name = call.method.removeprefix("send").lower()
    value = call.params.get(field_name)
    return [value] if isinstance(value, str) else []


def _task_of(url: str | None) -> str | None:
    """Kie's result URLs are /files/<task id>/<name>."""
    if not isinstance(url, str):
        return None
    parts = urllib.parse.urlsplit(url).path.split("/")
    return parts[2] if len(parts) == 4 and parts[1] == "files" else None


def _check_ledger_sums(users: dict[int, dict[str, Any]], ledger: list[dict[str, Any]]) -> Check:
    sums: Counter[int] = Counter()
    for row in ledger:
        sums[row["user_id"]] += row["amount"]
    problems = [f"user {uid}: balance {u['balance']} != ledger sum {sums[uid]}"
                for uid, u in users.items() if u["balance"] != sums[uid]]
    problems += [f"user {uid}: balance {u['balance']} < 0" for uid, u in users.items()
                 if u["balance"] < 0]
    return Check("balance = sum of ledger rows, for every user", problems)


def _check_balances(run: Run, users: dict[int, dict[str, Any]],
                    generations: dict[int, GenerationRow],
                    purchases: dict[str, dict[str, Any]]) -> Check:
    """The balance from what happened, not from the ledger: starting credits, the prices of
    generations that kept their charge, the top-ups the admin saw applied, the Stars paid
    at Telegram, and what the refunds of those took back."""
    expected: Counter[int] = Counter({uid: run.config.starting_credits for uid in users})
    for g in generations.values():
        if g.state in ("delivered", "undeliverable") and not g.recovered:
            expected[g.user_id] -= g.price
    for topup in run.money.topups:
        if topup.source is not None:
            expected[topup.user_id] += topup.amount
    for charge_id, charge in run.tg.charges.items():
        expected[charge.user_id] += PACKAGE_CREDITS
        if charge.refunded:
            expected[charge.user_id] -= (purchases.get(charge_id) or {}).get("taken_back") or 0
    problems = [f"user {uid}: balance {u['balance']}, expected {expected[uid]}"
                for uid, u in users.items() if u["balance"] != expected[uid]]
    return Check("balance = start − kept charges + top-ups + purchases − purchase refunds",
                 problems)


def _check_generations(run: Run, generations: dict[int, GenerationRow]) -> Check:
    problems = []
    for g in generations.values():
        problems += [f"generation {g.id} (user {g.user_id}, {g.state}): {p}"
                     for p in _generation_problems(run, g)]
    return Check("each generation: delivered (or undeliverable) with one charge and no refund, "
                 "or failed with one charge and one refund; nothing open", problems)


def _generation_problems(run: Run, g: GenerationRow) -> list[str]:
    problems = []
    if g.charges != [-g.price]:
        problems.append(f"charges {g.charges}, price {g.price}")
    if g.state in OPEN_STATES:
        problems.append("left open")
    elif g.state == "failed":
        if g.refunds != [g.price]:
            problems.append(f"refunds {g.refunds}, price {g.price}")
        if g.sends:
            problems.append(f"refunded ({g.failure}) but its result was sent {len(g.sends)}×")
    else:
        refunds = [g.price] if g.recovered else []
        if g.refunds != refunds:
            problems.append(f"refunds {g.refunds}")
        if g.state == "undeliverable" and g.user_id not in run.tg.blocked:
            problems.append("undeliverable, but the user never blocked the bot")
        if g.state == "delivered" and not g.sends:
            problems.append("recorded as delivered, but Telegram never accepted its result")
    return problems


def _check_orphan_rows(ledger: list[dict[str, Any]], generations: dict[int, GenerationRow]) -> Check:
    problems = []
    for row in ledger:
        tied = row["kind"] in ("charge", "refund")
        if tied and row["generation_id"] not in generations:
            problems.append(f"ledger row {row['id']} ({row['kind']} {row['amount']}) names no "
                            f"generation ({row['generation_id']})")
        if not tied and row["generation_id"] is not None:
            problems.append(f"ledger row {row['id']} ({row['kind']}) names generation "
                            f"{row['generation_id']}")
        if row["kind"] not in ("grant", "topup", "charge", "refund", "purchase",
                               "purchase_refund"):
            problems.append(f"ledger row {row['id']}: unknown kind {row['kind']!r}")
    return Check("no charge or refund without a generation", problems)


def _check_money_from_outside(run: Run, ledger: list[dict[str, Any]],
                              purchases: dict[str, dict[str, Any]]) -> Check:
    """Top-ups applied once per command seen applied; every Stars payment credited once, and
    refunded at Telegram exactly when taken back in the ledger."""
    problems = []
    sources = Counter(row["source"] for row in ledger if row["source"])
    topups = [row for row in ledger if row["kind"] == "topup"]
    applied = {t.source for t in run.money.topups if t.source}
    problems += [f"top-up {r['source']} ({r['amount']} to {r['user_id']}) not seen applied by "
                 "the admin" for r in topups if r["source"] not in applied]
    problems += [f"top-up of {t.amount} to user {t.user_id} never applied ({t.commands} commands)"
                 for t in run.money.topups if t.source is None]
    for charge_id, charge in run.tg.charges.items():
        credited = sources[f"purchase:{charge_id}"]
        if credited != 1:
            problems.append(f"Stars payment {charge_id} of user {charge.user_id}: credited "
                            f"{credited}× (Telegram never sends it again)")
        taken = sources[f"purchase_refund:{charge_id}"]
        if taken != int(charge.refunded):
            problems.append(f"Stars payment {charge_id}: refunded at Telegram {charge.refunded}, "
                            f"taken back in the ledger {taken}×")
    problems += [f"ledger source {s} used {n}×" for s, n in sources.items() if n > 1]
    return Check("top-ups once each; Stars payments credited once, refunds taken back once",
                 problems)


def _duplicates(run: Run, generations: dict[int, GenerationRow]) -> list[Duplicate]:
    """Results Telegram took more than once: explained when each send after the first came
    across a kill of the life that made the one before (see across_kill)."""
    found = []
    for g in generations.values():
        albums = sorted(g.sends, key=lambda s: s.call.time)  # one call each (an album is one)
        if len(albums) < 2:
            continue
        kills = [across_kill(run, first, second) for first, second in itertools.pairwise(albums)]
        explained = all(k is not None for k in kills)
        kill, window = kills[0] if explained and kills[0] is not None else (None, None)
        detail = "" if explained else "; ".join(
            f"+{s.call.time - run.began:.3f} s by life {s.life.label if s.life else '?'}"
            for s in albums)
        found.append(Duplicate(g.id, len(albums), explained, kill, window, detail))
    return found


def across_kill(run: Run, first: Send, second: Send) -> tuple[int | None, float] | None:
    """(the kill's number, ms from Telegram accepting `first` to the kill) when `second` came
    after the life that sent `first` was SIGKILLed — within run.duplicate_window of the
    acceptance, if there is one —; else None."""
    life = first.life
    if (life is None or life.end != "killed" or life.ended is None or second.life is life
            or second.call.time < life.ended):
        return None
    window = max(0.0, life.ended - first.call.time)  # 0: in flight at the kill
    if run.duplicate_window is not None and window > run.duplicate_window:
        return None
    kill = run.kill_ending(life)
    return (kill.number if kill else None), 1000 * window


def _check_duplicates(run: Run, generations: dict[int, GenerationRow]) -> Check:
    if run.duplicate_window is None:
        name = ("a result sent twice only across a kill (Telegram took it, the bot died "
                "before recording it)")
        problems = [f"generation {d.generation_id}: sent {d.sends}× without a kill in between"
                    f" ({d.detail})" for d in _duplicates(run, generations) if not d.explained]
    else:
        name = (f"a result sent twice only across a SIGKILL of its sender within "
                f"{run.duplicate_window:g} s of Telegram accepting it")
        problems = [f"generation {d.generation_id}: sent {d.sends}× ({d.detail})"
                    for d in _duplicates(run, generations) if not d.explained]
    return Check(name, problems)


def _check_kie(run: Run, generations: dict[int, GenerationRow]) -> Check:
    """One Kie task per generation at most; a task the bot never recorded belongs to a
    generation refunded with it unrecorded (UNRECORDED_FAILURES): interrupted by a kill, or its
    create's answer never came (a freeze outliving the HTTP timeout)."""
    problems = []
    per_generation: Counter[int] = Counter()
    for task in run.kie.tasks.values():
        gid = generation_of(task.callback_url)
        if gid is None:
            problems.append(f"Kie task {task.task_id} carries no generation in its callback URL")
            continue
        per_generation[gid] += 1
        g = generations.get(gid)
        if g is None:
            problems.append(f"Kie task {task.task_id} for unknown generation {gid}")
        elif g.task_id is None and not (g.state == "failed"
                                        and g.failure in UNRECORDED_FAILURES):
            problems.append(f"Kie task {task.task_id} never recorded for generation {gid} "
                            f"({g.state}, {g.failure})")
        elif g.task_id not in (None, task.task_id):
            problems.append(f"generation {gid} follows {g.task_id}, Kie also has {task.task_id}")
    problems += [f"generation {gid}: {n} Kie tasks" for gid, n in per_generation.items() if n > 1]
    return Check("one Kie task per generation; unrecorded ones only for generations refunded "
                 "as interrupted or unanswered",
                 problems)


def generation_of(callback_url: str | None) -> int | None:
    tail = (callback_url or "").rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isdecimal() else None


def _check_walks(run: Run) -> Check:
    problems = [f"user {w.user_id}: no generation after {w.commands} commands, {w.presses} presses"
                for w in run.walked if w.generation_id is None]
    if len(run.walked) != run.config.generations:
        problems.append(f"{len(run.walked)} walks for {run.config.generations} generations")
    return Check("every person got each generation they asked for started", problems)


def _check_pending(run: Run, generations: dict[int, GenerationRow]) -> Check:
    """A charged generation goes to Kie at once (or is refunded). Stuck, when no create was
    ever sent for it and: its ✅ press failed in the handler after the charge (the bot's log);
    or it stayed pending STUCK_PENDING seconds in one life (seen by the Watch); or the life it
    was charged in ran UNSUBMITTED seconds more before it was killed. Without a restart such a
    generation waits for its deadline (10 to 30 minutes) before it is refunded."""
    attempts = create_attempts(run.kie)
    failed = failed_presses(run.lives)
    problems, flagged = [], set()
    for walked in run.walked:
        g = generations.get(walked.generation_id or -1)
        errors = [failed[u] for u in walked.confirms if u in failed]
        if g is not None and errors and not attempts[g.id]:
            flagged.add(g.id)
            problems.append(f"generation {g.id} (user {g.user_id}): charged, then its ✅ press "
                            f"failed ({errors[0]}); no create sent; {g.state} ({g.failure})")
    for g in generations.values():
        waited = max(run.watch.stuck.get(g.id, 0.0), _pending_in_own_life(run, g))
        if g.id not in flagged and not attempts[g.id] and g.failure == "interrupted" \
                and waited >= UNSUBMITTED:
            problems.append(f"generation {g.id} (user {g.user_id}): charged, no create sent to "
                            f"Kie in {waited:.1f} s of the bot running; refunded by a restart")
    return Check("every charged generation is sent to Kie without waiting for a restart",
                 problems)


FAILED_UPDATE = re.compile(r" ERROR bot\.handlers\.refusals: update (\d+) failed$")


def failed_presses(lives: list[Life]) -> dict[int, str]:
    """Updates whose handling raised inside the picker's `press` handler, by update id: the
    exception's last line (from the tracebacks in the bot's logs)."""
    found: dict[int, str] = {}
    for life in lives:
        update: int | None = None
        trace: list[str] = []
        for line in [*life.log.read_text(errors="replace").splitlines(), "0000 end"]:
            if line[:1].isdigit():  # a new log record: the traceback before it is complete
                if update is not None and any(", in press" in t for t in trace):
                    found[update] = _exception(trace)
                match = FAILED_UPDATE.search(line)
                update, trace = (int(match.group(1)) if match else None), []
            else:
                trace.append(line)
    return found


def create_attempts(kie: FakeKie) -> Counter[int]:
    """Create requests Kie received (answered or not), by the generation in their callBackUrl."""
    counts: Counter[int] = Counter()
    for req in kie.requests:
        if req.path.endswith(CREATE_PATHS) and isinstance(req.body, dict):
            gid = generation_of(req.body.get("callBackUrl"))
            if gid is not None:
                counts[gid] += 1
    return counts


def _exception(trace: list[str]) -> str:
    """The exception line of a traceback (aiogram's messages run on over more lines)."""
    lines = [t for t in trace if re.match(r"[\w.]+(Error|Exception|After)\b", t)]
    return (lines[-1] if lines else trace[-1]).strip()[:120]


def _pending_in_own_life(run: Run, g: GenerationRow) -> float:
    """Seconds the life that charged it ran from the charge to its end (or to the refund, if
    that came first: another process's doing)."""
    life = run.charging_life(g)
    ends = [t for t in (life.ended_wall if life else None, g.refunded_at) if t is not None]
    if life is None or not ends:
        return 0.0
    return run.running(life, g.created_at, min(ends))


def _check_process(run: Run) -> Check:
    problems = []
    if run.settled_in is None:
        problems.append(f"not settled after {run.config.settle_timeout:.0f} s "
                        f"({run.watch.open} open)")
    if run.final_exit != 0:
        problems.append(f"the final graceful stop exited with {run.final_exit}")
    for life in run.lives:
        if life.end == "stopped" and life.exit_code != 0:
            problems.append(f"life {life.label} (SIGTERM) exited with {life.exit_code}")
        text = life.log.read_text(errors="replace")
        if TOKEN in text or KIE_KEY in text:
            problems.append(f"life {life.label}: a secret in the log")
    return Check("settled; graceful stops exit 0; no secret logged", problems)


def _faults(run: Run) -> dict[str, str]:
    """What the fakes answered, by fault type (beside what was injected, where it was)."""
    kie, tg = run.kie, run.tg
    counts: Counter[str] = Counter()
    for req in kie.requests:
        create = req.path.endswith(CREATE_PATHS)
        what = "create" if create else "read"
        if req.status == 429 or req.code == 429:
            counts[f"Kie {what} 429"] += 1
        elif (req.status or 0) >= 500 or (req.code or 0) in (455, 500, 502):
            counts[f"Kie {what} 5xx"] += 1
    counts["Kie 429 of its own rate limit (of the above)"] = kie.rate_limited
    counts["Kie tasks failed"] = sum(t.plan.outcome == "fail" for t in kie.tasks.values())
    for record in kie.callback_log:
        if record.lost:
            counts["callbacks lost"] += 1
        elif record.duplicate:
            counts["callbacks repeated"] += 1
        elif record.status is None:
            counts["callbacks unanswered (bot down)"] += 1
    for call in tg.calls:
        if call.error_code == 403:
            counts["Telegram 403 (blocked)"] += 1
        elif call.injected and call.error_code is not None:
            counts[f"Telegram {call.error_code}"] += 1
    injected = run.faults.injected
    return {name: f"{counts[name]}" + (f" (injected {injected[name]})" if name in injected else "")
            for name in sorted(set(counts) | set(injected))}


def _outcomes(generations: dict[int, GenerationRow], run: Run) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for g in generations.values():
        if g.state == "failed":
            counts[f"refunded: {g.failure}"] += 1
        elif g.recovered:
            counts[f"{g.state}, free (recovered after an unrecorded create)"] += 1
        else:
            counts[g.state] += 1
    counts["generations"] = len(generations)
    counts["Kie tasks"] = len(run.kie.tasks)
    recorded = {g.task_id for g in generations.values() if g.task_id}
    counts["Kie tasks never recorded (refunded as interrupted or unanswered)"] = sum(
        t not in recorded for t in run.kie.tasks)
    counts["commands sent again (lost to a kill or a fault)"] = sum(
        w.commands - 1 for w in run.walked)
    return dict(counts)


def _latency(run: Run, generations: dict[int, GenerationRow]) -> dict[str, str]:
    """Seconds, per delivered generation: Kie finished → the bot knew; the bot knew → Telegram
    took the result (the first time)."""
    offset = time.time() - time.monotonic()
    noticed, sent = [], []
    for g in generations.values():
        task = run.kie.tasks.get(g.task_id or "")
        if g.state != "delivered" or g.recovered or task is None or task.complete_time is None \
                or not g.sends:
            continue
        known = g.finished_at or 0.0
        noticed.append(known - task.complete_time / 1000)
        sent.append(min(s.call.time for s in g.sends) + offset - known)
    return {"Kie finished → bot knew": _spread(noticed),
            "bot knew → Telegram took it": _spread(sent)}


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return f"p50 {at(0.5):.1f} s, p95 {at(0.95):.1f} s, max {ordered[-1]:.1f} s"


def _money(ledger: list[dict[str, Any]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for row in ledger:
        totals[row["kind"]] += row["amount"]
        rows[row["kind"]] += 1
    return {f"{kind} ({rows[kind]} rows)": total for kind, total in sorted(totals.items())}


def _notes(run: Run, ledger: list[dict[str, Any]]) -> list[str]:
    notes = [_lost_purchase(run, p) for p in run.money.purchases if not p.credited]
    windows = _payment_windows(run, ledger)
    if windows:
        notes.append(f"credited payments: Telegram forgot the update {min(windows):.0f}-"
                     f"{max(windows):.0f} ms before the credit was committed (a crash in "
                     "between loses the payment)")
    resent = [t for t in run.money.topups if t.commands > 1]
    if resent:
        notes.append(f"{len(resent)} top-up command(s) sent again after a kill swallowed one")
    return notes


def _payment_windows(run: Run, ledger: list[dict[str, Any]]) -> list[float]:
    """Per credited payment: ms from Telegram forgetting its update to the ledger's commit."""
    offset = time.time() - time.monotonic()
    credited_at = {row["source"]: row["created_at"] for row in ledger if row["kind"] == "purchase"}
    windows = []
    for purchase in run.money.purchases:
        confirmed = run.confirmed.get(purchase.update_id)
        at_wall = credited_at.get(f"purchase:{purchase.charge_id}")
        if confirmed is not None and at_wall is not None:
            windows.append(max(0.0, 1000 * (at_wall - offset - confirmed)))  # polled: ±2 ms
    return windows


def _lost_purchase(run: Run, purchase: Purchase) -> str:
    """How a payment was lost: when Telegram forgot its update, and the kill that followed."""
    text = f"lost purchase {purchase.charge_id} of user {purchase.user_id} (update {purchase.update_id})"
    confirmed = run.confirmed.get(purchase.update_id)
    life = run.life_taking(purchase.update_id, confirmed) if confirmed is not None else None
    if confirmed is None or life is None or life.ended is None:
        return text
    kill = run.kill_ending(life)
    ending = f"kill #{kill.number} ({kill.trigger})" if kill else life.end
    return (f"{text}: Telegram forgot it in life {life.label}, {ending} came "
            f"{max(0.0, 1000 * (life.ended - confirmed)):.0f} ms later (±2 ms), before the bot "
            "credited it")


# -- the table ------------------------------------------------------------------------------------

def render(report: Report) -> str:
    c = report.config
    lines = [f"Chaos run{report.setting}, seed {c.seed}: {c.generations} generations by "
             f"{c.people} people, "
             f"{len(report.kills)} kills, {report.seconds:.0f} s (settled in "
             f"{report.settled_in if report.settled_in is None else f'{report.settled_in:.1f} s'})",
             f"task durations: realistic × {c.scale} (pictures {8 * c.scale:.1f}-{20 * c.scale:.1f} s, "
             f"videos {60 * c.scale:.0f}-{180 * c.scale:.0f} s, songs {30 * c.scale:.1f}-"
             f"{90 * c.scale:.1f} s); Kie {RATE_LIMIT} requests per {WINDOW} s", ""]
    lines += _section("kills", [(f"#{k.number} {k.trigger}" + ("" if k.fired else " (timed out)"),
                                 f"life {k.instance}{k.life}, down {k.downtime:.1f} s")
                                for k in report.kills])
    for title, rows in report.sections:
        lines += _section(title, rows)
    lines += _section("faults answered", list(report.faults.items()))
    lines += _section("generations", list(report.outcomes.items()))
    lines += _section("latency of delivered results", list(report.latency.items()))
    lines += _section("ledger", list(report.money.items()))
    windows = [d.window_ms for d in report.duplicates if d.window_ms is not None]
    lines += _section("duplicate deliveries", [
        ("duplicates", len(report.duplicates)),
        ("explained by a kill", sum(d.explained for d in report.duplicates)),
        ("window (Telegram accepted → kill), ms",
         f"{min(windows):.1f}-{max(windows):.1f}" if windows else "-"),
    ] + [(f"generation {d.generation_id}", f"{d.sends}×" + (
        f", kill #{d.kill} {d.window_ms:.1f} ms after Telegram took it"
        if d.window_ms is not None else f", not across a kill: {d.detail}"))
        for d in report.duplicates])
    lines += _section("invariants", [(("✓ " if ch.ok else "✗ ") + ch.name, "" if ch.ok else
                                      f"{len(ch.problems)} problem(s)") for ch in report.checks])
    for check in report.checks:
        lines += [f"  ✗ {p}" for p in check.problems[:20]]
    lines += report.stories
    lines += [f"note: {n}" for n in report.notes]
    lines.append("ALL INVARIANTS HELD" if report.ok else "INVARIANTS BROKEN")
    return "\n".join(lines)


def _section(title: str, rows: Iterable[tuple[str, object]]) -> list[str]:
    rows = list(rows)
    width = max([len(k) for k, _ in rows] + [20])
    return [title] + [f"  {k:<{width}}  {v}" for k, v in rows] + [""]


ENGINES = ("sqlite", "postgres")


def arguments(defaults: ChaosConfig, description: str) -> argparse.ArgumentParser:
    """The options every chaos run takes (`--engine` is read by main)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--engine", choices=ENGINES, default="sqlite",
                        help="postgres: several instances on one schema (bench.chaos_pg)")
    for name in ("generations", "people", "kills", "seed", "blocked", "topups", "purchases"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("kie_fail", "arrivals", "scale", "aim", "settle_timeout"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                            default=getattr(defaults, name))
    parser.add_argument("--rate-scope", dest="rate_scope", choices=("all", "creates"),
                        default=defaults.rate_scope, help="KIE_RATE_SCOPE, and what the fake counts")
    parser.add_argument("--keep", type=Path, help="keep the database and bot logs in this folder")
    return parser


def parse(argv: list[str] | None = None) -> ChaosConfig:
    args = vars(arguments(ChaosConfig(), (__doc__ or "").split("\n\n")[0]).parse_args(argv))
    args.pop("engine")
    return ChaosConfig(**args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--engine", choices=ENGINES, default="sqlite")
    if engine.parse_known_args(argv)[0].engine == "postgres":
        from testkit import chaos_pg  # noqa: PLC0415 -- it builds on this module

        return chaos_pg.main(argv)
    config = parse(argv)
    # The fakes' servers log a request cut short by a killed bot: expected here, and noise.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    if config.kills < 1 or config.people < config.blocked:
        raise SystemExit("--kills must be ≥ 1 and --blocked ≤ --people")
    report = asyncio.run(run_chaos(config))
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

