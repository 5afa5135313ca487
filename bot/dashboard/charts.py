"""Bar charts per day, drawn on the server as SVG (templates/chart.html): no script, nothing
vendored, and the page works offline. Here is the geometry only; the template writes the
elements, so every label goes through Jinja's autoescape. The dates are in the language the
caller names (the page's): this module knows nothing of requests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bot.i18n import day_label

WIDTH = 640.0
HEIGHT = 220.0
LEFT = 44.0     # room for the value axis's labels
RIGHT = 8.0
TOP = 10.0
BOTTOM = 24.0   # room for the dates
GAP = 0.25      # of each day's slot, left empty between days
TICKS = 4       # value gridlines, about
MAX_DATE_LABELS = 8
PALETTE = 6     # series colours in the CSS (.s0 … .s5): more series share them
DATE_CHAR = 7.0  # at most, the width of a character of a date (the CSS's 11px text)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]  # one per day


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: int       # the series' CSS class number
    value: float
    title: str        # the tooltip: date, series, value


@dataclass(frozen=True, slots=True)
class Tick:
    position: float   # y for a value, x for a date
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: `bars` drawn in a WIDTH × HEIGHT box, `zero` the y of the value 0."""

    key: str          # an id for the page (and the tests)
    title: str
    unit: str
    bars: list[Bar]
    values: list[Tick]
    dates: list[Tick]
    legend: list[tuple[int, str]]
    zero: float
    width: float = WIDTH
    height: float = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def bar_chart(key: str, title: str, days: Sequence[date], series: Sequence[Series], *,
              locale: str, stacked: bool = True, unit: str = "") -> Chart:
    """Bars per day: the series stacked (positives up from 0, negatives down), or side by
    side when not `stacked`; the dates under them in `locale`'s words ("en", "ru")."""
    low, high = _extent(series, len(days), stacked=stacked)
    step = _nice_step((high - low) / TICKS)
    if all(float(value).is_integer() for one in series for value in one.values):
        step = max(step, 1.0)  # counts: no gridline at half a generation
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    plot = HEIGHT - TOP - BOTTOM
    scale = plot / (high - low)

    def y_of(value: float) -> float:
        return TOP + (high - value) * scale

    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    lanes = 1 if stacked else max(len(series), 1)
    width = slot * (1 - GAP) / lanes
    bars = []
    for index, day in enumerate(days):
        left = LEFT + index * slot + slot * GAP / 2
        up = down = 0.0
        for lane, one in enumerate(series):
            value = float(one.values[index])
            if not value:
                continue
            if stacked:
                base = up if value > 0 else down
                top, bottom = (base + value, base) if value > 0 else (base, base + value)
                if value > 0:
                    up += value
                else:
                    down += value
                x = left
            else:
                top, bottom = max(value, 0.0), min(value, 0.0)
                x = left + lane * width
            bars.append(Bar(x=round(x, 2), y=round(y_of(top), 2), width=round(width, 2),
                            height=round((top - bottom) * scale, 2), colour=lane % PALETTE,
                            value=value, title=f"{day.isoformat()} · {one.name}: "
                            f"{number(value)}{unit}"))
    count = max(round((high - low) / step), 1)
    values = [Tick(round(y_of(low + n * step), 2), number(low + n * step))
              for n in range(count + 1)]
    every = max(math.ceil(len(days) / MAX_DATE_LABELS), 1)
    dates = [_date_tick(LEFT + (n + 0.5) * slot, day_label(day, locale))
             for n, day in enumerate(days) if (len(days) - 1 - n) % every == 0]
    return Chart(key=key, title=title, unit=unit, bars=bars, values=values, dates=dates,
                 legend=[(n % PALETTE, one.name) for n, one in enumerate(series)],
                 zero=round(y_of(0.0), 2))


def _date_tick(x: float, label: str) -> Tick:
    """A date centred under its day, unless it would stick out of the chart (the last of many
    thin days, a long month: "30 сент."): then as far right as it fits, as the SVG cuts off
    what is outside it."""
    half = len(label) * DATE_CHAR / 2
    return Tick(round(max(min(x, WIDTH - half), half), 2), label)


def _extent(series: Sequence[Series], days: int, *, stacked: bool) -> tuple[float, float]:
    """The lowest and highest value drawn (0 always among them; never both 0)."""
    low = high = 0.0
    for index in range(days):
        values = [float(one.values[index]) for one in series]
        if stacked:
            high = max(high, sum(v for v in values if v > 0))
            low = min(low, sum(v for v in values if v < 0))
        else:
            high = max(high, *values, 0.0)
            low = min(low, *values, 0.0)
    return low, high if high > low else low + 1.0


def _nice_step(rough: float) -> float:
    """1, 2 or 5 times a power of ten, at least `rough`."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= rough * 0.999)


def number(value: float) -> str:
    """1 234, or 1 234.50: thousands apart, cents only when there are any."""
    if value == int(value):
        return f"{int(value):,}".replace(",", " ")
    return f"{value:,.2f}".replace(",", " ")
