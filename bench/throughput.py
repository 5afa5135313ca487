"""Benchmark: sustained generations per second against Kie's ceiling, polling only and with
callbacks, and Kie's 429 answers.

    .venv/bin/python -m bench.throughput [--users 60] [--warmup 10] [--measure 40] [--scale 0.1]
                                         [--keys 1,2,3] [--instances 2,3] [--url postgresql://…]

`users` people each ask for a picture (Imagen 4, 8-20 s on Kie), wait for it and ask again, more
than Kie's budget can serve, so the bot runs at its limit. Generations delivered per second are
counted over `measure` seconds after `warmup`, and set beside the ceiling: KIE_RATE_LIMIT=20 per
window and two calls per generation (create, one read that confirms) make 10 per window,
1.0/s at Kie's real 10 s window, per key. With one key: polling only, then with callbacks; with
more keys (KIE_API_KEYS, each an account of its own on the fake), polling, with `users` people
per key.

With `--instances N`, polling only: N bot processes share one new PostgreSQL schema (on `--url`,
TEST_DATABASE_URL, else the local server; dropped after) and the keys. The first polls Telegram,
so makes every create, within its part of each key's budget (half of it; the others share the
other half: bot.kie.ratelimit.part_of); all of them read and deliver. Counting starts once each
has had a heartbeat with all of them up. Each instance's log says what it did within the span
(creates, reads that found the result, deliveries).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.driver import (
    MODES,
    Client,
    Done,
    GenerationBench,
    Mode,
    generation_bench,
    kie_costs,
    success_to_sent,
)
from bench.harness import KIE_LIMIT, SCALED, Scale, problems
from bench.report import Row, median, ms, percentile, print_report
from bench.store_latency import where
from bot.kie.ratelimit import part_of
from testkit.databases import server_url as postgres_url
from testkit.load import IMAGEN

TIMEOUT = 120.0  # seconds one generation may take before the person gives up
# A line of the bot's log (bot/logs.py): its local time, level, logger, message.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+: (.*)$")
# The messages that say an instance did a step (generation.py, tracker.py, delivery.py).
STEPS = {"creates": re.compile(r": Kie task \S+ created$"),
         "finished": re.compile(r": Kie finished it \("),
         "delivered": re.compile(r": delivered$")}


@dataclass
class Work:
    """What one instance's log says it did within the measured span."""

    creates: int = 0
    finished: int = 0  # status reads that found the result ready
    delivered: int = 0


def work_of(log: str, begin: float, end: float) -> Work:
    """Steps logged between `begin` and `end` (time.time()): the log's clock is the wall's."""
    counts = dict.fromkeys(STEPS, 0)
    for line in log.splitlines():
        found = LOG_LINE.match(line)
        if found is None:
            continue
        at = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if begin <= at < end:
            for step, pattern in STEPS.items():
                counts[step] += bool(pattern.search(found[2]))
    return Work(**counts)


@dataclass
class Sustained:
    mode: Mode
    scale: Scale
    keys: int
    instances: int | None  # bot processes on one PostgreSQL schema (None: one, on SQLite)
    measure: float
    delivered: int  # results sent within the measured span
    requests: int  # Kie requests within it
    creates: int  # of which creates
    reads: int  # and status reads
    rate_limited: int  # Kie 429 answers, the whole run
    failed: int  # generations that never came (timeouts, refusals)
    latencies: list[float]  # Kie's end of task → result sent, within the span
    problems: list[str]
    work: list[Work]  # by instance, the poller first

    @property
    def budget(self) -> float:
        """Kie requests per second the keys allow, all instances together."""
        return KIE_LIMIT * self.keys / self.scale.window

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
        return ", ".join([self.mode] + [f"{self.keys} keys"] * (self.keys > 1)
                         + [f"{self.instances} instances"] * (self.instances is not None))


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


async def sustained(mode: Mode, scale: Scale, users: int, warmup: float, measure: float, *,
                    keys: int = 1, instances: int | None = None,
                    url: str | None = None) -> Sustained:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench(mode, scale, Path(folder), keys, instances=instances,
                                    url=url) as bench:
            begin = time.monotonic() + warmup
            end = begin + measure
            failed: list[int] = []
            runs = await asyncio.gather(*(keep_asking(bench.client(n, TIMEOUT), end, failed)
                                          for n in range(users)))
            return _measured(bench, [d for run in runs for d in run], begin, end, len(failed),
                             keys=keys, instances=instances)


def _measured(bench: GenerationBench, done: list[Done], begin: float, end: float,
              failed: int, *, keys: int, instances: int | None) -> Sustained:
    within = [d for d in done if begin <= d.media.time < end]
    requests = [r for r in bench.kie.requests if begin <= r.time < end]
    wall = time.time() - time.monotonic()  # the logs' clock
    logs = [child.output() for child in bench.children]
    costs = kie_costs(bench.kie, requests, within).values()
    return Sustained(
        mode=bench.mode, scale=bench.scale, keys=keys, instances=instances, measure=end - begin,
        delivered=len(within), requests=len(requests), creates=sum(c.creates for c in costs),
        reads=sum(c.reads for c in costs),
        rate_limited=bench.kie.rate_limited, failed=failed,
        latencies=success_to_sent(bench.kie, within),
        problems=[line for log in logs for line in problems(log)],
        work=[work_of(log, begin + wall, end + wall) for log in logs])


