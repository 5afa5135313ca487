"""The crowd scenario shared by the load test and the benchmark: many people confirm at once.

Each person asks for one thing (`Ask`): by default everyone a Seedream picture; with `asks`
several, person n asks for asks[n % len(asks)], so pictures, videos, songs and speech compete
for Kie's one budget. The result counts, per ask, what was delivered and what it cost in Kie
requests: the creates, the status reads (Suno's own endpoints included) and any other call
that names the task.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.catalog import Model, get_model
from testkit.chat import Person, button
from testkit.fakes.kie import FakeKie, Req
from testkit.fakes.telegram import Call, FakeTelegram

# Every Bot API method that can carry a result into a chat.
MEDIA_METHODS = ("sendPhoto", "sendVideo", "sendAudio", "sendMediaGroup", "sendDocument",
                 "sendVoice", "sendAnimation")
FIRST_USER_ID = 10_000


@dataclass(frozen=True)
class Ask:
    """What one person asks for: a command, the model picked in its picker (a catalog id) and
    the Bot API method that brings the result back."""

    name: str       # how the report calls it: image, video, song, speech
    command: str    # the picker's command, e.g. /music
    model: str      # bot.catalog model id
    method: str     # sendPhoto | sendVideo | sendAudio | sendMediaGroup (several files)

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


SEEDREAM = Ask("image", "/image", "seedream", "sendPhoto")
IMAGEN = Ask("image", "/image", "imagen4", "sendPhoto")
WAN = Ask("video", "/video", "wan", "sendVideo")
SUNO = Ask("song", "/music", "suno", "sendMediaGroup")  # two tracks: one album
SPEECH = Ask("speech", "/music", "tts", "sendAudio")
MIXED = (IMAGEN, WAN, SUNO, SPEECH)


@dataclass
class AskStats:
    """One ask's share of the crowd."""

    people: int = 0
    delivered: int = 0  # people who got the result by the ask's method
    creates: int = 0  # create requests (createTask, Suno's generate), 429s included
    reads: int = 0  # status reads (recordInfo, Suno's record-info), 429s included
    other: int = 0  # other calls naming one of its tasks (download-url)
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
    by_ask: dict[str, AskStats] = field(default_factory=dict)
    unattributed: int = 0  # Kie requests naming no task (e.g. the credit balance)

    def report(self) -> str:
        """One line per ask: people, delivered, Kie requests per delivered generation."""
        lines = [f"{self.people} users: {self.kie_requests} Kie requests "
                 f"({self.kie_requests / max(self.delivered, 1):.2f} per delivery) in "
                 f"{self.seconds:.1f}s; {self.kie_429} × 429, at most {self.max_in_window} "
                 f"in a window"]
        for name, s in self.by_ask.items():
            lines.append(f"  {name:<7} {s.delivered:>3}/{s.people:<3} delivered  "
                         f"{s.requests:>4} requests = {s.creates} creates + {s.reads} reads"
                         f" + {s.other} other  →  {s.per_delivery:.2f} per delivery")
        if self.unattributed:
            lines.append(f"  {self.unattributed} requests named no task")
        return "\n".join(lines)


def crowd_user_id(n: int) -> int:
    return FIRST_USER_ID + n


def ask_of(n: int, asks: Sequence[Ask]) -> Ask:
    """What person n asks for."""
    return asks[n % len(asks)]


def deliveries(tg: FakeTelegram, chat_id: int) -> list[Call]:
    """The successful calls that put a result into this chat, in order."""
    return [c for method in MEDIA_METHODS for c in tg.calls_of(method)
            if c.ok and c.params.get("chat_id") == chat_id]


