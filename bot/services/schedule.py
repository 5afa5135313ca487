"""When the tracker reads a task's status. Polling alone: often while the task is young, then
backing off (Kie's advice). With Kie callbacks on, a callback wakes the read the moment a task
ends, and the poll is only a fallback for a lost callback: a first read late, then rare ones."""

from __future__ import annotations

from bot.catalog import Model
from bot.config import Settings

BACKOFF_DIVISOR = 4.0
# With callbacks: the first fallback read after this many times the model's usual duration,
# then one every CALLBACK_GAP_FACTOR × KIE_POLL_MAX_INTERVAL (2 minutes by default).
CALLBACK_FIRST_FACTOR = 2.0
CALLBACK_GAP_FACTOR = 4.0


def next_check_delay(elapsed: float, expected: float, smallest: float, largest: float) -> float:
    """Seconds until the next status read of a task `elapsed` seconds old (polling alone)."""
    if elapsed < expected:
        return smallest
    return min(largest, smallest + (elapsed - expected) / BACKOFF_DIVISOR)


def first_check_delay(model: Model, settings: Settings) -> float:
    """Seconds from a task's creation to its first status read. KIE_POLL_INTERVAL, when set,
    decides it whether or not callbacks are on."""
    if settings.kie_poll_interval is not None:
        return settings.kie_poll_interval
    if settings.kie_callback_url is not None:
        return max(CALLBACK_FIRST_FACTOR * model.expected_seconds, settings.kie_poll_max_interval)
    return model.poll_interval


def later_check_delay(model: Model, elapsed: float, settings: Settings) -> float:
    """Seconds until the read after this one, for a task `elapsed` seconds old."""
    if settings.kie_callback_url is not None:
        return CALLBACK_GAP_FACTOR * settings.kie_poll_max_interval
    return next_check_delay(elapsed, expected=model.expected_seconds,
                            smallest=settings.kie_poll_interval or model.poll_interval,
                            largest=settings.kie_poll_max_interval)
