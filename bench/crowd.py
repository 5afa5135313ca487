"""Benchmark: 50 people confirm at once, with a model on each of Kie's APIs in the mix; prints, per
API, the generations started, delivered and refunded, the Kie requests they cost (creates, status
reads, other calls) and those per delivered generation, the Kie 429 answers (goal 0) and each
key's busiest window beside KIE_RATE_LIMIT.

    .venv/bin/python -m bench.crowd [--people 50] [--scale 0.1] [--mode polling|callbacks]

Everything runs on 127.0.0.1: the bot in its own process with the catalog's durations scaled
(bench/scaled_bot.py), between the fake Bot API and the fake Kie.ai of testkit/fakes. Each ask of
testkit/load.py's EVERY_API (market picture, video and speech, Suno, Veo, Veo 1080p, Runway, Flux
Kontext, 4o Image) takes its own realistic time on Kie, × the scale, as does Kie's window (10 s).
Without --mode, polling only, then with Kie's callbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from bench.driver import MODES, Mode, generation_bench
from bench.harness import SCALED, Scale, database, problems
from bench.report import median, ms, percentile
from bot.store import Store
from testkit.load import EVERY_API, CrowdResult, crowd, timed_plans

TIMEOUT = 600.0  # seconds of the scaled clock a person waits at most: a video takes up to 240 s


async def measure(mode: Mode, scale: Scale, people: int) -> tuple[CrowdResult, list[str]]:
    """The crowd once, against a new bot; its result and the error lines of the bot's log."""
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder)) as bench:
            bench.kie.plan = timed_plans(EVERY_API, scale.factor)
            store = await Store.open(database(Path(folder)))
            try:
                result = await crowd(bench.tg, bench.kie, store, people,
                                     timeout=scale(TIMEOUT), asks=EVERY_API)
            finally:
                await store.close()
            return result, problems(bench.child.output())


def report(mode: Mode, scale: Scale, result: CrowdResult, errors: list[str]) -> str:
    latency = result.success_to_send
    durations = ", ".join(f"{ask.name} {scale(ask.seconds[0]):g}-{scale(ask.seconds[1]):g} s"
                          for ask in EVERY_API)
    return "\n".join([
        f"## {mode}", "", scale.describe(), f"Tasks take {durations} on Kie.", "",
        result.report(),
        f"Kie success → result sent: p50 {ms(median(latency))}, p95 {ms(percentile(latency, 0.95))}"
        f" (scaled time). {len(errors)} error lines in the bot's log.",
        *(f"    {line}" for line in errors[:5])])


async def main(modes: tuple[Mode, ...], scale: Scale, people: int) -> None:
    for mode in modes:
        print(f"crowd: {mode}…", file=sys.stderr)
        result, errors = await measure(mode, scale, people)
        print(report(mode, scale, result, errors) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--scale", type=float, default=SCALED.factor,
                        help="time scale (0.1: Kie's window is 1 s)")
    parser.add_argument("--mode", choices=MODES, help="polling or callbacks (default: both)")
    args = parser.parse_args()
    asyncio.run(main((args.mode,) if args.mode else MODES, Scale(args.scale), args.people))
