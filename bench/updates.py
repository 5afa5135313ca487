"""Benchmark: updates handled per second — /balance, and presses in a picker — by the real bot
(`python -m bot`) beside a bare aiogram bot answering each update with one message, on the same
fake Bot API.

    .venv/bin/python -m bench.updates [--users 300] [--messages 8] [--pressers 200] [--presses 16]

Every update of a flood is queued at once; the rate is updates / (the last answer's arrival −
the moment they were queued). An update is answered when its answer reaches the Bot API: the
/balance reply (bare bot: its message), answerCallbackQuery after the picker's edit (bare bot:
its message). Each person stays within the bot's flood limits (10 messages, 20 presses at once),
and is registered before the flood, as the people who use a bot mostly are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.driver import Client, Watcher
from bench.harness import BARE_BOT, BOT, Child, bot_env, database, fakes, problems, profiled, start
from bench.report import Row, print_report
from bot.store import Store
from testkit.chat import buttons
from testkit.fakes.telegram import Call, FakeTelegram

# Of the bare bot's rate (issue 28). A press answers the query and edits the picker: two Bot API
# calls where the bare bot makes one.
GOALS = {"/balance": 0.8, "picker presses": 0.5}
Message = dict[str, Any]
FIRST_USER = 70_000
ROUNDS = 2
WARMUP = 20  # /balance updates before any flood: the first ones load what is loaded lazily


@dataclass
class Flood:
    updates: int
    seconds: float  # queued → last answer
    bot_cpu: float  # CPU seconds the bot's process used meanwhile
    fake_cpu: float  # CPU seconds this process (the fakes) used meanwhile

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds


@dataclass
class Floods:
    balance: Flood
    presses: Flood
    rss_mb: float  # the bot process's memory after both floods
    problems: list[str]


@dataclass(frozen=True)
class Workload:
    users: int
    messages: int  # /balance per user
    pressers: int
    presses: int  # presses per presser

    def people(self) -> range:
        return range(self.users + self.pressers)


# Floods of a few seconds each: shorter ones (a second) swung by a third from run to run.
DEFAULT = Workload(users=300, messages=8, pressers=200, presses=16)


async def flood(tg: FakeTelegram, child: Child, queue: Callable[[], int],
                answers: Callable[[Call], bool]) -> Flood:
    """Queue a flood at once (queue() returns how many updates), wait for as many answers."""
    since, bot_cpu, fake_cpu = len(tg.calls), child.cpu_seconds(), time.process_time()
    # The clock starts once everything is queued: the fake answers no getUpdates before (it runs
    # on this thread), and queueing a press (deep copies of its picker) is this process's work.
    wanted = queue()
    queued = time.monotonic()
    seen, answered = since, 0
    while True:
        calls = tg.calls
        for call in calls[seen:]:
            answered += call.ok and answers(call)
            if answered == wanted:
                return Flood(wanted, call.time - queued, child.cpu_seconds() - bot_cpu,
                             time.process_time() - fake_cpu)
        seen = len(calls)
        child.check_alive()
        await asyncio.sleep(0.002)


def is_message(call: Call) -> bool:
    return call.method == "sendMessage"


def is_press_answer(call: Call) -> bool:
    return call.method == "answerCallbackQuery"


async def register(path: Path, workload: Workload) -> None:
    """Everyone of the workload is a known user already (not a first visit)."""
    store = await Store.open(path)
    try:
        for n in workload.people():
            await store.upsert_user(FIRST_USER + n, username=None, first_name=f"Bench{n}",
                                    last_name=None, tg_language="en", starting_credits=100)
    finally:
        await store.close()


async def run_bot(module: str, workload: Workload, profile: Path | None = None) -> Floods:
    """The floods through one bot; `profile`: py-spy's samples of each flood into
    <profile>-balance.txt and <profile>-presses.txt."""
    real = module == BOT
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        async with fakes(window=10.0) as (tg, kie):
            if real:
                await register(database(folder), workload)
            child, _ = await start(module, bot_env(folder, tg, kie), folder, tg)
            try:
                async with Watcher(tg) as watcher:
                    warmup = [Client(tg, watcher, FIRST_USER - 1 - n, 30.0) for n in range(WARMUP)]
                    clients = [Client(tg, watcher, FIRST_USER + n, 30.0) for n in workload.people()]
                    await flood(tg, child, lambda: balances(tg, warmup, 1), is_message)
                    async with profiled(child, _named(profile, "balance")):
                        balance = await flood(tg, child, lambda: balances(
                            tg, clients[:workload.users], workload.messages), is_message)
                    pressers = clients[workload.users:]
                    queue = await (pickers(tg, pressers, workload.presses) if real
                                   else bare_targets(tg, child, pressers, workload.presses))
                    async with profiled(child, _named(profile, "presses")):
                        presses = await flood(tg, child, queue,
                                              is_press_answer if real else is_message)
                    rss = child.rss_mb()
            finally:
                await child.stop()
            return Floods(balance, presses, rss, problems(child.output()))


def _named(profile: Path | None, flood: str) -> Path | None:
    return None if profile is None else profile.with_name(f"{profile.name}-{flood}.txt")


def balances(tg: FakeTelegram, clients: list[Client], each: int) -> int:
    for _ in range(each):
        for client in clients:
            tg.send_message(client.user, "/balance")
    return len(clients) * each


async def pickers(tg: FakeTelegram, clients: list[Client], each: int) -> Callable[[], int]:
    """Open a picture picker for each client; the flood presses its first two models in turn."""
    opened = await asyncio.gather(*(c.ask(f"/image flood {c.id}") for c in clients))
    models = [model_buttons(picker)[:2] for picker in opened]

    def queue() -> int:
        for k in range(each):
            for client, picker, pair in zip(clients, opened, models, strict=True):
                tg.press(client.user, picker, pair[k % 2])
        return len(clients) * each

    return queue


async def bare_targets(tg: FakeTelegram, child: Child, clients: list[Client],
                       each: int) -> Callable[[], int]:
    """The bare bot has no picker: the presses land on the message each person sent (and the
    bare bot answered, before the flood)."""
    messages: list[Message] = []

    def send() -> int:
        messages.extend(tg.send_message(c.user, f"/image flood {c.id}") for c in clients)
        return len(clients)

    await flood(tg, child, send, is_message)

    def queue() -> int:
        for k in range(each):
            for client, message in zip(clients, messages, strict=True):
                tg.press(client.user, message, f"pk:{k % 2}")
        return len(clients) * each

    return queue


def model_buttons(picker: Message) -> list[str]:
    """The callback data of a picker's model buttons (Pick act "m"), in order."""
    return [b["callback_data"] for b in buttons(picker) if ":m:" in b.get("callback_data", "")]


