"""Benchmark: Kie requests per delivered generation, per kind (image, video, song, speech), polling
only and with callbacks; and generations per second per key under KIE_RATE_SCOPE.

    .venv/bin/python -m bench.kie_budget [--per-kind 12] [--arrivals 2.0] [--scale 0.1]
                                         [--users 80] [--warmup 5] [--measure 20] [--scopes-only]

People arrive one after another (`arrivals` per second of the scaled clock, a fifth of the
ceiling by default: the cost of a generation, not of a queue), each asking for one thing of the
four kinds in turn; tasks take realistic times on Kie (images 8-20 s, videos 60-180 s, songs
30-90 s, speech 5-15 s, × the scale). Every Kie request is put on the kind of the task it serves.

Scopes: `users` people ask for one picture after another (as bench.throughput), one key, for
(fake Kie counting creates only, bot KIE_RATE_SCOPE=creates), (fake counting every call, bot
`all`) and the misconfigured (fake counting every call, bot `creates`): generations per second
over `measure` seconds after `warmup`, Kie's 429s by kind (create, read), and whether any
generation was lost (charged, never delivered nor refunded) or charged twice.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.driver import DURATIONS, MODES, Done, GenerationBench, KindCost, Mode, generation_bench, kie_costs
from bench.harness import SCALED, Scale, database, problems
from bench.report import Row, print_report
from bench.throughput import keep_asking
from bot.kie.budget import Scope
from bot.store import GenerationState, LedgerKind
from testkit.load import MIXED

TIMEOUT = 180.0
GOALS: dict[Mode, float] = {"polling": 4.0, "callbacks": 2.2}
# (the fake Kie's rate scope, the bot's KIE_RATE_SCOPE), and the generations per second per key
# (at Kie's 10 s window) each must reach; the misconfigured one must only be safe.
SCOPES: tuple[tuple[Scope, Scope], ...] = (("creates", "creates"), ("all", "all"), ("all", "creates"))
SCOPE_GOALS: dict[tuple[Scope, Scope], float] = {("creates", "creates"): 1.8, ("all", "all"): 0.9}


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


@dataclass
class ScopeRun:
    kie: Scope
    bot: Scope
    per_second: float  # generations delivered per second within the span, at the bench's scale
    creates_429: int
    reads_429: int
    failed: int  # people whose picture never came
    lost: int  # generations charged and neither delivered, refunded nor still open
    twice: int  # generations charged more than once
    problems: list[str]

    @property
    def name(self) -> str:
        return f"fake Kie counts {self.kie}, bot KIE_RATE_SCOPE={self.bot}"


async def scope_run(kie_scope: Scope, bot_scope: Scope, scale: Scale, *, users: int,
                    warmup: float, measure: float) -> ScopeRun:
    with tempfile.TemporaryDirectory() as folder:
        async with generation_bench("polling", scale, Path(folder), kie_scope=kie_scope,
                                    bot_scope=bot_scope) as bench:
            begin = time.monotonic() + warmup
            end = begin + measure
            failed: list[int] = []
            runs = await asyncio.gather(*(keep_asking(bench.client(n, TIMEOUT), end, failed)
                                          for n in range(users)))
            within = [d for run in runs for d in run if begin <= d.media.time < end]
            lost, twice = ledger_faults(database(Path(folder)))
            return ScopeRun(kie_scope, bot_scope, len(within) / measure,
                            bench.kie.rate_limited_by_kind["create"],
                            bench.kie.rate_limited_by_kind["read"], len(failed), lost, twice,
                            problems(bench.child.output()))


def ledger_faults(path: Path) -> tuple[int, int]:
    """(generations that failed without their refund, generations charged twice) in the bot's
    database, read beside the running bot."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        ended_badly = db.execute(
            "SELECT count(*) FROM generations g WHERE g.state = ? AND NOT EXISTS"
            " (SELECT 1 FROM ledger l WHERE l.generation_id = g.id AND l.kind = ?)",
            (GenerationState.FAILED, LedgerKind.REFUND)).fetchone()[0]
        twice = db.execute(
            "SELECT count(*) FROM (SELECT generation_id FROM ledger WHERE kind = ?"
            " GROUP BY generation_id HAVING count(*) > 1) AS t", (LedgerKind.CHARGE,)).fetchone()[0]
    return int(ended_badly), int(twice)


def scope_rows(results: list[ScopeRun], scale: Scale) -> list[Row]:
    out: list[Row] = []
    for r in results:
        goal = SCOPE_GOALS.get((r.kie, r.bot))
        real = scale.real(r.per_second)
        out.append(Row(f"Generations per second per key, {r.name}",
                       f"{r.per_second:.2f}/s (= {real:.2f}/s at Kie's 10 s window)",
                       "creates only: 2/s at 10 s; every call: 1/s",
                       f"≥ {goal:g}/s" if goal else "safe", real >= goal if goal else None))
        out.append(Row(f"Kie 429 answers to creates / reads, {r.name}",
                       f"{r.creates_429} / {r.reads_429}", "",
                       "0 / 0" if goal else "0 / bounded",
                       r.creates_429 == 0 and (r.reads_429 == 0 or goal is None)))
        out.append(Row(f"Generations lost / charged twice / never came, {r.name}",
                       f"{r.lost} / {r.twice} / {r.failed}", "", "0 / 0 / 0",
                       r.lost == r.twice == r.failed == 0))
    return out


async def run_scopes(users: int = 80, warmup: float = 5.0, measure: float = 20.0,
                     scale: Scale = SCALED) -> tuple[list[str], list[Row]]:
    results = []
    for kie_scope, bot_scope in SCOPES:
        print(f"kie_budget: fake {kie_scope}, bot {bot_scope}…", file=sys.stderr)
        results.append(await scope_run(kie_scope, bot_scope, scale, users=users, warmup=warmup,
                                       measure=measure))
    lines = [scale.describe(),
             f"{users} people ask for one picture after another (Imagen 4), one key; counted over "
             f"{measure:g} s after {warmup:g} s."]
    for r in results:
        lines.append(f"{r.name}: {len(r.problems)} error lines in the bot's log")
        lines += [f"    {line}" for line in r.problems[:5]]
    return lines, scope_rows(results, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=12, help="people per kind")
    parser.add_argument("--arrivals", type=float, default=2.0, help="people per (scaled) second")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (0.1: 1 s window)")
    parser.add_argument("--users", type=int, default=80, help="people asking, for the scopes")
    parser.add_argument("--warmup", type=float, default=5.0, help="scopes: seconds before counting")
    parser.add_argument("--measure", type=float, default=20.0, help="scopes: seconds counted")
    parser.add_argument("--scopes-only", action="store_true", help="only the KIE_RATE_SCOPE runs")
    args = parser.parse_args()
    scale = Scale(args.scale)
    if not args.scopes_only:
        lines, table = asyncio.run(run(args.per_kind, args.arrivals, scale))
        print_report("Kie requests per generation", lines, table)
    lines, table = asyncio.run(run_scopes(args.users, args.warmup, args.measure, scale))
    print_report("Generations per key under KIE_RATE_SCOPE", lines, table)


if __name__ == "__main__":
    main()
