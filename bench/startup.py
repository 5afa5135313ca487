"""Benchmark: process start → first getUpdates, the real bot (`python -m bot`) beside a bare
aiogram bot, started in turn on the same fake Bot API.

    .venv/bin/python -m bench.startup [--runs 7]

Each is started once before counting (the first start of a fresh clone compiles its .pyc files;
the bot's first start creates its database), then `runs` times in turn; the fastest start of each
is compared (the medians are shown too).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BARE_BOT, BOT, bot_env, fakes, start
from bench.report import Row, median, ms, print_report
from testkit.fakes.kie import FakeKie
from testkit.fakes.telegram import FakeTelegram

GOAL = 1.2  # × the bare bot's


@dataclass
class Starts:
    bot: list[float]
    bare: list[float]


async def time_start(module: str, folder: Path, tg: FakeTelegram, kie: FakeKie) -> float:
    """Seconds from making the process to its first getUpdates arriving."""
    child, poll = await start(module, bot_env(folder, tg, kie), folder, tg, module)
    await child.stop()
    return poll.time - child.started


async def starts(runs: int) -> Starts:
    measured = Starts([], [])
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        async with fakes(window=10.0) as (tg, kie):
            for module in (BOT, BARE_BOT):  # not counted
                await time_start(module, folder, tg, kie)
            for _ in range(runs):
                measured.bot.append(await time_start(BOT, folder, tg, kie))
                measured.bare.append(await time_start(BARE_BOT, folder, tg, kie))
    return measured


def rows(s: Starts) -> list[Row]:
    ratio = min(s.bot) / min(s.bare)
    return [Row("Process start → first getUpdates",
                f"{ms(min(s.bot))} = {ratio:.2f}× the bare bot (medians {ms(median(s.bot))} "
                f"vs {ms(median(s.bare))})",
                f"bare aiogram bot {ms(min(s.bare))}", f"≤ {GOAL:g}×", ratio <= GOAL)]


def notes(s: Starts) -> list[str]:
    return [f"Fastest of {len(s.bot)} starts each, in turn (other work on the machine only "
            "slows a start down); all (ms): bot "
            f"{', '.join(f'{1000 * t:.0f}' for t in s.bot)}; bare "
            f"{', '.join(f'{1000 * t:.0f}' for t in s.bare)}"]


async def run(runs: int = 7) -> tuple[list[str], list[Row]]:
    print("startup…", file=sys.stderr)
    measured = await starts(runs)
    return notes(measured), rows(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    lines, table = asyncio.run(run(args.runs))
    print_report("Start-up", lines, table)


if __name__ == "__main__":
    main()
