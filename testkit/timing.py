"""The bot's timing constants a test waits on, shrunk for that test, and the waits themselves.

Production keeps its constants (bot/services/notifier.py STATUS_EDIT_GAP, bot/services/tracker.py
DELIVERY_RETRY_FIRST, ...): every one is a module constant read when it is used, so a test running
the bot in process sets it through the `timing` fixture (tests/conftest.py), which puts it back
afterwards; a bot process gets them through its environment (bot_process.timing_environment). A
test then waits on a condition (`until`), or watches one hold for a window worked out from those
constants (`stays`), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from bot.services import notifier, tracker

Check = Callable[[], bool | Awaitable[bool]]


async def _holds(condition: Check) -> bool:
    result = condition()
    return bool(await result) if not isinstance(result, bool) else result


async def until(condition: Check, timeout: float = 10.0, step: float = 0.02) -> None:
    """Return once `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await _holds(condition):
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(step)


async def stays(condition: Check, seconds: float, step: float = 0.02) -> None:
    """`condition` holds now and all through the next `seconds`: fails at the first look it does not."""
    deadline = time.monotonic() + seconds
    while True:
        assert await _holds(condition), "condition stopped holding"
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(step)


class Timing:
    """Sets the bot's timing constants for one test (monkeypatch undoes it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def status_edit_gap(self, seconds: float) -> float:
        """The status line's least gap between two edits (5 s in production)."""
        self._monkeypatch.setattr(notifier, "STATUS_EDIT_GAP", seconds)
        return seconds

    def line_ticks(self, per_second: float) -> float:
        """The waiting lines' redraws per second, all together (5 in production)."""
        self._monkeypatch.setattr(notifier, "LINE_TICKS_PER_SECOND", per_second)
        return per_second

    def delivery_retry(self, first: float) -> float:
        """The first delivery retry's delay (1 s in production), doubled at each failure."""
        self._monkeypatch.setattr(tracker, "DELIVERY_RETRY_FIRST", first)
        return first
