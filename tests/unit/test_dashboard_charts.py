"""The dashboard's bar charts (bot/dashboard/charts.py): bars where the values say, stacked or
side by side, negatives below the zero line, round gridlines, and nothing drawn for zeros."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.dashboard.charts import BOTTOM, HEIGHT, TOP, Series, bar_chart, number

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(3)]


def test_stacked_bars_sit_on_each_other_and_reach_their_sum():
    chart = bar_chart("g", "Generations", DAYS, [Series("image", [2, 0, 4]),
                                                 Series("video", [1, 0, 1])])
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
                      stacked=False, unit=" USD")
    a, b = (bar for bar in chart.bars if bar.title.startswith("2026-01-01"))
    assert b.x == pytest.approx(a.x + a.width)
    [negative] = [bar for bar in chart.bars if bar.value < 0]
    assert negative.y == pytest.approx(chart.zero) and negative.height > 0
    assert negative.title == "2026-01-02 · a: -1.50 USD"
    assert TOP <= chart.zero <= HEIGHT - BOTTOM
    assert [tick.label for tick in chart.values] == ["-2", "0", "2", "4"]


def test_counts_are_never_split_into_fractions_but_money_is():
    counts = bar_chart("c", "Counts", DAYS, [Series("x", [1, 2, 0])])
    assert [tick.label for tick in counts.values] == ["0", "1", "2"]
    money = bar_chart("m", "Money", DAYS, [Series("x", [0.1, 0.2, 0.0])])
    assert [tick.label for tick in money.values] == ["0", "0.05", "0.10", "0.15", "0.20"]


def test_nothing_at_all_is_an_empty_chart_with_an_axis():
    chart = bar_chart("e", "Empty", DAYS, [Series("x", [0, 0, 0])])
    assert chart.bars == [] and chart.empty
    assert [tick.label for tick in chart.values] == ["0", "1"]


def test_many_days_get_a_few_date_labels_the_last_one_today():
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(90)]
    chart = bar_chart("d", "Days", days, [Series("x", [1] * 90)])
    assert len(chart.dates) <= 8 and chart.dates[-1].label == days[-1].strftime("%d %b")


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (1234, "1 234"), (1234.5, "1 234.50"),
                                              (-0.25, "-0.25"), (1_000_000.0, "1 000 000")])
def test_numbers_read_easily(value, shown):
    assert number(value) == shown
