"""The crowd scenario shared by the load test and the benchmark: many people confirm at once.

Each person asks for one thing (`Ask`): by default everyone a Seedream picture; with `asks`
several, person n asks for asks[n % len(asks)], so pictures, videos, songs and speech — and, with
EVERY_API, a model on each of Kie's APIs — compete for Kie's one budget. Each ask's tasks take
their own time on the fake Kie with `timed_plans`. The result counts, per ask, the generations
started, delivered and refunded (from the bot's database) and what they cost in Kie requests:
the creates, the status reads and any other call about one of its tasks (Veo's 1080p,
download-url), as the fake classifies them (FakeKie.calls_per_api); and each key's busiest
window beside the rate limit.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from bot.catalog import Model, get_model
from bot.kie.client import key_id
from bot.store import GenerationState, LedgerKind, Store
from testkit.chat import Person, button
from testkit.fakes.kie import FakeKie, Req, TaskPlan
from testkit.fakes.telegram import Call, FakeTelegram

# Every Bot API method that can carry a result into a chat.
MEDIA_METHODS = ("sendPhoto", "sendVideo", "sendAudio", "sendMediaGroup", "sendDocument",
                 "sendVoice", "sendAnimation")
FIRST_USER_ID = 10_000


@dataclass(frozen=True)
class Ask:
    """What one person asks for: a command, the model picked in its picker (a catalog id) and
    the Bot API method that brings the result back."""

    name: str       # how the report calls it: image, video, song, speech; market image, veo...
    command: str    # the picker's command, e.g. /music
    model: str      # bot.catalog model id
    method: str     # sendPhoto | sendVideo | sendAudio | sendMediaGroup (several files)
    seconds: tuple[float, float] = (8.0, 20.0)  # how long its task takes on Kie (real s): low, high

    @property
    def api(self) -> str:
        """The catalog's API of the model (bot/kie/constants.py: market, veo-1080p, ...)."""
        return self._catalog().api

    @property
    def kie_model(self) -> str:
        return self._catalog().kie_model

    @property
    def price(self) -> int:
        """What the picker charges with every option left at its default."""
        return self._catalog().price_for({})

    @property
    def button(self) -> str:
        """The start of the model's button in the picker ("Imagen 4 ·", not "Imagen 4 Fast")."""
        return f"{self._catalog().name} ·"

    def _catalog(self) -> Model:
        model = get_model(self.model)
        assert model is not None, f"no model {self.model!r} in the catalog"
        return model


# Durations: images 8-20 s, videos 60-180 s, songs 30-90 s (the benchmark issue's); speech
# 5-15 s, Flux Kontext's pictures 10-30 s, 4o Image's 30-90 s (its catalog entry expects 60),
# Veo's videos 60-240 s and Runway's 60-120 s are assumed.
SEEDREAM = Ask("image", "/image", "seedream", "sendPhoto")
IMAGEN = Ask("image", "/image", "imagen4", "sendPhoto")
WAN = Ask("video", "/video", "wan", "sendVideo", (60.0, 180.0))
SUNO = Ask("song", "/music", "suno", "sendMediaGroup", (30.0, 90.0))  # two tracks: one album
SPEECH = Ask("speech", "/music", "tts", "sendAudio", (5.0, 15.0))
MIXED = (IMAGEN, WAN, SUNO, SPEECH)
# A model on each API the catalog uses (the market's per kind), named for its line in the report.
EVERY_API = (
    Ask("market image", "/image", "imagen4", "sendPhoto"),
    Ask("market video", "/video", "wan", "sendVideo", (60.0, 180.0)),
    Ask("market speech", "/music", "tts", "sendAudio", (5.0, 15.0)),
    Ask("suno", "/music", "suno", "sendMediaGroup", (30.0, 90.0)),
    Ask("veo", "/video", "veofast", "sendVideo", (60.0, 240.0)),
    Ask("veo-1080p", "/video", "veofasthd", "sendVideo", (60.0, 240.0)),
    Ask("runway", "/video", "runway", "sendVideo", (60.0, 120.0)),
    Ask("flux-kontext", "/image", "fluxpro", "sendPhoto", (10.0, 30.0)),
    Ask("gpt4o-image", "/image", "gpt4o", "sendPhoto", (30.0, 90.0)),
)
FINAL_STATES = (GenerationState.DELIVERED, GenerationState.UNDELIVERABLE, GenerationState.FAILED)