def rows(results: list[Sustained]) -> list[Row]:
    out: list[Row] = []
    for r in results:
        scale = r.scale
        goal, met = (("the ceiling", None) if r.keys == 1 and r.instances is None
                     else ("≥ 0.9/s per key", r.share >= 0.9))
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
        if r.instances is not None:
            out += instance_rows(r)
    return out


def instance_rows(r: Sustained) -> list[Row]:
    """Where the budget went: all of Kie's requests against the keys' budget, then each
    instance's steps against its part of it."""
    scale, span = r.scale, r.measure
    poller = part_of(KIE_LIMIT, r.instances or 1, polling=True)
    other = part_of(KIE_LIMIT, r.instances or 1, polling=False)
    split = "; ".join(
        f"{n + 1}{' (polls)' if n == 0 else ''}: {w.creates / span:.1f} creates/s, "
        f"{w.finished / span:.1f} results read/s, {w.delivered / span:.1f} sent/s"
        for n, w in enumerate(r.work))
    return [
        Row(f"Kie requests per second, {r.name}",
            f"{r.requests / span:.1f}/s = {100 * r.requests / span / r.budget:.0f} % of "
            f"the budget ({r.creates / span:.1f} creates/s, {r.reads / span:.1f} reads/s)",
            f"budget {r.budget:g}/s (KIE_RATE_LIMIT={KIE_LIMIT} per {scale.window:g} s"
            f"{f' × {r.keys} keys' if r.keys > 1 else ''})"),
        Row(f"  by instance (its log), {r.name}", split,
            f"parts per {scale.window:g} s per key: the poller's {poller}, each other's {other}"),
    ]


def notes(results: list[Sustained], users: int, url: str | None = None) -> list[str]:
    scale = results[0].scale
    lines = [scale.describe(),
             f"{users} people (per key) ask for one picture after another (Imagen 4, "
             f"{scale(8):g}-{scale(20):g} s on Kie); counted over {results[0].measure:g} s after "
             "a warm-up."]
    if any(r.instances is not None for r in results):
        lines.append(
            f"N instances: N processes of `python -m bench.scaled_bot` on one new schema of PostgreSQL "
            f"at {where(postgres_url(url))}, the same settings; the first started alone and polls "
            "(every create is its), the others stand by; the warm-up starts once each has had a "
            "heartbeat with all up (the poller spends half of KIE_RATE_LIMIT per window, the others "
            "share the other half). "
            "By instance: steps its log shows within the span (a create answered, a read that found "
            "the result, a delivery); reads that found the task still running are not logged.")
    for r in results:
        lines.append(f"{r.name}: {r.delivered} delivered in {r.measure:g} s, {r.requests} Kie "
                     f"requests, {r.failed} never delivered, {len(r.problems)} error lines in the "
                     "bot's log" + ("s" if len(r.work) > 1 else ""))
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines


async def run(users: int = 60, warmup: float = 10.0, measure: float = 40.0,
              scale: Scale = SCALED, keys: Sequence[int] = (1, 2, 3), *, instances: Sequence[int] = (),
              url: str | None = None) -> tuple[list[str], list[Row]]:
    """One bot on SQLite (the default), or, given `instances`, each number of instances on
    PostgreSQL, polling only (one KIE_CALLBACK_URL would reach one instance)."""
    runs: list[tuple[Mode, int, int | None]]
    if instances:
        runs = [("polling", k, n) for k in keys for n in instances]
    else:
        runs = [(mode, 1, None) for mode in MODES if 1 in keys]
        runs += [("polling", k, None) for k in keys if k > 1]
    results = []
    for mode, k, n in runs:
        print(f"throughput: {mode}, {k} key(s), {n or 1} instance(s)…", file=sys.stderr)
        results.append(await sustained(mode, scale, users * k, warmup, measure, keys=k,
                                       instances=n, url=url))
    return notes(results, users, url), rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before counting")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds counted")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (0.1: 1 s window)")
    parser.add_argument("--keys", default="1,2,3", help="numbers of Kie keys to run with")
    parser.add_argument("--instances", help="numbers of bot processes sharing one PostgreSQL schema "
                                            "(e.g. 2,3; polling only); default: one bot on SQLite")
    parser.add_argument("--url", help="PostgreSQL server for --instances (default: TEST_DATABASE_URL, "
                                      "else postgresql://postgres@127.0.0.1:5432/postgres)")
    args = parser.parse_args()
    keys = [int(n) for n in args.keys.split(",")]
    instances = [int(n) for n in args.instances.split(",")] if args.instances else []
    lines, table = asyncio.run(run(args.users, args.warmup, args.measure, Scale(args.scale), keys,
                                   instances=instances, url=args.url))
    print_report("Throughput", lines, table)


if __name__ == "__main__":
    main()
