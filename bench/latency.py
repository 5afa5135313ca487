"""Benchmark: Kie success → result sent, p50/p95, polling only and with callbacks, in real time.

    .venv/bin/python -m bench.latency [--people 20] [--arrivals 0.25] [--scale 1.0]

The time from a task's end on Kie to the result reaching the Bot API is made of waits (the next
poll, a slot in Kie's window) and of work (the read, the download, the upload); a scaled clock
would shrink only the waits, so this one runs at Kie's real pace by default: its 10 s window,
pictures taking 8-20 s, the catalog's own poll intervals. People arrive at `arrivals` per second
(a quarter of the 1.0/s ceiling), each asking for one picture (Imagen 4).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.driver import MODES, Done, GenerationBench, Mode, generation_bench, success_to_sent
from bench.harness import REAL_TIME, Scale, problems
from bench.report import Row, median, ms, percentile, print_report
from testkit.load import IMAGEN

TIMEOUT = 300.0
GOAL_P95 = 1.0  # seconds, with callbacks


@dataclass
class Latency:
    mode: Mode
    seconds: list[float]
    failed: int
    problems: list[str]


async def arrive(bench: GenerationBench, n: int, arrivals: float) -> Done:
    await asyncio.sleep(n / arrivals)
    return await bench.client(n, TIMEOUT).generate(IMAGEN, f"latency {n}")


async def latency(mode: Mode, scale: Scale, people: int, arrivals: float) -> Latency:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder)) as bench:
            outcomes = await asyncio.gather(*(arrive(bench, n, arrivals) for n in range(people)),
                                            return_exceptions=True)
            done = [o for o in outcomes if isinstance(o, Done)]
            failed = [o for o in outcomes if not isinstance(o, Done)]
            if any(not isinstance(e, TimeoutError) for e in failed):
                raise next(e for e in failed if not isinstance(e, TimeoutError))
            return Latency(mode, success_to_sent(bench.kie, done), len(failed),
                           problems(bench.child.output()))


def rows(results: list[Latency], scale: Scale) -> list[Row]:
    out = []
    for r in results:
        p95 = percentile(r.seconds, 0.95)
        goal = r.mode == "callbacks"
        out.append(Row(
            f"Kie success → result sent, {r.mode} (images, {scale.window:g} s window)",
            f"p50 {ms(median(r.seconds))}, p95 {ms(p95)} (max {ms(max(r.seconds, default=0))})",
            "", f"p95 ≤ {ms(GOAL_P95)}" if goal else "",
            p95 <= GOAL_P95 if goal else None))
    return out


def notes(results: list[Latency], scale: Scale, people: int, arrivals: float) -> list[str]:
    lines = [scale.describe() if scale.factor != 1 else
             "Real time: Kie's 10 s window, the catalog's poll intervals, tasks of 8-20 s.",
             f"{people} people arrive at {arrivals:g}/s, one picture each (Imagen 4); measured "
             "from the moment the task ended on Kie to the result's arrival at the Bot API."]
    for r in results:
        lines.append(f"{r.mode}: {len(r.seconds)} delivered, {r.failed} never delivered, "
                     f"{len(r.problems)} error lines in the bot's log")
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines


async def run(people: int = 20, arrivals: float = 0.25,
              scale: Scale = REAL_TIME) -> tuple[list[str], list[Row]]:
    results = []
    for mode in MODES:
        print(f"latency: {mode}…", file=sys.stderr)
        results.append(await latency(mode, scale, people, arrivals))
    return notes(results, scale, people, arrivals), rows(results, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--arrivals", type=float, default=0.25, help="people per second")
    parser.add_argument("--scale", type=float, default=1.0, help="time scale (1: Kie's pace)")
    args = parser.parse_args()
    lines, table = asyncio.run(run(args.people, args.arrivals, Scale(args.scale)))
    print_report("Kie success → result sent", lines, table)


if __name__ == "__main__":
    main()
