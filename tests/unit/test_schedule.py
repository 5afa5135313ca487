"""The read schedule: reads spread by what each model's tasks usually take (learned from the
last finished ones), so a task costs few of Kie's shared requests; callbacks make polls rare."""

from __future__ import annotations

import pytest

from bot.catalog import get_model
from bot.config import Settings
from bot.services.schedule import Schedule, next_check_delay
from testkit.bot import KIE_KEY, TOKEN

IMAGEN = get_model("imagen4")


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KIE_KEY,  # type: ignore[call-arg]
                    **overrides)


def reads_until(schedule: Schedule, duration: float) -> int:
    """Status reads of a task that finishes `duration` seconds after its creation."""
    assert IMAGEN is not None
    at, reads = schedule.first_delay(IMAGEN), 1
    while at < duration:
        at += schedule.later_delay(IMAGEN, at)
        reads += 1
    return reads


def test_poll_gap_starts_small_then_backs_off_to_the_cap():
    """Young tasks are checked at the smallest gap; old ones back off, never past the cap."""
    gaps = [next_check_delay(t, expected=20, smallest=3, largest=30) for t in range(0, 400, 10)]
    assert gaps[0] == gaps[1] == 3
    assert gaps == sorted(gaps) and max(gaps) == 30 and gaps[-1] == 30


def test_the_catalogs_guess_until_five_tasks_finished_then_their_median():
    assert IMAGEN is not None
    schedule = Schedule(settings().kie)
    assert schedule.usual(IMAGEN) == IMAGEN.expected_seconds
    schedule.observe_all([("imagen4", s) for s in (9.0, 11.0, 30.0, 10.0)])
    schedule.observe("seedream", 99.0)  # another model's tasks teach nothing about this one
    assert schedule.usual(IMAGEN) == IMAGEN.expected_seconds
    schedule.observe("imagen4", 12.0)
    assert schedule.usual(IMAGEN) == 11.0
    for _ in range(40):  # only the last ones count: the model got slower
        schedule.observe("imagen4", 50.0)
    assert schedule.usual(IMAGEN) == 50.0


def test_polling_reads_once_early_then_near_the_usual_time_and_a_few_times_after():
    """Tasks spread around a learned 14 s (8–20 s): one read within the model's poll_interval
    (DESIGN.md: the first check ≤ 5 s), then at most 4 more, 2.5 on average, where a read
    every 3 s from the start cost 3 to 7."""
    assert IMAGEN is not None
    schedule = Schedule(settings().kie)
    schedule.observe_all(("imagen4", s) for s in (8.0, 11.0, 14.0, 17.0, 20.0))
    assert schedule.first_delay(IMAGEN) == IMAGEN.poll_interval <= 5
    assert IMAGEN.poll_interval + schedule.later_delay(
        IMAGEN, IMAGEN.poll_interval) == pytest.approx(0.8 * 14)
    reads = [reads_until(schedule, 8 + i * 0.12) for i in range(101)]
    assert max(reads) <= 5 and sum(reads) / len(reads) <= 3.5
    # Long overdue: the gap grows, up to KIE_POLL_MAX_INTERVAL.
    assert schedule.later_delay(IMAGEN, 20.0) == pytest.approx(0.25 * 14)
    assert schedule.later_delay(IMAGEN, 60.0) > schedule.later_delay(IMAGEN, 30.0)
    assert schedule.later_delay(IMAGEN, 600.0) == 30.0


def test_the_gap_is_never_below_the_models_interval_nor_above_the_cap():
    assert IMAGEN is not None
    schedule = Schedule(settings().kie)
    schedule.observe_all(("imagen4", 1.0) for _ in range(5))  # a very quick model
    assert schedule.first_delay(IMAGEN) == IMAGEN.poll_interval
    assert schedule.later_delay(IMAGEN, 1.0) == IMAGEN.poll_interval
    schedule.observe_all(("imagen4", 1000.0) for _ in range(30))  # a very slow one
    assert schedule.later_delay(IMAGEN, 100.0) == 30.0


def test_with_callbacks_the_poll_is_a_late_rare_fallback():
    assert IMAGEN is not None
    schedule = Schedule(settings(kie_callback_url="https://bot.example/kie", web_port=8080).kie)
    schedule.observe_all(("imagen4", 40.0) for _ in range(5))
    assert schedule.first_delay(IMAGEN) == 80.0
    assert schedule.later_delay(IMAGEN, 80.0) == 120.0


def test_a_fixed_poll_interval_overrides_what_was_learned():
    assert IMAGEN is not None
    schedule = Schedule(settings(kie_poll_interval=0.5).kie)
    schedule.observe_all(("imagen4", 40.0) for _ in range(5))
    assert schedule.first_delay(IMAGEN) == 0.5 == schedule.later_delay(IMAGEN, 1.0)
