"""Benchmark: with many generations open at once, the bot process's memory beside a bare aiogram
bot's, and its CPU per minute as the open generations grow from 100 to 1000.

    .venv/bin/python -m bench.memory [--steps 100,250,500,1000] [--measure 20]

Real time and production settings (`python -m bot`, Kie's 10 s window, no KIE_POLL_* set, no
callbacks). The open generations are written into the bot's database (a user, a draft, the
charge, the Kie task id: what a confirmed picture leaves there), their tasks created on the fake
Kie.ai and never finishing; so the tracker polls them all the time, at Kie's limit (2 reads a
second), and edits their status lines. Both bots long-poll as aiogram does by default (10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.driver import Client, generation_bench
from bench.harness import (
    BARE_BOT,
    BOT,
    KIE_LIMIT,
    MAX_OPEN,
    Child,
    Scale,
    bot_env,
    database,
    fakes,
    problems,
    start,
)
from bench.report import Row, print_report
from bot.store import Store
from testkit.bot import KIE_KEY
from testkit.chat import button
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import FakeTelegram
from testkit.load import IMAGEN

RSS_GOAL = 30.0  # MiB above the bare bot's
FLAT = 0.25  # "flat": the last step's CPU per minute within ±25 % of the first step's
SETTLE = 5.0  # seconds after a start or an insert before measuring
POLL_WAIT = 10.0  # aiogram's default long-polling timeout; the fake answers that late
FIRST_USER = 90_000
PER_USER = 10  # open generations per person
DAY = 86_400.0
MODEL, KIE_MODEL, PRICE = "imagen4", "google/imagen4", 40
CHAT_SCALE = Scale(0.02)


@dataclass
class Sample:
    open: int
    rss_mb: float
    cpu_per_minute: float
    kie_reads: float  # per second
    telegram_calls: float  # per second


@dataclass
class Memory:
    bare: Sample
    idle: Sample  # the bot, nothing open
    curve: list[Sample]
    problems: list[str]
    through_chat: float | None = None  # RSS (MiB) once as many were opened through the chat


async def sample(child: Child, tg: FakeTelegram, kie: FakeKie, open_now: int,
                 seconds: float) -> Sample:
    """CPU, Kie reads and Bot API calls over `seconds`; the memory at the end."""
    cpu, reads, calls = child.cpu_seconds(), len(kie.requests), len(tg.calls)
    await asyncio.sleep(seconds)
    child.check_alive()
    return Sample(open_now, child.rss_mb(), (child.cpu_seconds() - cpu) * 60 / seconds,
                  (len(kie.requests) - reads) / seconds, (len(tg.calls) - calls) / seconds)


async def create_tasks(kie: FakeKie, count: int) -> list[str]:
    """`count` tasks on the fake Kie that never finish, made through its API with its rate limit
    lifted for the moment (their requests leave its window `kie.window` seconds later)."""
    kie.default_plan = TaskPlan(outcome="never")
    kie.rate_limit = 10**9
    limit = asyncio.Semaphore(20)
    headers = {"Authorization": f"Bearer {KIE_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def create(n: int) -> str:
            body = {"model": KIE_MODEL, "input": {"prompt": f"open {n}", "aspect_ratio": "1:1"}}
            async with limit, http.post(f"{kie.url}/api/v1/jobs/createTask", json=body) as answer:
                task_id: str = (await answer.json())["data"]["taskId"]
                return task_id

        task_ids = await asyncio.gather(*(create(n) for n in range(count)))
    kie.rate_limit = KIE_LIMIT
    return list(task_ids)


async def open_generations(path: Path, tg: FakeTelegram, task_ids: Sequence[str],
                           first: int) -> None:
    """Generations first, first+1... of PER_USER people each, running task_ids on Kie, due for
    their first read now, far from any deadline."""
    store = await Store.open(path)
    now = time.time()
    try:
        for n, task_id in enumerate(task_ids, start=first):
            user = FIRST_USER + n // PER_USER
            tg.user(user, f"Open{user}")
            await store.upsert_user(user, username=None, first_name=f"Open{user}", last_name=None,
                                    tg_language="en", starting_credits=1_000_000)
            draft = await store.create_draft(user_id=user, chat_id=user, request_message_id=None,
                                             kind="image", prompt=f"open {n}", model=MODEL,
                                             options={"ar": "1:1"})
            generation = await store.start_generation(
                draft.id, revision=draft.revision, price=PRICE, deadline_at=now + DAY,
                input={"prompt": f"open {n}", "aspect_ratio": "1:1"})
            await store.mark_submitted(generation.id, task_id, now)
    finally:
        await store.close()


async def measure(steps: Sequence[int], seconds: float) -> Memory:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        async with fakes(window=10.0) as (tg, kie):
            tg.max_poll_wait = POLL_WAIT
            task_ids = await create_tasks(kie, max(steps))
            window_clear = time.monotonic() + kie.window
            env = bot_env(folder, tg, kie)

            print("memory: the bare aiogram bot…", file=sys.stderr)
            bare = await idle(BARE_BOT, env, folder, tg, kie, seconds=seconds)
            print("memory: the bot, nothing open…", file=sys.stderr)
            empty = await idle(BOT, env, folder, tg, kie, seconds=seconds)

            await open_generations(database(folder), tg, task_ids[:steps[0]], 0)
            await asyncio.sleep(max(0.0, window_clear - time.monotonic()))
            child, _ = await start(BOT, env, folder, tg)
            curve: list[Sample] = []
            try:
                for step in steps:
                    have = curve[-1].open if curve else steps[0]
                    await open_generations(database(folder), tg, task_ids[have:step], have)
                    print(f"memory: {step} open…", file=sys.stderr)
                    await asyncio.sleep(SETTLE)
                    curve.append(await sample(child, tg, kie, step, seconds))
            finally:
                await child.stop()
            found = Memory(bare, empty, curve, problems(child.output()))
        print(f"memory: {max(steps)} opened through the chat…", file=sys.stderr)
        found.through_chat = await open_through_chat(max(steps), CHAT_SCALE)
        return found


async def open_through_chat(count: int, scale: Scale) -> float:
    """The bot's RSS (MiB) once `count` generations were asked for through the chat (each person
    confirms MAX_OPEN pictures) and are running on Kie, never finishing."""
    with tempfile.TemporaryDirectory() as name:
        async with generation_bench("polling", scale, Path(name)) as bench:
            bench.kie.plan = lambda body: TaskPlan(outcome="never")

            async def confirm(client: Client, n: int) -> None:
                picker = await client.choose(IMAGEN, f"open {client.id}-{n}")
                await asyncio.wait_for(client.press(picker, button(picker, "✅")), client.timeout)

            clients = [bench.client(n, 120.0) for n in range(-(-count // MAX_OPEN))]
            await asyncio.gather(*(confirm(c, n) for c in clients for n in range(MAX_OPEN)))
            while len(bench.kie.tasks) < count:
                bench.child.check_alive()
                await asyncio.sleep(0.1)
            await asyncio.sleep(SETTLE)
            return bench.child.rss_mb()


async def idle(module: str, env: dict[str, str], folder: Path, tg: FakeTelegram, kie: FakeKie, *,
               seconds: float) -> Sample:
    child, _ = await start(module, env, folder, tg, f"{module}-idle")
    try:
        await asyncio.sleep(SETTLE)
        return await sample(child, tg, kie, 0, seconds)
    finally:
        await child.stop()


def rows(m: Memory) -> list[Row]:
    top = m.curve[-1]
    extra = top.rss_mb - m.bare.rss_mb
    out = [Row(f"RSS with {top.open} generations open",
               f"{top.rss_mb:.0f} MiB = bare + {extra:.0f} MiB (nothing open: {m.idle.rss_mb:.0f} MiB)",
               f"bare aiogram bot {m.bare.rss_mb:.0f} MiB", f"≤ bare + {RSS_GOAL:.0f} MiB",
               extra <= RSS_GOAL)]
    if m.through_chat is not None:
        extra = m.through_chat - m.bare.rss_mb
        out.append(Row(f"RSS with {top.open} generations opened through the chat",
                       f"{m.through_chat:.0f} MiB = bare + {extra:.0f} MiB",
                       f"bare aiogram bot {m.bare.rss_mb:.0f} MiB", f"≤ bare + {RSS_GOAL:.0f} MiB",
                       extra <= RSS_GOAL))
    low = m.curve[0]
    for s in m.curve:
        last = s is m.curve[-1]
        out.append(Row(f"Tracker CPU per minute, {s.open} open",
                       f"{s.cpu_per_minute:.2f} s ({s.kie_reads:.1f} Kie reads/s, "
                       f"{1000 * s.cpu_per_minute / 60 / max(s.kie_reads, 1e-9):.1f} ms CPU each, "
                       f"{s.telegram_calls:.1f} Bot API calls/s, RSS {s.rss_mb:.0f} MiB)",
                       f"nothing open: {m.idle.cpu_per_minute:.2f} s; bare: "
                       f"{m.bare.cpu_per_minute:.2f} s",
                       f"flat: within ±{100 * FLAT:.0f} % of {low.open} open" if last else "",
                       abs(s.cpu_per_minute - low.cpu_per_minute) <= FLAT * low.cpu_per_minute
                       if last else None))
    return out


def notes(m: Memory, seconds: float) -> list[str]:
    lines = ["Real time, production settings (Kie's 10 s window, KIE_RATE_LIMIT=20, catalog poll "
             "intervals, KIE_POLL_MAX_INTERVAL=30): every open generation is due all the time, "
             "the tracker reads at Kie's limit.",
             f"CPU: the whole bot process (utime+stime of /proc/<pid>/stat) over {seconds:g} s per "
             "step, as seconds per minute; RSS: VmRSS of /proc/<pid>/status at the step's end.",
             f"RSS through the chat: people ask for pictures ({MAX_OPEN} each, the per-person "
             f"limit) and confirm them, the tasks never end; at time scale {CHAT_SCALE.factor:g} "
             f"(Kie's window {CHAT_SCALE.window:g} s) so that {KIE_LIMIT} creates per window open "
             "them in seconds.",
             f"{len(m.problems)} error lines in the bot's log"]
    return lines + [f"    {line}" for line in m.problems[:5]]


async def run(steps: Sequence[int] = (100, 250, 500, 1000),
              seconds: float = 20.0) -> tuple[list[str], list[Row]]:
    measured = await measure(steps, seconds)
    return notes(measured, seconds), rows(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,250,500,1000",
                        help="open generations at each step, growing")
    parser.add_argument("--measure", type=float, default=20.0,
                        help="seconds measured per step (a multiple of Kie's 10 s window: the "
                             "tracker reads in batches of KIE_RATE_LIMIT per window)")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]
    lines, table = asyncio.run(run(steps, args.measure))
    print_report("Memory and CPU with many generations open", lines, table)


if __name__ == "__main__":
    main()
