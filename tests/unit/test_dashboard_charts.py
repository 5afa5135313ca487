"""The dashboard's bar charts (bot/dashboard/charts.py): bars where the values say, stacked or
side by side, negatives below the zero line, round gridlines, nothing drawn for zeros, and the
dates in the language asked for."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from bot.dashboard.charts import (
    BOTTOM,
    DATE_CHAR,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Series,
    bar_chart,
    number,
)
from bot.i18n import day_label

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(3)]


def test_stacked_bars_sit_on_each_other_and_reach_their_sum():
    chart = bar_chart("g", "Generations", DAYS, [Series("image", [2, 0, 4]),
                                                 Series("video", [1, 0, 1])], locale="en")
    first = [bar for bar in chart.bars if bar.title.startswith("2026-01-01")]
    assert [(bar.value, bar.colour) for bar in first] == [(2.0, 0), (1.0, 1)]
    image, video = first
    assert image.x == video.x and image.width == video.width
    assert video.y + video.height == pytest.approx(image.y)  # video on top of image
    assert image.y + image.height == pytest.approx(chart.zero)
    assert video.height == pytest.approx(image.height / 2)
    assert len(chart.bars) == 4  # the zeros draw nothing
    assert chart.zero == pytest.approx(HEIGHT - BOTTOM)
    assert [tick.label for tick in chart.values] == ["0", "2", "4", "6"]
    assert chart.legend == [(0, "image"), (1, "video")] and not chart.empty


def test_side_by_side_bars_and_negatives_below_zero():
    chart = bar_chart("m", "Margin", DAYS, [Series("a", [3, -1.5, 0]), Series("b", [1, 0, 0])],
                      locale="en", stacked=False, unit=" USD")
    a, b = (bar for bar in chart.bars if bar.title.startswith("2026-01-01"))
    assert b.x == pytest.approx(a.x + a.width)
    [negative] = [bar for bar in chart.bars if bar.value < 0]
    assert negative.y == pytest.approx(chart.zero) and negative.height > 0
    assert negative.title == "2026-01-02 · a: -1.50 USD"
    assert TOP <= chart.zero <= HEIGHT - BOTTOM
    assert [tick.label for tick in chart.values] == ["-2", "0", "2", "4"]


def test_counts_are_never_split_into_fractions_but_money_is():
    counts = bar_chart("c", "Counts", DAYS, [Series("x", [1, 2, 0])], locale="en")
    assert [tick.label for tick in counts.values] == ["0", "1", "2"]
    money = bar_chart("m", "Money", DAYS, [Series("x", [0.1, 0.2, 0.0])], locale="en")
    assert [tick.label for tick in money.values] == ["0", "0.05", "0.10", "0.15", "0.20"]


def test_nothing_at_all_is_an_empty_chart_with_an_axis():
    chart = bar_chart("e", "Empty", DAYS, [Series("x", [0, 0, 0])], locale="en")
    assert chart.bars == [] and chart.empty
    assert [tick.label for tick in chart.values] == ["0", "1"]


def test_many_days_get_a_few_date_labels_the_last_one_today():
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(90)]
    chart = bar_chart("d", "Days", days, [Series("x", [1] * 90)], locale="en")
    assert len(chart.dates) <= 8 and chart.dates[-1].label == "31 Mar"


def test_the_dates_are_in_the_language_asked_for():
    """Babel's own abbreviations, as /stats says a day: never strftime's English."""
    days = [date(2026, 12, 7), date(2026, 9, 30), date(2026, 5, 1)]
    russian = bar_chart("r", "Дни", days, [Series("x", [1, 2, 3])], locale="ru")
    assert [tick.label for tick in russian.dates] == ["7 дек.", "30 сент.", "1 мая"]
    english = bar_chart("e", "Days", days, [Series("x", [1, 2, 3])], locale="en")
    assert [tick.label for tick in english.dates] == ["7 Dec", "30 Sep", "1 May"]
    assert [tick.position for tick in russian.dates] == [tick.position for tick in english.dates]
    # The tooltips keep the ISO date: the same in every language.
    assert russian.bars[0].title == "2026-12-07 · x: 1"


@pytest.mark.parametrize("count", [7, 8, 14, 30, 31, 90])
@pytest.mark.parametrize("locale", ["ru", "en"])
def test_the_dates_stay_inside_the_chart_and_apart(count, locale):
    """The longest months ("30 сент."), the thinnest days: the last date is moved in rather
    than cut off by the SVG's edge, and no two dates run into each other."""
    days = [date(2026, 9, 30) - timedelta(days=n) for n in reversed(range(count))]
    chart = bar_chart("d", "Days", days, [Series("x", [1] * count)], locale=locale)
    assert chart.dates[-1].label == ("30 сент." if locale == "ru" else "30 Sep")
    spans = [(tick.position - len(tick.label) * DATE_CHAR / 2,
              tick.position + len(tick.label) * DATE_CHAR / 2) for tick in chart.dates]
    assert all(left >= 0 and right <= WIDTH for left, right in spans), spans
    assert all(one[1] < other[0] for one, other in itertools.pairwise(spans)), spans
    # Under its day when it fits, else its end at the edge.
    last_day = LEFT + (count - 0.5) * (WIDTH - LEFT - RIGHT) / count
    half = len(chart.dates[-1].label) * DATE_CHAR / 2
    assert chart.dates[-1].position == pytest.approx(min(last_day, WIDTH - half), abs=0.01)


@pytest.mark.parametrize(("locale", "label"), [("ru", "7 дек."), ("en", "7 Dec"),
                                               ("ru_RU", "7 дек."), ("en_GB", "7 Dec")])
def test_a_day_label(locale, label):
    assert day_label(date(2026, 12, 7), locale) == label


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (1234, "1 234"), (1234.5, "1 234.50"),
                                              (-0.25, "-0.25"), (1_000_000.0, "1 000 000")])
def test_numbers_read_easily(value, shown):
    assert number(value) == shown