def rows(bot: Floods, bare: Floods) -> list[Row]:
    out = []
    for what, mine, theirs in (("/balance", bot.balance, bare.balance),
                               ("picker presses", bot.presses, bare.presses)):
        share, goal = mine.per_second / theirs.per_second, GOALS[what]
        out.append(Row(
            f"Updates per second, {what}",
            f"{mine.per_second:.0f}/s = {100 * share:.0f} % of the bare bot "
            f"({1000 * mine.bot_cpu / mine.updates:.1f} ms CPU each)",
            f"bare aiogram bot {theirs.per_second:.0f}/s "
            f"({1000 * theirs.bot_cpu / theirs.updates:.1f} ms CPU each)",
            f"≥ {100 * goal:.0f} %", share >= goal))
    return out


def notes(bot: Floods, bare: Floods, workload: Workload, rounds: int) -> list[str]:
    lines = [f"/balance: {workload.users} people × {workload.messages}; presses: "
             f"{workload.pressers} people × {workload.presses} on their picker's first two "
             f"models in turn. Each bot {rounds} times, in turn; the fastest run of each flood."]
    for name, floods in (("bot", bot), ("bare", bare)):
        for what, f in (("/balance", floods.balance), ("presses", floods.presses)):
            lines.append(f"{name} {what}: {f.updates} in {f.seconds:.2f} s; bot process "
                         f"{100 * f.bot_cpu / f.seconds:.0f} % of a core, fakes' process "
                         f"{100 * f.fake_cpu / f.seconds:.0f} %")
    lines.append(f"RSS after both floods (highest run): bot {bot.rss_mb:.0f} MiB, bare "
                 f"{bare.rss_mb:.0f} MiB")
    lines.append(f"{len(bot.problems)} error lines in the bot's log")
    lines += [f"    {line}" for line in bot.problems[:5]]
    return lines


def best(runs: list[Floods]) -> Floods:
    """The least disturbed of several runs: each flood's fastest (other work on the machine
    only ever slows a run down)."""
    return Floods(max((r.balance for r in runs), key=lambda f: f.per_second),
                  max((r.presses for r in runs), key=lambda f: f.per_second),
                  max(r.rss_mb for r in runs), [line for r in runs for line in r.problems])


async def run(workload: Workload = DEFAULT, profile: Path | None = None,
              rounds: int = ROUNDS) -> tuple[list[str], list[Row]]:
    bots, bares = [], []
    for n in range(rounds):  # in turn, so that a disturbance hits both alike
        print(f"updates: the bot ({n + 1}/{rounds})…", file=sys.stderr)
        bots.append(await run_bot(BOT, workload, profile if n == 0 else None))
        print(f"updates: the bare aiogram bot ({n + 1}/{rounds})…", file=sys.stderr)
        bares.append(await run_bot(BARE_BOT, workload))
    bot, bare = best(bots), best(bares)
    return notes(bot, bare, workload, rounds), rows(bot, bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT.users, help="people sending /balance")
    parser.add_argument("--messages", type=int, default=DEFAULT.messages,
                        help="/balance per person (≤ 10)")
    parser.add_argument("--pressers", type=int, default=DEFAULT.pressers, help="people pressing")
    parser.add_argument("--presses", type=int, default=DEFAULT.presses,
                        help="presses per person (≤ 20)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs of each bot, in turn")
    parser.add_argument("--profile", type=Path, metavar="PREFIX",
                        help="py-spy the bot's floods into PREFIX-balance.txt, PREFIX-presses.txt")
    args = parser.parse_args()
    lines, table = asyncio.run(run(Workload(args.users, args.messages, args.pressers,
                                            args.presses), args.profile, args.rounds))
    print_report("Update throughput", lines, table)


if __name__ == "__main__":
    main()
