"""When the tracker reads a task's status. Every read spends Kie's shared budget. A task is read
once early (within the model's poll_interval, ≤ 5 s: DESIGN.md's default for the first check),
then next near the time its model's tasks usually take — learned from the last ones that
finished, the catalog's guess until there are enough — then at a fraction of that time, backing
off once it is long overdue (Kie's advice). With Kie callbacks on, a callback wakes the read the
moment a task ends, and the poll is only a fallback for a lost callback: a first read late,
then rare ones. KIE_POLL_INTERVAL, when set, is the first read and the smallest gap (tests).
Under KIE_RATE_SCOPE=creates reads have a budget of their own that may run short: a read waits
for it at most `read_wait` past its time, so the gaps planned leave that much of
KIE_POLL_MAX_INTERVAL."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable

from bot.catalog import Model
from bot.config import KieSettings

BACKOFF_DIVISOR = 4.0
# Polling: after the early read, one at this share of the usual duration, then one every
# STEP_SHARE of it (never more often than the model's poll_interval) until OVERDUE times it,
# then backing off.
FIRST_SHARE = 0.8
STEP_SHARE = 0.25
OVERDUE = 1.5
# With callbacks: the first fallback read after this many times the usual duration, then one
# every CALLBACK_GAP_FACTOR × KIE_POLL_MAX_INTERVAL (2 minutes by default).
CALLBACK_FIRST_FACTOR = 2.0
CALLBACK_GAP_FACTOR = 4.0
# The usual duration is the median of this many last finished tasks of a model, once there
# are at least LEARNED_AFTER of them.
REMEMBERED = 30
LEARNED_AFTER = 5


def next_check_delay(elapsed: float, expected: float, smallest: float, largest: float) -> float:
    """Seconds until the next status read of a task `elapsed` seconds old: `smallest` until
    `expected`, then growing by a quarter of the time past it, up to `largest`."""
    if elapsed < expected:
        return smallest
    return min(largest, smallest + (elapsed - expected) / BACKOFF_DIVISOR)


class Schedule:
    def __init__(self, settings: KieSettings) -> None:
        self.settings = settings
        self._seen: dict[str, deque[float]] = {}

    def observe(self, model_id: str, seconds: float) -> None:
        """A task of `model_id` took `seconds` from its creation until the bot saw it finish."""
        self._seen.setdefault(model_id, deque(maxlen=REMEMBERED)).append(seconds)

    def observe_all(self, durations: Iterable[tuple[str, float]]) -> None:
        for model_id, seconds in durations:
            self.observe(model_id, seconds)

    def usual(self, model: Model) -> float:
        """Seconds a task of this model usually takes."""
        seen = self._seen.get(model.id, ())
        return statistics.median(seen) if len(seen) >= LEARNED_AFTER else model.expected_seconds

    def first_delay(self, model: Model) -> float:
        """Seconds from a task's creation to its first status read."""
        if self.settings.poll_interval is not None:
            return self.settings.poll_interval
        if self.settings.callback_url is not None:
            return max(CALLBACK_FIRST_FACTOR * self.usual(model), self.settings.poll_max_interval)
        return model.poll_interval

    @property
    def read_wait(self) -> float | None:
        """KIE_RATE_SCOPE=creates: the longest a due read waits for the reads' budget before
        it goes beyond it (a window, or a third of KIE_POLL_MAX_INTERVAL if less); None under
        `all`, where every read waits its turn in the one budget."""
        if self.settings.rate_scope == "all":
            return None
        return min(self.settings.rate_window, self.settings.poll_max_interval / 3)

    @property
    def longest(self) -> float:
        """The largest gap planned between two reads of a task (polling): with the wait for
        the budget, at most KIE_POLL_MAX_INTERVAL."""
        return self.settings.poll_max_interval - (self.read_wait or 0.0)

    def later_delay(self, model: Model, elapsed: float) -> float:
        """Seconds until the read after this one, for a task `elapsed` seconds old."""
        if self.settings.callback_url is not None:
            return CALLBACK_GAP_FACTOR * self.settings.poll_max_interval
        usual = self.usual(model)
        step = self.settings.poll_interval or min(
            self.longest, max(model.poll_interval, STEP_SHARE * usual))
        if self.settings.poll_interval is None and elapsed < FIRST_SHARE * usual:
            return min(self.longest,
                       max(step, FIRST_SHARE * usual - elapsed))  # to near the usual time
        return next_check_delay(elapsed, expected=OVERDUE * usual, smallest=step,
                                largest=self.longest)