@dataclass
class AskStats:
    """One ask's share of the crowd."""

    api: str  # the catalog's API of its model
    people: int = 0
    started: int = 0  # generations the bot charged and began (its database)
    delivered: int = 0  # of those, delivered
    refunded: int = 0  # of those, refunded
    creates: int = 0  # create requests, 429s included
    reads: int = 0  # status reads, 429s included
    other: int = 0  # other calls about one of its tasks (Veo's 1080p, download-url)
    kie_429: int = 0

    @property
    def requests(self) -> int:
        return self.creates + self.reads + self.other

    @property
    def per_delivery(self) -> float:
        return self.requests / self.delivered if self.delivered else float("nan")


@dataclass
class CrowdResult:
    people: int
    delivered: int
    kie_requests: int
    kie_429: int
    max_in_window: int
    seconds: float
    success_to_send: list[float]   # per task: Kie's success answer → the call that delivered it
    by_ask: dict[str, AskStats]
    rate_limit: int  # requests per window per key on the fake Kie (the bot's KIE_RATE_LIMIT)
    window: float
    peak_per_key: dict[str, int]  # a key's id (bot.kie.client.key_id) → its busiest window
    by_api: dict[str, Counter[str]]  # the fake's own count of the requests (FakeKie.calls_per_api)
    # Why a person's generation was not started once and then delivered or refunded exactly once
    # (and its result sent once, or none): empty when every one was.
    unsettled: list[str] = field(default_factory=list)
    unattributed: int = 0  # Kie requests about no crowd task (e.g. the credit balance)

    def report(self) -> str:
        """A table with a line per ask: generations started, delivered and refunded, their Kie
        requests by role, and those per delivered generation; then the 429s and each key's
        busiest window."""
        head = ("ask", "API", "started", "delivered", "refunded", "creates", "reads", "other",
                "per delivered")
        rows: list[tuple[object, ...]] = [
            (name, s.api, s.started, s.delivered, s.refunded, s.creates, s.reads, s.other,
             s.per_delivery) for name, s in self.by_ask.items()]
        asks = self.by_ask.values()
        total = AskStats("", people=self.people, started=sum(s.started for s in asks),
                         delivered=self.delivered, refunded=sum(s.refunded for s in asks),
                         creates=sum(s.creates for s in asks), reads=sum(s.reads for s in asks),
                         other=sum(s.other for s in asks))
        rows.append(("all", "", total.started, total.delivered, total.refunded, total.creates,
                     total.reads, total.other, total.per_delivery))
        peaks = ", ".join(f"key {key} {peak}" for key, peak in self.peak_per_key.items())
        lines = [f"{self.people} users, {len(self.by_ask)} asks, all confirmed at once: "
                 f"{self.kie_requests} Kie requests in {self.seconds:.1f} s",
                 "", *_table(head, rows), "",
                 f"Kie 429 answers: {self.kie_429}. Busiest window ({self.window:g} s) per key: "
                 f"{peaks} (KIE_RATE_LIMIT {self.rate_limit}).",
                 f"Not delivered or refunded exactly once: {len(self.unsettled)}.",
                 "By endpoint, as the fake Kie counts them (creates / reads / other): " + ", ".join(
                     f"{api or 'none'} {c['create']}/{c['read']}/{c['other']}"
                     for api, c in self.by_api.items()) + "."]
        if self.unattributed:
            lines.append(f"{self.unattributed} requests were about no crowd task.")
        return "\n".join(lines)


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table, its columns aligned (text left, numbers right, fractions to 2 places)."""
    cells = [list(head), *([f"{c:.2f}" if isinstance(c, float) else str(c) for c in row]
                           for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w)
                                 for c, w, n in zip(row, widths, numeric, strict=True)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2))
                          for w, n in zip(widths, numeric, strict=True)) + "|"
    return [line(cells[0]), rule, *(line(row) for row in cells[1:])]


def crowd_user_id(n: int) -> int:
    return FIRST_USER_ID + n


def ask_of(n: int, asks: Sequence[Ask]) -> Ask:
    """What person n asks for."""
    return asks[n % len(asks)]


def prompt_of(n: int, ask: Ask) -> str:
    """Person n's prompt: it names them, so each Kie task (and create) names its person."""
    return f"crowd {ask.name} {n}"


