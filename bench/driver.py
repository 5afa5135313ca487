"""People using the bot through the fake Bot API, cheaply enough for hundreds at once, and what
Kie.ai saw of their generations.

`Watcher` follows the fake's calls once each (tests' `wait_for` scans them all on every look, which
at benchmark scale would keep the fakes' process busy and distort every time it records).
`Client` is one person: opens a picker, presses, confirms, waits for the result. `kie_costs`
splits Kie's requests by kind; `finished_at` says when a task ended on Kie's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg

from bench.harness import (
    SCALED_BOT,
    Child,
    Scale,
    all_alive,
    bot_env,
    callback_settings,
    fakes,
    recounted,
    scaled_settings,
    spawn,
    start,
    stop_all,
)
from bot.kie.budget import Scope
from bot.store import Store
from testkit.bot import more_keys
from testkit.chat import button, buttons
from testkit.databases import schema
from testkit.databases import server_url as postgres_url
from testkit.e2e import free_port
from testkit.fakes.kie import FakeKie, Req, Task, TaskPlan
from testkit.fakes.telegram import Call, FakeTelegram
from testkit.load import MEDIA_METHODS, MIXED, Ask

Dict = dict[str, Any]
Match = Callable[[Call], bool]
POLL = 0.002  # seconds between two looks at the fake's new calls

# Realistic durations (real seconds) of a task on Kie, by the report's kind names (testkit/load.py).
DURATIONS: dict[str, tuple[float, float]] = {ask.name: ask.seconds for ask in MIXED}
KIND_OF_KIE_MODEL = {ask.kie_model: ask.name for ask in MIXED}


class Watcher:
    """Looks at each new call of the fake Bot API once and hands it to whoever waits for it:
    by chat (sends and edits) or by callback query (answerCallbackQuery)."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self._seen = len(tg.calls)
        self._waiting: dict[Hashable, list[tuple[Match, asyncio.Future[Call]]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run(), name="bench-watcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def expect(self, key: Hashable, match: Match) -> asyncio.Future[Call]:
        """The next successful call under `key` (a chat id, or ("answer", query id)) that matches."""
        future: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
        self._waiting[key].append((match, future))
        return future

    async def _run(self) -> None:
        while True:
            calls = self.tg.calls
            for call in calls[self._seen:]:
                if call.ok:
                    self._hand(call)
            self._seen = len(calls)
            await asyncio.sleep(POLL)

    def _hand(self, call: Call) -> None:
        key = (("answer", call.params.get("callback_query_id"))
               if call.method == "answerCallbackQuery" else call.params.get("chat_id"))
        waiters = self._waiting.get(key)
        if not waiters:
            return
        for entry in list(waiters):
            match, future = entry
            if future.done():
                waiters.remove(entry)
            elif match(call):
                future.set_result(call)
                waiters.remove(entry)


@dataclass
class Done:
    """One generation a client asked for and received."""

    ask: Ask
    prompt: str
    confirmed: float  # time.monotonic() of the ✅ press
    media: Call  # the call that brought the result


class Client:
    """One person in a private chat with the bot."""

    def __init__(self, tg: FakeTelegram, watcher: Watcher, user_id: int, timeout: float) -> None:
        self.tg = tg
        self.watcher = watcher
        self.id = user_id
        self.user = tg.user(user_id, f"Bench{user_id}")
        self.timeout = timeout

    async def ask(self, text: str) -> Dict:
        """Send a command that opens a picker; returns the picker message."""
        request = self.tg.send_message(self.user, text)
        reply = self.watcher.expect(self.id, lambda c: c.method == "sendMessage" and (
            c.params.get("reply_parameters") or {}).get("message_id") == request["message_id"])
        call = await asyncio.wait_for(reply, self.timeout)
        return self.message(call.response["message_id"])

    def press(self, message: Dict, data: str) -> asyncio.Future[Call]:
        """Press a button; the future is the bot's answer to the press."""
        query = self.tg.press(self.user, message, data)
        return self.watcher.expect(("answer", query["id"]), lambda c: True)

    def result(self, since: float) -> asyncio.Future[Call]:
        """The next result (a media call) sent into this chat after `since`."""
        return self.watcher.expect(self.id, lambda c: c.method in MEDIA_METHODS and c.time >= since)

    def message(self, message_id: int) -> Dict:
        found = self.tg.message(self.id, message_id)
        assert found is not None, f"message {message_id} of chat {self.id} is gone"
        return found

    async def choose(self, ask: Ask, prompt: str) -> Dict:
        """/command prompt, then the model's button: the picker as it is now, showing ✅."""
        picker = await self.ask(f"{ask.command} {prompt}")
        if not any(b["text"].startswith("✅") for b in buttons(picker)):  # (a repeat opens on
            # the last model, its ✅ shown: one tap)
            await asyncio.wait_for(self.press(picker, button(picker, ask.button)), self.timeout)
        return self.message(picker["message_id"])

    async def generate(self, ask: Ask, prompt: str) -> Done:
        """The whole way: /command prompt, the model's button, ✅, the result."""
        picker = await self.choose(ask, prompt)
        confirmed = time.monotonic()
        result = self.result(confirmed)
        self.press(picker, button(picker, "✅"))
        return Done(ask, prompt, confirmed, await asyncio.wait_for(result, self.timeout))


# -- a bot between the fakes, with people to drive it ---------------------------------------------

Mode = Literal["polling", "callbacks"]
MODES: tuple[Mode, ...] = ("polling", "callbacks")
FIRST_USER = 50_000


@dataclass
class GenerationBench:
    """The bot (`python -m bench.scaled_bot`) in its own process between the fakes; tasks end by
    the clock after realistic durations. Polling only, or with Kie's callbacks (the fake sends
    them; the poll is the late fallback). Several instances on one PostgreSQL schema, or one on
    its SQLite file."""

    tg: FakeTelegram
    kie: FakeKie
    children: list[Child]  # the first polls Telegram
    watcher: Watcher
    mode: Mode
    scale: Scale

    @property
    def child(self) -> Child:
        return self.children[0]

    def client(self, n: int, timeout: float) -> Client:
        return Client(self.tg, self.watcher, FIRST_USER + n, timeout)


@contextlib.asynccontextmanager
async def generation_bench(mode: Mode, scale: Scale, folder: Path, keys: int = 1, *,
                           instances: int | None = None, url: str | None = None,
                           kie_scope: Scope = "all",
                           bot_scope: Scope = "all") -> AsyncIterator[GenerationBench]:
    """The bot between the fakes, with `keys` Kie keys (each its own budget): one process on a
    SQLite file, or `instances` processes sharing a new schema on the PostgreSQL server at `url`
    (harness.postgres_url), all with the same settings. `kie_scope`: what the fake Kie's limit
    counts (FakeKie.rate_scope); `bot_scope`: the bot's KIE_RATE_SCOPE."""
    extra = more_keys(keys)
    async with fakes(scale.window, more_keys=extra) as (tg, kie):
        kie.plan = realistic_plans(scale)
        kie.rate_scope = kie_scope
        settings = scaled_settings(scale) | {"kie_api_keys": ",".join(extra) or None,
                                             "kie_rate_scope": bot_scope}
        if mode == "callbacks":
            if instances is not None:  # one KIE_CALLBACK_URL would reach one instance only
                raise ValueError("several instances run in polling mode only")
            kie.auto_callbacks = True
            settings |= callback_settings(free_port())
        bots = (one_bot(settings, folder, tg, kie) if instances is None
                else shared_bots(settings, folder, tg, kie, count=instances, server=postgres_url(url)))
        async with bots as children, Watcher(tg) as watcher:
            yield GenerationBench(tg, kie, children, watcher, mode, scale)


@contextlib.asynccontextmanager
async def one_bot(settings: dict[str, object], folder: Path, tg: FakeTelegram,
                  kie: FakeKie) -> AsyncIterator[list[Child]]:
    """One bot on a SQLite file in `folder`, polling."""
    child, _ = await start(SCALED_BOT, bot_env(folder, tg, kie, **settings), folder, tg)
    try:
        yield [child]
    finally:
        await child.stop()


@contextlib.asynccontextmanager
async def shared_bots(settings: dict[str, object], folder: Path, tg: FakeTelegram, kie: FakeKie, *,
                      count: int, server: str) -> AsyncIterator[list[Child]]:
    """`count` bots on one new schema of `server`, each in a folder of its own; yielded once
    each has counted the others (a heartbeat after all are up), so spends only its part of
    Kie's budget: the steady state, not the first seconds of one instance alone."""
    admin = await asyncpg.connect(server, timeout=5)
    try:
        async with schema(admin, server) as (url, _):
            children: list[Child] = []
            store: Store | None = None
            try:
                for n in range(count):
                    home = folder / f"instance{n}"
                    home.mkdir()
                    env = bot_env(home, tg, kie, **settings, database_url=url)
                    if n == 0:  # it migrates the schema and takes the polling turn
                        children.append((await start(SCALED_BOT, env, home, tg, home.name))[0])
                    else:  # stands by: it never polls, so no getUpdates to wait for
                        children.append(await spawn(SCALED_BOT, env, home, home.name))
                store = await Store.open(url)
                await all_alive(store, tg, children)
                await recounted(store, time.time(), children)
                yield children
            finally:
                try:
                    await stop_all(children)
                finally:
                    if store is not None:
                        await store.close()
    finally:
        await admin.close()


# -- Kie's side ----------------------------------------------------------------------------------


def realistic_plans(scale: Scale, seed: int = 16) -> Callable[[Dict], TaskPlan]:
    """A plan per created task: it ends (successfully) by the clock after a duration drawn from
    DURATIONS for its kind, × the scale."""
    rng = random.Random(seed)

    def plan(body: Dict) -> TaskPlan:
        low, high = DURATIONS[KIND_OF_KIE_MODEL[body["model"]]]
        return TaskPlan(finish_after=scale(rng.uniform(low, high)))

    return plan


def prompt_of(task: Task) -> str:
    return str(task.input.get("prompt") or task.input.get("text") or "")


def finished_at(task: Task) -> float:
    """time.monotonic() when a finish_after task ended on Kie's side."""
    assert task.plan.finish_after is not None
    return task.started + task.plan.finish_after


def success_to_sent(kie: FakeKie, done: list[Done]) -> list[float]:
    """Per delivered generation: seconds from its task's end on Kie to the result's arrival at
    the Bot API (prompts are unique, so a prompt names its task)."""
    tasks = {prompt_of(task): task for task in kie.tasks.values()}
    return [d.media.time - finished_at(tasks[d.prompt]) for d in done if d.prompt in tasks]


@dataclass
class KindCost:
    """What one kind of generation cost in Kie requests (429s included)."""

    delivered: int = 0
    creates: int = 0
    reads: int = 0
    other: int = 0  # any other call naming one of its tasks (download-url)
    rate_limited: int = 0

    @property
    def requests(self) -> int:
        return self.creates + self.reads + self.other

    @property
    def per_delivery(self) -> float:
        return self.requests / self.delivered if self.delivered else float("nan")


def kie_costs(kie: FakeKie, requests: list[Req], done: list[Done]) -> dict[str, KindCost]:
    """Kie's requests split by the kind of generation they serve, by the model of the task each
    is about (a create Kie refused: the model in its body), counted by the role the fake gives
    it; and how many of each kind were delivered."""
    costs: dict[str, KindCost] = defaultdict(KindCost)
    for req in requests:
        task = kie.tasks.get(req.task_id) if req.task_id else None
        refused = req.role == "create" and isinstance(req.body, dict)  # a create with no task (429)
        model = task.model if task else req.body.get("model") if refused else None
        kind = KIND_OF_KIE_MODEL.get(model if isinstance(model, str) else "")
        if kind is None:
            continue
        cost = costs[kind]
        cost.creates += req.role == "create"
        cost.reads += req.role == "read"
        cost.other += req.role == "other"
        cost.rate_limited += req.status == 429
    for d in done:
        costs[d.ask.name].delivered += 1
    return dict(costs)
