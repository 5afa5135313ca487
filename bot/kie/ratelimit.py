"""One budget for every Kie.ai call: at most `limit` requests in any `window` seconds.

Kie answers 429 past its limit and does not queue the request, so the bot keeps its own
sliding window, serves waiting callers by priority (a user's new task goes ahead of status
polls), and stops everyone for a while when Kie says 429 anyway.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum


class Priority(IntEnum):
    CREATE = 0
    READ = 1
    POLL = 2


class RateLimiter:
    def __init__(self, limit: int, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        # A request granted here arrives at Kie a little later; the margin keeps two grants
        # `window` apart from landing inside one of Kie's windows.
        self.window = window + min(0.25, window * 0.05)
        self._clock = clock
        self._granted: deque[float] = deque()
        self._waiting: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._paused_until = 0.0
        self._changed = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _delay(self, now: float) -> float:
        """Seconds until a request may go out, 0 when one may go now."""
        while self._granted and self._granted[0] <= now - self.window:
            self._granted.popleft()
        delay = self._paused_until - now
        if len(self._granted) >= self.limit:
            delay = max(delay, self._granted[0] + self.window - now)
        return max(delay, 0.0)

    async def acquire(self, priority: Priority = Priority.READ) -> None:
        entry = (int(priority), next(self._seq))
        heapq.heappush(self._waiting, entry)
        try:
            while True:
                now = self._clock()
                delay = self._delay(now)
                at_head = self._waiting[0] == entry
                if at_head and delay == 0:
                    heapq.heappop(self._waiting)
                    self._granted.append(now)
                    self._wake_all()
                    return
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), delay if at_head else None)
                except TimeoutError:
                    pass
        except BaseException:  # cancelled: leave the queue, let the next caller move up
            if entry in self._waiting:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
                self._wake_all()
            raise

    def _wake_all(self) -> None:
        """Every waiter looks again (no lock needed: the checks above never await)."""
        self._changed.set()
        self._changed = asyncio.Event()
