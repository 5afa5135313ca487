"""The crowd scenario shared by the load test and the benchmark: many people confirm at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.chat import Person, button
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram


@dataclass
class CrowdResult:
    people: int
    delivered: int
    kie_requests: int
    kie_429: int
    max_in_window: int
    seconds: float
    success_to_send: list[float]   # per task: Kie's success answer → the photo's sendPhoto


async def crowd(tg: FakeTelegram, kie: FakeKie, people: int, timeout: float = 120) -> CrowdResult:
    """`people` users open a picker each, then all press ✅ at once; wait for every photo."""
    persons = [Person(tg, 10_000 + n, f"User{n}") for n in range(people)]
    pickers = await asyncio.gather(*(p.ask(f"/image crowd picture {n}") for n, p in enumerate(persons)))
    await asyncio.gather(*(p.press(picker, "Seedream")
                           for p, (_, picker) in zip(persons, pickers, strict=True)))
    before = len(kie.requests)
    started = asyncio.get_running_loop().time()
    for person, (_, picker) in zip(persons, pickers, strict=True):
        refreshed = person.refreshed(picker)
        tg.press(person.user, refreshed, button(refreshed, "✅"))
    photos = await tg.wait_for("sendPhoto", count=people, timeout=timeout)
    seconds = asyncio.get_running_loop().time() - started
    latencies = []
    for task_id in kie.tasks:
        reads = [r for r in kie.requests if r.query.get("taskId") == task_id]
        sends = [c for c in photos if task_id in c.params["photo"]]
        if reads and sends:
            latencies.append(sends[0].time - reads[-1].time)
    return CrowdResult(
        people=people, delivered=len(photos), kie_requests=len(kie.requests) - before,
        kie_429=kie.rate_limited, max_in_window=kie.max_in_window(), seconds=seconds,
        success_to_send=latencies)
