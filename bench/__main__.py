"""`python -m bench` (`make bench`): every benchmark, one after another, and one table.

    .venv/bin/python -m bench [startup updates memory throughput kie_budget latency store_latency
                               takeover]

Each is also a script of its own (`python -m bench.<name> --help`); given names, only those run.
The notes printed above the table say how each figure was measured.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from bench import (
    kie_budget,
    latency,
    memory,
    startup,
    store_latency,
    takeover,
    throughput,
    updates,
)
from bench.report import Row, load, print_report

Benchmark = Callable[[], Awaitable[tuple[list[str], list[Row]]]]
BENCHMARKS: dict[str, Benchmark] = {
    "throughput": throughput.run,
    "kie_budget": kie_budget.run,
    "latency": latency.run,
    "memory": memory.run,
    "updates": updates.run,
    "startup": startup.run,
    "store_latency": store_latency.run,
    "takeover": takeover.run,
}


async def run_all(names: list[str]) -> tuple[list[str], list[Row]]:
    notes: list[str] = []
    rows: list[Row] = []
    for name in names:
        began, before = time.monotonic(), load()
        lines, found = await BENCHMARKS[name]()
        notes += [f"[{name}, {time.monotonic() - began:.0f} s, load average {before:.2f} → "
                  f"{load():.2f}]", *(f"  {line}" for line in lines)]
        rows += found
    return notes, rows


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    notes, rows = asyncio.run(run_all(names))
    print_report("Benchmarks", notes, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
