"""Benchmark: many people confirm a picture at once; prints how the bot spends Kie's budget
and how fast a finished picture reaches the chat.

    .venv/bin/python -m bench.crowd [--people 50] [--window 1.0] [--limit 20] [--reads 2]

Everything runs on 127.0.0.1: the real bot between the fake Bot API and the fake Kie.ai of
testkit/fakes. `--window 10` is Kie's real window (slow: about 10 s per 20 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from testkit.bot import KIE_KEY, TOKEN, RunningBot, make_settings
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import FakeTelegram
from testkit.load import crowd


async def main(people: int, window: float, limit: int, reads: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeTelegram(token=TOKEN) as tg, \
                FakeKie(api_key=KIE_KEY, rate_limit=limit, window=window) as kie:
            kie.default_plan = TaskPlan(reads_before_done=reads)
            settings = make_settings(Path(folder), tg, kie, kie_rate_limit=limit,
                                     kie_rate_window=window)
            running = await RunningBot(settings).start()
            try:
                result = await crowd(tg, kie, people, timeout=max(120.0, people * window))
            finally:
                await running.stop()
    latency = sorted(result.success_to_send)
    budget = limit / window
    print(f"people                      {result.people}")
    print(f"delivered                   {result.delivered}")
    print(f"wall time                   {result.seconds:.2f} s")
    print(f"Kie requests                {result.kie_requests} "
          f"({result.kie_requests / result.people:.2f} per image; "
          f"minimum {reads + 2} with {reads} unfinished reads)")
    print(f"Kie request rate            {result.kie_requests / result.seconds:.1f} req/s "
          f"(limit {budget:.1f}/s on average, plus one window's burst at the start)")
    print(f"Kie 429 answers             {result.kie_429}")
    print(f"most requests in a window   {result.max_in_window} (limit {limit})")
    print(f"success → sendPhoto (ms)    min {1000 * latency[0]:.1f}  "
          f"median {1000 * statistics.median(latency):.1f}  "
          f"p95 {1000 * latency[int(0.95 * (len(latency) - 1))]:.1f}  max {1000 * latency[-1]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--reads", type=int, default=2, help="unfinished status reads per task")
    args = parser.parse_args()
    asyncio.run(main(args.people, args.window, args.limit, args.reads))
