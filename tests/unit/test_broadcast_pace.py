"""The broadcast's pace, on a clock of its own: each copy starts at least 1/rate after the one
before (no second holds more than rate + 1), a late caller does not bank the time it lost, and
a flood-control pause holds every start until it ends."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.services.broadcast import Pace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(asyncio, "sleep", clock.sleep)
    return clock


async def starts(pace: Pace, clock: Clock, count: int, work: float = 0.0) -> list[float]:
    times = []
    for _ in range(count):
        await pace.wait()
        times.append(clock.now)
        clock.now += work  # the call itself
    return times


async def test_starts_are_a_gap_apart_and_no_second_holds_more_than_rate_plus_one(clock):
    pace = Pace(20.0, clock)
    times = await starts(pace, clock, 100)
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(times))
    assert max(sum(1 for t in times if start <= t <= start + 1.0) for start in times) <= 21


async def test_a_slow_call_is_not_made_up_for_by_a_burst(clock):
    pace = Pace(10.0, clock)
    await starts(pace, clock, 1, work=2.0)  # two seconds in one call
    times = await starts(pace, clock, 5)
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(times))


async def test_a_hold_delays_every_start_until_it_ends(clock):
    pace = Pace(30.0, clock)
    await starts(pace, clock, 3)
    pace.hold(7.0)
    held_at = clock.now
    [first, second] = await starts(pace, clock, 2)
    assert first >= held_at + 7.0 and second - first >= 1 / 30 - 1e-9
