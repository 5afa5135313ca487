"""The one table every benchmark prints: each figure beside the reference measured in the same
run and its goal, and the machine it ran on."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version

HEADER = ("Figure", "Measured", "Reference (same run)", "Goal", "Met")


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    reference: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal to meet (a figure shown for context)

    def cells(self) -> tuple[str, ...]:
        verdict = "" if self.met is None else "yes" if self.met else "**no**"
        return self.figure, self.measured, self.reference, self.goal, verdict


def table(rows: Iterable[Row]) -> str:
    """A Markdown table: readable in a terminal, pasted as is into README."""
    lines = [tuple(HEADER), *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = [_line(lines[0], widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [_line(line, widths) for line in lines[1:]]
    return "\n".join(out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def machine() -> str:
    """What the figures were measured on."""
    return (f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
            f"aiogram {version('aiogram')}, Linux {platform.release()}")


def load() -> float:
    """The machine's load average over the last minute: other work disturbs the figures."""
    try:
        with open("/proc/loadavg", encoding="ascii") as average:
            return float(average.read().split()[0])
    except OSError:
        return float("nan")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share 0.95 = p95); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def print_report(title: str, notes: Iterable[str], rows: Iterable[Row]) -> None:
    print(f"\n## {title}\n")
    print(f"Machine: {machine()}; load average now {load():.2f}")
    for note in notes:
        print(note)
    print()
    print(table(rows))
