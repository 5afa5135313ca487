"""Benchmark: Kie requests per delivered generation, per kind (image, video, song, speech), polling
only and with callbacks.

    .venv/bin/python -m bench.kie_budget [--per-kind 12] [--arrivals 2.0] [--scale 0.1]

People arrive one after another (`arrivals` per second of the scaled clock, a fifth of the
ceiling by default: the cost of a generation, not of a queue), each asking for one thing of the
four kinds in turn; tasks take realistic times on Kie (images 8-20 s, videos 60-180 s, songs
30-90 s, speech 5-15 s, × the scale). Every Kie request is put on the kind of the task it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.driver import DURATIONS, MODES, Done, GenerationBench, KindCost, Mode, generation_bench, kie_costs
from bench.harness import SCALED, Scale, problems
from bench.report import Row, print_report
from testkit.load import MIXED

TIMEOUT = 180.0
GOALS: dict[Mode, float] = {"polling": 4.0, "callbacks": 2.2}


@dataclass
class Budget:
    mode: Mode
    costs: dict[str, KindCost]
    rate_limited: int
    failed: int
    problems: list[str]


async def arrive(bench: GenerationBench, n: int, arrivals: float) -> Done:
    """Person n comes after n / arrivals seconds and asks for MIXED[n % 4]."""
    await asyncio.sleep(n / arrivals)
    ask = MIXED[n % len(MIXED)]
    return await bench.client(n, TIMEOUT).generate(ask, f"{ask.name} budget {n}")


async def budget(mode: Mode, scale: Scale, per_kind: int, arrivals: float) -> Budget:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder)) as bench:
            outcomes = await asyncio.gather(
                *(arrive(bench, n, arrivals) for n in range(per_kind * len(MIXED))),
                return_exceptions=True)
            done = [o for o in outcomes if isinstance(o, Done)]
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if any(not isinstance(e, TimeoutError) for e in errors):
                raise next(e for e in errors if not isinstance(e, TimeoutError))
            return Budget(mode, kie_costs(bench.kie, bench.kie.requests, done),
                          bench.kie.rate_limited, len(errors), problems(bench.child.output()))


def rows(results: list[Budget]) -> list[Row]:
    out: list[Row] = []
    for r in results:
        goal = GOALS[r.mode]
        for ask in MIXED:
            cost = r.costs.get(ask.name, KindCost())
            out.append(Row(
                f"Kie requests per delivered {ask.name}, {r.mode}",
                f"{cost.per_delivery:.2f} ({cost.creates} creates + {cost.reads} reads"
                f"{f' + {cost.other} other' if cost.other else ''} / {cost.delivered})",
                "floor 2 (create + 1 read)", f"≤ {goal:g}", cost.per_delivery <= goal))
        out.append(Row(f"Kie 429 answers, {r.mode} (mixed kinds)", str(r.rate_limited), "", "0",
                       r.rate_limited == 0))
    return out


def notes(results: list[Budget], scale: Scale, per_kind: int, arrivals: float) -> list[str]:
    durations = ", ".join(f"{kind} {scale(lo):g}-{scale(hi):g} s"
                          for kind, (lo, hi) in DURATIONS.items())
    lines = [scale.describe(),
             f"{per_kind} people per kind ({', '.join(a.model for a in MIXED)}) arrive at "
             f"{arrivals:g}/s ({100 * arrivals / scale.ceiling:.0f} % of the ceiling); tasks take "
             f"{durations} on Kie."]
    for r in results:
        lines.append(f"{r.mode}: {sum(c.delivered for c in r.costs.values())} delivered, "
                     f"{r.failed} never delivered, {len(r.problems)} error lines in the bot's log")
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines


async def run(per_kind: int = 12, arrivals: float = 2.0,
              scale: Scale = SCALED) -> tuple[list[str], list[Row]]:
    results = []
    for mode in MODES:
        print(f"kie_budget: {mode}…", file=sys.stderr)
        results.append(await budget(mode, scale, per_kind, arrivals))
    return notes(results, scale, per_kind, arrivals), rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=12, help="people per kind")
    parser.add_argument("--arrivals", type=float, default=2.0, help="people per (scaled) second")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (0.1: 1 s window)")
    args = parser.parse_args()
    lines, table = asyncio.run(run(args.per_kind, args.arrivals, Scale(args.scale)))
    print_report("Kie requests per generation", lines, table)


if __name__ == "__main__":
    main()
