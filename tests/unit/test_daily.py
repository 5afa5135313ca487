"""The arithmetic of /stats per day (store/daily.py): the Kie balance's drop from readings, the
margin, the period's totals; and the catalog's [money] rates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.catalog import MODELS, SHIPPED
from bot.catalog.loader import read_money
from bot.catalog.models import Money
from bot.errors import CatalogError
from bot.store.daily import DAY, DayStats, balance_drops, margin, total

D = 20000  # a day number: D * DAY is its midnight, UTC


def at(day: int, hour: float) -> float:
    return day * DAY + hour * 3600


def test_only_decreases_count_and_each_on_the_day_of_the_later_reading() -> None:
    readings = [("k", at(D, 1), 1000.0), ("k", at(D, 2), 990.0), ("k", at(D, 3), 1500.0),
                ("k", at(D, 23), 1480.0), ("k", at(D + 1, 1), 1470.5)]
    # 10 spent, +510 a top-up (not spend), 20 spent; across midnight 9.5 on the next day.
    assert balance_drops(readings) == {D: 30.0, D + 1: 9.5}


def test_each_key_is_its_own_account_and_the_order_given_does_not_matter() -> None:
    readings = [("b", at(D, 5), 50.0), ("a", at(D, 2), 100.0), ("b", at(D, 1), 80.0),
                ("a", at(D, 1), 110.0)]
    # a: 110 → 100; b: 80 → 50. Never b's 80 against a's 100.
    assert balance_drops(readings) == {D: 40.0}


def test_a_day_with_readings_but_no_spend_is_zero_and_a_day_without_any_is_absent() -> None:
    readings = [("k", at(D, 1), 100.0), ("k", at(D, 12), 100.0), ("k", at(D + 2, 1), 90.0)]
    assert balance_drops(readings) == {D: 0.0, D + 2: 10.0}
    assert balance_drops([("k", at(D, 1), 100.0)]) == {}  # one reading: nothing to compare


def test_margin_is_stars_at_their_rate_minus_kie_credits_at_theirs() -> None:
    assert margin(100, 50.0, star_usd=0.013, kie_credit_usd=0.005) == pytest.approx(1.05)
    assert margin(0, 200.0, star_usd=0.013, kie_credit_usd=0.005) == pytest.approx(-1.0)
    assert margin(0, 0.0, star_usd=0.013, kie_credit_usd=0.005) == 0


def test_the_total_adds_every_figure_and_keeps_unseen_drops_unseen() -> None:
    first = DayStats(day=date(2025, 1, 1), new_people=2, stars=50, charged=40,
                     by_kind={"image": 2}, by_state={"delivered": 2}, kie_drop=None,
                     kie_credits=12.0, margin_usd=0.59)
    second = DayStats(day=date(2025, 1, 2), new_people=1, stars=-50, refunded=20,
                      by_kind={"image": 1, "video": 1}, failures_by_model={"kling": 1},
                      kie_drop=7.5, kie_credits=0.0, margin_usd=-0.65)
    summed = total([first, second])
    assert summed.day == date(2025, 1, 1)
    assert (summed.new_people, summed.stars, summed.charged, summed.refunded) == (3, 0, 40, 20)
    assert summed.by_kind == {"image": 3, "video": 1} and summed.generations == 4
    assert summed.failures_by_model == {"kling": 1}
    assert summed.kie_drop == 7.5 and summed.kie_credits == 12.0
    assert summed.margin_usd == pytest.approx(-0.06)
    assert total([first]).kie_drop is None
    with pytest.raises(ValueError, match="no days"):
        total([])


def test_the_money_rates_are_the_catalogs_and_a_file_without_them_keeps_the_shipped_ones(
        tmp_path: Path) -> None:
    assert MODELS.money == read_money(SHIPPED) == Money(kie_credit_usd=0.005, star_usd=0.013)
    text = SHIPPED.read_text()
    without = tmp_path / "without.toml"
    without.write_text(text.replace("[money]", "[unused_money]").replace(
        "kie_credit_usd = 0.005", "").replace("star_usd = 0.013", "").replace(
        "[unused_money]", ""))
    assert read_money(without, MODELS.money) == MODELS.money
    with pytest.raises(CatalogError, match="no \\[money\\]"):
        read_money(without)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace("star_usd = 0.013", "star_usd = -1"))
    with pytest.raises(CatalogError, match=r"money\.star_usd"):
        read_money(wrong)
