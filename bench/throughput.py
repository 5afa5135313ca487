"""Benchmark: sustained generations per second against Kie's ceiling, polling only and with
callbacks, and Kie's 429 answers.

    .venv/bin/python -m bench.throughput [--users 60] [--warmup 10] [--measure 40] [--scale 0.1]

`users` people each ask for a picture (Imagen 4, 8-20 s on Kie), wait for it and ask again, more
than Kie's budget can serve, so the bot runs at its limit. Generations delivered per second are
counted over `measure` seconds after `warmup`, and set beside the ceiling: KIE_RATE_LIMIT=20 per
window and two calls per generation (create, one read that confirms) make 10 per window,
1.0/s at Kie's real 10 s window.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.driver import MODES, Client, Done, GenerationBench, Mode, generation_bench, success_to_sent
from bench.harness import SCALED, Scale, problems
from bench.report import Row, median, ms, percentile, print_report
from tests.load import IMAGEN

TIMEOUT = 120.0  # seconds one generation may take before the person gives up


@dataclass
class Sustained:
    mode: Mode
    scale: Scale
    measure: float
    delivered: int  # results sent within the measured span
    requests: int  # Kie requests within it
    rate_limited: int  # Kie 429 answers, the whole run
    failed: int  # generations that never came (timeouts, refusals)
    latencies: list[float]  # Kie's end of task → result sent, within the span
    problems: list[str]

    @property
    def per_second(self) -> float:
        return self.delivered / self.measure

    @property
    def share(self) -> float:
        return self.per_second / self.scale.ceiling


async def keep_asking(client: Client, until: float, failed: list[int]) -> list[Done]:
    """Ask for one picture after another until `until`."""
    done: list[Done] = []
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            done.append(await client.generate(IMAGEN, f"sustained {client.id}-{n}"))
        except TimeoutError:
            failed.append(client.id)
    return done


async def sustained(mode: Mode, scale: Scale, users: int, warmup: float,
                    measure: float) -> Sustained:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder)) as bench:
            begin = time.monotonic() + warmup
            end = begin + measure
            failed: list[int] = []
            runs = await asyncio.gather(*(keep_asking(bench.client(n, TIMEOUT), end, failed)
                                          for n in range(users)))
            return _measured(bench, [d for run in runs for d in run], begin, end, len(failed))


def _measured(bench: GenerationBench, done: list[Done], begin: float, end: float,
              failed: int) -> Sustained:
    within = [d for d in done if begin <= d.media.time < end]
    return Sustained(
        mode=bench.mode, scale=bench.scale, measure=end - begin, delivered=len(within),
        requests=sum(1 for r in bench.kie.requests if begin <= r.time < end),
        rate_limited=bench.kie.rate_limited, failed=failed,
        latencies=success_to_sent(bench.kie, within), problems=problems(bench.child.output()))


def rows(results: list[Sustained]) -> list[Row]:
    out: list[Row] = []
    for r in results:
        scale = r.scale
        out.append(Row(
            f"Generations per second, {r.mode} (images, {scale.window:g} s window)",
            f"{r.per_second:.2f}/s = {100 * r.share:.0f} % of the ceiling "
            f"(= {scale.real(r.per_second):.2f}/s at Kie's 10 s window)",
            f"ceiling {scale.ceiling:g}/s (= {scale.real(scale.ceiling):g}/s at 10 s)",
            "the ceiling"))
        out.append(Row(f"Kie requests per generation at that rate, {r.mode}",
                       f"{r.requests / max(r.delivered, 1):.2f}", "floor 2 (create + 1 read)"))
        out.append(Row(f"Kie 429 answers, {r.mode}", str(r.rate_limited), "", "0",
                       r.rate_limited == 0))
        out.append(Row(f"Kie success → result sent at that rate, {r.mode}",
                       f"p50 {ms(median(r.latencies))}, p95 {ms(percentile(r.latencies, 0.95))}",
                       "", "(context: at the limit, scaled time)"))
    return out


def notes(results: list[Sustained], users: int) -> list[str]:
    scale = results[0].scale
    lines = [scale.describe(),
             f"{users} people ask for one picture after another (Imagen 4, "
             f"{scale(8):g}-{scale(20):g} s on Kie); counted over {results[0].measure:g} s after "
             "a warm-up."]
    for r in results:
        lines.append(f"{r.mode}: {r.delivered} delivered in {r.measure:g} s, {r.requests} Kie "
                     f"requests, {r.failed} never delivered, {len(r.problems)} error lines in the "
                     "bot's log")
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines


async def run(users: int = 60, warmup: float = 10.0, measure: float = 40.0,
              scale: Scale = SCALED) -> tuple[list[str], list[Row]]:
    results = []
    for mode in MODES:
        print(f"throughput: {mode}…", file=sys.stderr)
        results.append(await sustained(mode, scale, users, warmup, measure))
    return notes(results, users), rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before counting")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds counted")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (0.1: 1 s window)")
    args = parser.parse_args()
    lines, table = asyncio.run(run(args.users, args.warmup, args.measure, Scale(args.scale)))
    print_report("Throughput", lines, table)


if __name__ == "__main__":
    main()