PROMPT = re.compile(r"crowd .+ (\d+)")


def person_in(body: Any) -> int | None:
    """The person whose prompt a create's body (or a task's) carries: market input's prompt or
    text (speech), or a flat body's prompt (Suno, the dedicated APIs)."""
    if not isinstance(body, dict):
        return None
    source = body["input"] if isinstance(body.get("input"), dict) else body
    found = PROMPT.fullmatch(str(source.get("prompt") or source.get("text") or ""))
    return int(found.group(1)) if found else None


def timed_plans(asks: Sequence[Ask], scale: float, *, failing: Sequence[int] = (),
                seed: int = 16) -> Callable[[dict[str, Any]], TaskPlan]:
    """For FakeKie.plan: each task ends by the clock after a time drawn from its person's ask's
    `seconds`, × `scale`; successfully, but for the persons in `failing` (Kie's failure then)."""
    rng = random.Random(seed)

    def plan(body: dict[str, Any]) -> TaskPlan:
        n = person_in(body)
        assert n is not None, f"a create with no crowd prompt: {body}"
        low, high = ask_of(n, asks).seconds
        return TaskPlan(outcome="fail" if n in failing else "success",
                        finish_after=scale * rng.uniform(low, high))

    return plan


def deliveries(tg: FakeTelegram, chat_id: int) -> list[Call]:
    """The successful calls that put a result into this chat, in order."""
    return [c for method in MEDIA_METHODS for c in tg.calls_of(method)
            if c.ok and c.params.get("chat_id") == chat_id]


async def crowd(tg: FakeTelegram, kie: FakeKie, store: Store, people: int, timeout: float = 120,
                asks: Sequence[Ask] = (SEEDREAM,)) -> CrowdResult:
    """`people` users open a picker each and pick a model (person n: asks[n % len(asks)]),
    then all press ✅ at once; wait until each one's generation is delivered (its result sent by
    the ask's method) or refunded, as the bot's database (`store`) says."""
    assert asks, "at least one ask"
    persons = [Person(tg, crowd_user_id(n), f"User{n}") for n in range(people)]
    wants = [ask_of(n, asks) for n in range(people)]
    pickers = await asyncio.gather(*(p.ask(f"{ask.command} {prompt_of(n, ask)}")
                                     for n, (p, ask) in enumerate(zip(persons, wants, strict=True))))
    await asyncio.gather(*(p.press(picker, ask.button)
                           for p, ask, (_, picker) in zip(persons, wants, pickers, strict=True)))
    before = len(kie.requests)
    started = asyncio.get_running_loop().time()
    for person, (_, picker) in zip(persons, pickers, strict=True):
        refreshed = person.refreshed(picker)
        tg.press(person.user, refreshed, button(refreshed, "✅"))
    await _wait_until_settled(tg, store, persons, wants, timeout)
    seconds = asyncio.get_running_loop().time() - started

    requests = kie.requests[before:]
    by_ask, unattributed = _attribute(kie, requests, wants, asks)
    unsettled = await _settle(tg, store, persons, wants, by_ask)
    sent = [c for p in persons for c in deliveries(tg, p.id)]
    return CrowdResult(
        people=people, delivered=sum(s.delivered for s in by_ask.values()),
        kie_requests=len(requests), kie_429=kie.rate_limited, max_in_window=kie.max_in_window(),
        seconds=seconds, success_to_send=_latencies(kie, sent), by_ask=by_ask,
        rate_limit=kie.rate_limit, window=kie.window,
        peak_per_key={key_id(SecretStr(key)): peak for key, peak in kie.peak_per_key().items()},
        by_api=kie.calls_per_api(requests),
        unsettled=unsettled, unattributed=unattributed)


