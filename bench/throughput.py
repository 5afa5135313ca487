"""Benchmark: sustained generations per second against Kie's ceiling, polling only and with
callbacks, and Kie's 429 answers.

    .venv/bin/python -m bench.throughput [--users 60] [--warmup 10] [--measure 40] [--scale 0.1]
                                         [--keys 1,2,3]

`users` people each ask for a picture (Imagen 4, 8-20 s on Kie), wait for it and ask again, more
than Kie's budget can serve, so the bot runs at its limit. Generations delivered per second are
counted over `measure` seconds after `warmup`, and set beside the ceiling: KIE_RATE_LIMIT=20 per
window and two calls per generation (create, one read that confirms) make 10 per window,
1.0/s at Kie's real 10 s window, per key. With one key: polling only, then with callbacks; with
more keys (KIE_API_KEYS, each an account of its own on the fake), polling, with `users` people
per key.
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

from bench.driver import MODES, Client, Done, GenerationBench, Mode, generation_bench, success_to_sent
from bench.harness import SCALED, Scale, problems
from bench.report import Row, median, ms, percentile, print_report
from tests.load import IMAGEN

TIMEOUT = 120.0  # seconds one generation may take before the person gives up


@dataclass
class Sustained:
    mode: Mode
    scale: Scale
    keys: int
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
    def ceiling(self) -> float:
        return self.scale.ceiling * self.keys

    @property
    def share(self) -> float:
        return self.per_second / self.ceiling

    @property
    def name(self) -> str:
        return self.mode if self.keys == 1 else f"{self.mode}, {self.keys} keys"


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
                    measure: float, *, keys: int = 1) -> Sustained:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder), keys) as bench:
            begin = time.monotonic() + warmup
            end = begin + measure
            failed: list[int] = []
            runs = await asyncio.gather(*(keep_asking(bench.client(n, TIMEOUT), end, failed)
                                          for n in range(users)))
            return _measured(bench, [d for run in runs for d in run], begin, end, len(failed),
                             keys=keys)


def _measured(bench: GenerationBench, done: list[Done], begin: float, end: float,
              failed: int, *, keys: int) -> Sustained:
    within = [d for d in done if begin <= d.media.time < end]
    return Sustained(
        mode=bench.mode, scale=bench.scale, keys=keys, measure=end - begin, delivered=len(within),
        requests=sum(1 for r in bench.kie.requests if begin <= r.time < end),
        rate_limited=bench.kie.rate_limited, failed=failed,
        latencies=success_to_sent(bench.kie, within), problems=problems(bench.child.output()))


def rows(results: list[Sustained]) -> list[Row]:
    out: list[Row] = []
    for r in results:
        scale = r.scale
        goal, met = ("the ceiling", None) if r.keys == 1 else ("≥ 0.9/s per key", r.share >= 0.9)
        out.append(Row(
            f"Generations per second, {r.name} (images, {scale.window:g} s window)",
            f"{r.per_second:.2f}/s = {100 * r.share:.0f} % of the ceiling "
            f"(= {scale.real(r.per_second):.2f}/s at Kie's 10 s window)",
            f"ceiling {r.ceiling:g}/s (= {scale.real(r.ceiling):g}/s at 10 s)", goal, met))
        out.append(Row(f"Kie requests per generation at that rate, {r.name}",
                       f"{r.requests / max(r.delivered, 1):.2f}", "floor 2 (create + 1 read)"))
        out.append(Row(f"Kie 429 answers, {r.name}", str(r.rate_limited), "", "0",
                       r.rate_limited == 0))
        out.append(Row(f"Kie success → result sent at that rate, {r.name}",
                       f"p50 {ms(median(r.latencies))}, p95 {ms(percentile(r.latencies, 0.95))}",
                       "", "(context: at the limit, scaled time)"))
    return out


def notes(results: list[Sustained], users: int) -> list[str]:
    scale = results[0].scale
    lines = [scale.describe(),
             f"{users} people (per key) ask for one picture after another (Imagen 4, "
             f"{scale(8):g}-{scale(20):g} s on Kie); counted over {results[0].measure:g} s after "
             "a warm-up."]
    for r in results:
        lines.append(f"{r.name}: {r.delivered} delivered in {r.measure:g} s, {r.requests} Kie "
                     f"requests, {r.failed} never delivered, {len(r.problems)} error lines in the "
                     "bot's log")
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines


async def run(users: int = 60, warmup: float = 10.0, measure: float = 40.0,
              scale: Scale = SCALED, keys: Sequence[int] = (1, 2, 3)) -> tuple[list[str], list[Row]]:
    runs: list[tuple[Mode, int]] = [(mode, 1) for mode in MODES if 1 in keys]
    runs += [("polling", n) for n in keys if n > 1]
    results = []
    for mode, n in runs:
        print(f"throughput: {mode}, {n} key(s)…", file=sys.stderr)
        results.append(await sustained(mode, scale, users * n, warmup, measure, keys=n))
    return notes(results, users), rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before counting")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds counted")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (0.1: 1 s window)")
    parser.add_argument("--keys", default="1,2,3", help="numbers of Kie keys to run with")
    args = parser.parse_args()
    keys = [int(n) for n in args.keys.split(",")]
    lines, table = asyncio.run(run(args.users, args.warmup, args.measure, Scale(args.scale), keys))
    print_report("Throughput", lines, table)


if __name__ == "__main__":
    main()