async def crowd(tg: FakeTelegram, kie: FakeKie, people: int, timeout: float = 120,
                asks: Sequence[Ask] = (SEEDREAM,)) -> CrowdResult:
    """`people` users open a picker each and pick a model (person n: asks[n % len(asks)]),
    then all press ✅ at once; wait until each has the result by the ask's method."""
    assert asks, "at least one ask"
    persons = [Person(tg, crowd_user_id(n), f"User{n}") for n in range(people)]
    wants = [ask_of(n, asks) for n in range(people)]
    pickers = await asyncio.gather(*(p.ask(f"{ask.command} crowd {ask.name} {n}")
                                     for n, (p, ask) in enumerate(zip(persons, wants, strict=True))))
    await asyncio.gather(*(p.press(picker, ask.button)
                           for p, ask, (_, picker) in zip(persons, wants, pickers, strict=True)))
    before = len(kie.requests)
    started = asyncio.get_running_loop().time()
    for person, (_, picker) in zip(persons, pickers, strict=True):
        refreshed = person.refreshed(picker)
        tg.press(person.user, refreshed, button(refreshed, "✅"))
    sent = await _wait_for_results(tg, persons, wants, timeout)
    seconds = asyncio.get_running_loop().time() - started

    requests = kie.requests[before:]
    by_ask, unattributed = _attribute(kie, requests, wants, asks)
    for ask, calls in zip(wants, sent, strict=True):
        by_ask[ask.name].delivered += any(c.method == ask.method for c in calls)
    return CrowdResult(
        people=people, delivered=sum(s.delivered for s in by_ask.values()),
        kie_requests=len(requests), kie_429=kie.rate_limited, max_in_window=kie.max_in_window(),
        seconds=seconds, success_to_send=_latencies(kie, [c for calls in sent for c in calls]),
        by_ask=by_ask, unattributed=unattributed)


async def _wait_for_results(tg: FakeTelegram, persons: list[Person], wants: list[Ask],
                            timeout: float) -> list[list[Call]]:
    """Each person's deliveries, once every person has one by the method their ask expects."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        sent = [deliveries(tg, p.id) for p in persons]
        waiting = [p.id for p, ask, calls in zip(persons, wants, sent, strict=True)
                   if not any(c.method == ask.method for c in calls)]
        if not waiting:
            return sent
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"after {timeout}s, {len(waiting)} of {len(persons)} people still "
                                 f"wait for their result (users {waiting[:10]}...)\n{tg.summary()}")
        await asyncio.sleep(0.02)


def _attribute(kie: FakeKie, requests: list[Req], wants: list[Ask],
               asks: Sequence[Ask]) -> tuple[dict[str, AskStats], int]:
    """Split Kie's requests by ask: a create by the model in its body, a read (or any call)
    by the task id it names. Two asks of one name share a line."""
    by_ask = {ask.name: AskStats() for ask in asks}
    for ask in wants:
        by_ask[ask.name].people += 1
    by_kie_model = {ask.kie_model: ask.name for ask in asks}
    unattributed = 0
    for req in requests:
        task_id = _task_named(kie, req)
        model = kie.tasks[task_id].model if task_id else _created_model(req)
        name = by_kie_model.get(model or "")
        if name is None:
            unattributed += 1
            continue
        stats = by_ask[name]
        if task_id is None:
            stats.creates += 1
        elif "taskId" in req.query:
            stats.reads += 1
        else:
            stats.other += 1
        stats.kie_429 += req.status == 429
    return by_ask, unattributed


def _task_named(kie: FakeKie, req: Req) -> str | None:
    """The task a request is about: a status read's taskId, or a result URL in its body."""
    task_id = req.query.get("taskId")
    if task_id in kie.tasks:
        return task_id
    url = req.body.get("url") if isinstance(req.body, dict) else None
    if isinstance(url, str):  # download-url: {"url": ".../files/<task id>/<name>"}
        parts = urllib.parse.urlsplit(url).path.split("/")
        if len(parts) > 2 and parts[-2] in kie.tasks:
            return parts[-2]
    return None


def _created_model(req: Req) -> str | None:
    if req.method == "POST" and isinstance(req.body, dict) and req.path.endswith(
            ("/jobs/createTask", "/v1/generate")):
        model = req.body.get("model")
        return model if isinstance(model, str) else None
    return None


def _latencies(kie: FakeKie, sent: list[Call]) -> list[float]:
    """Per delivered task: its last status read (the success answer) → the call delivering it."""
    reads: dict[str, float] = {}
    for req in kie.requests:
        task_id = req.query.get("taskId")
        if task_id:
            reads[task_id] = req.time
    latencies = []
    for task_id, read in reads.items():
        times = [c.time for c in sent if task_id in str(c.params)]
        if times:
            latencies.append(min(times) - read)
    return latencies


def methods_used(tg: FakeTelegram, chat_id: int) -> Counter[str]:
    """How many times each media method reached this chat."""
    return Counter(c.method for c in deliveries(tg, chat_id))