async def _wait_until_settled(tg: FakeTelegram, store: Store, persons: list[Person],
                              wants: list[Ask], timeout: float) -> None:
    """Until each person's generation has ended (delivered, refunded or undeliverable), a
    delivered one's result by the method its ask expects."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ended = {g.user_id: g.state for g in await store.generations_in(FINAL_STATES)}
        waiting = [p.id for p, ask in zip(persons, wants, strict=True)
                   if p.id not in ended or (ended[p.id] == GenerationState.DELIVERED and not any(
                       c.method == ask.method for c in deliveries(tg, p.id)))]
        if not waiting:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"after {timeout}s, {len(waiting)} of {len(persons)} people still "
                                 f"wait for their result (users {waiting[:10]}...)\n{tg.summary()}")
        await asyncio.sleep(0.05)


async def _settle(tg: FakeTelegram, store: Store, persons: list[Person], wants: list[Ask],
                  by_ask: dict[str, AskStats]) -> list[str]:
    """Count each person's generation as started, delivered or refunded; say what is wrong with
    any that was not started once and then delivered once (its result sent once, no refund) or
    refunded once (nothing sent)."""
    wrong: list[str] = []
    for person, ask in zip(persons, wants, strict=True):
        stats = by_ask[ask.name]
        generations = await store.generations_of(person.id, limit=10)
        stats.started += len(generations)
        ledger = await store.ledger(person.id, 100)
        sent = methods_used(tg, person.id)
        for g in generations:
            refunds = sum(1 for r in ledger if r.kind == LedgerKind.REFUND and r.generation_id == g.id)
            stats.delivered += g.state == GenerationState.DELIVERED
            stats.refunded += refunds > 0
            if g.state == GenerationState.DELIVERED and (refunds or sent != {ask.method: 1}):
                wrong.append(f"user {person.id} ({ask.name}): delivered by {dict(sent)}, "
                             f"{refunds} refunds")
            elif g.state == GenerationState.FAILED and (refunds != 1 or sent):
                wrong.append(f"user {person.id} ({ask.name}): failed with {refunds} refunds, "
                             f"sent {dict(sent)}")
            elif g.state not in (GenerationState.DELIVERED, GenerationState.FAILED):
                wrong.append(f"user {person.id} ({ask.name}): {g.state}")
        if len(generations) != 1:
            wrong.append(f"user {person.id} ({ask.name}): {len(generations)} generations")
    return wrong


def _attribute(kie: FakeKie, requests: list[Req], wants: list[Ask],
               asks: Sequence[Ask]) -> tuple[dict[str, AskStats], int]:
    """Split Kie's requests by ask, by role as the fake tells them (create, status read, other):
    a request about a task by the person its prompt names; a create Kie refused (429) by the
    prompt in its body. Two asks of one name share a line."""
    by_ask = {ask.name: AskStats(ask.api) for ask in asks}
    for ask in wants:
        by_ask[ask.name].people += 1
    unattributed = 0
    for req in requests:
        task = kie.tasks.get(req.task_id) if req.task_id else None
        n = person_in(task.body if task else req.body if req.role == "create" else None)
        if n is None or n >= len(wants):
            unattributed += 1
            continue
        stats = by_ask[wants[n].name]
        stats.creates += req.role == "create"
        stats.reads += req.role == "read"
        stats.other += req.role == "other"
        stats.kie_429 += req.status == 429
    return by_ask, unattributed


def _latencies(kie: FakeKie, sent: list[Call]) -> list[float]:
    """Per delivered task: its last status read (the success answer) → the call delivering it."""
    reads: dict[str, float] = {}
    for req in kie.requests:
        if req.role == "read" and req.task_id:
            reads[req.task_id] = req.time
    latencies = []
    for task_id, read in reads.items():
        times = [c.time for c in sent if task_id in str(c.params)]
        if times:
            latencies.append(min(times) - read)
    return latencies


def methods_used(tg: FakeTelegram, chat_id: int) -> Counter[str]:
    """How many times each media method reached this chat."""
    return Counter(c.method for c in deliveries(tg, chat_id))
