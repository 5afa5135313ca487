"""One budget for every Kie.ai call: at most `limit` requests in any `window` seconds.

Kie answers 429 past its limit and does not queue the request, so the bot keeps its own
sliding window, serves waiting callers by priority (a user's new task goes ahead of status
polls) and, within a priority, round-robin between owners (one user's burst does not starve
another), and stops everyone for a while when Kie says 429 anyway.

Kie counts a request when it arrives, somewhere between our grant and its answer. So a slot is
taken from its grant until the answer is back (in flight), and only then starts its window:
whatever the latency, the requests Kie sees within one window were all counted here when the
last of them was granted.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    CREATE = 0
    READ = 1
    POLL = 2


# Ahead of every priority: a caller that waited as long as it may (`slot(wait=...)`).
BEYOND = -1

# A condition a grant waits for beside the limiter's own (see RateLimiter.gate).
Gate = Callable[[float], float | None]


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int  # a Priority, or BEYOND
    round: int  # the owner's turn within its priority
    seq: int  # arrival order, the last tie-break
    owner: Hashable = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


@dataclass(slots=True)
class _Owner:
    last_round: int  # the round of the owner's latest waiter in this priority
    queued: int = 0


class RateLimiter:
    def __init__(self, limit: int, window: float = 10.0) -> None:
        self.limit = limit
        self._whole = limit  # the key's: this process's share of it is `limit`
        self.window = window
        self._in_flight = 0  # granted, answer not back yet
        self._stamps: deque[float] = deque()  # when answers came back, oldest first
        self._waiting: list[_Waiter] = []  # a heap: priority, then round, then arrival
        self._seq = itertools.count()
        self._serving: defaultdict[int, int] = defaultdict(int)  # per priority, the latest round
        self._owners: dict[tuple[int, Hashable], _Owner] = {}  # only owners with a waiter queued
        self._paused_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._widening: asyncio.TimerHandle | None = None  # a larger share, due a window later
        self._widening_to = limit
        # Beside the limit, a grant also waits for this, given the time: seconds still to wait
        # (0: none), or None until `poke` (bot.kie.budget couples a key's two budgets so).
        self.gate: Gate | None = None

    def share(self, parts: int, *, polling: bool | None = None) -> None:
        """`parts` processes spend the key's budget (instances sharing a database): this
        one's part is an equal one; with long polling (`polling`: whether this one polls), the
        poller, which makes every create, has half and the others share the other half (a
        picture costs a create and about one read). At least one request per window. A
        smaller part applies at once; a larger one (another process gone) only a window
        later, when what the gone one sent no longer counts in Kie's window."""
        part = max(1, part_of(self._whole, parts, polling))
        if self._widening is not None:
            if part == self._widening_to:  # asked again (every heartbeat): the first ask holds
                return
            self._widening.cancel()
            self._widening = None
        if part <= self.limit:
            self.limit = part
        else:
            self._widening_to = part
            self._widening = asyncio.get_running_loop().call_later(self.window, self._widen)

    @property
    def whole(self) -> int:
        """The key's limit, of which this process spends `limit`."""
        return self._whole

    def _widen(self) -> None:
        self._widening = None
        self.limit = self._widening_to
        self._dispatch()

    def sibling(self) -> RateLimiter:
        """A budget of the same size for another key (another account)."""
        return RateLimiter(self._whole, self.window)

    def room(self) -> int:
        """Requests that could start now, less those already waiting (negative: a queue)."""
        now = time.monotonic()
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        return self.limit - self._in_flight - len(self._stamps) - len(self._waiting)

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def in_flight(self) -> int:
        """Granted requests whose answer is not back yet."""
        return self._in_flight

    def poke(self) -> None:
        """What the gate waits for may have changed: grant what can be granted now."""
        self._dispatch()

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.READ, *, owner: Hashable = None,
                   wait: float | None = None) -> AsyncIterator[None]:
        """Wait for a grant, then hold it around one request. The slot counts while the block
        runs and for `window` seconds after it ends, however it ends: a request that failed or
        was cancelled may still have reached Kie. `wait`: the longest to wait for the limit;
        past it the call goes ahead of everyone, beyond the limit (only the pause and the gate
        hold it), though it counts like any."""
        try:
            async with asyncio.timeout(wait):
                await self._granted(priority, owner)
        except TimeoutError:
            await self._granted(BEYOND, owner)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._stamps.append(time.monotonic())
            self._dispatch()

    async def _granted(self, priority: int, owner: Hashable) -> None:
        serving = self._serving[priority]
        mine = self._owners.setdefault((priority, owner), _Owner(serving - 1))
        mine.last_round = max(serving, mine.last_round + 1)
        mine.queued += 1
        waiter = _Waiter(priority, mine.last_round, next(self._seq), owner,
                         asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        self._dispatch()
        try:
            await waiter.granted
        except asyncio.CancelledError:
            # A cancelled waiter stays queued with its future cancelled; _dispatch drops it. One
            # granted just as it was cancelled sent nothing: it frees its slot without a stamp.
            if not waiter.granted.cancelled():
                self._in_flight -= 1
            self._dispatch()
            raise

    def _dispatch(self) -> None:
        """Grant the best waiters while the budget allows, else wake up when it may. Nothing
        here awaits, so no lock is needed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            head = self._waiting[0]
            if head.granted.cancelled():
                self._leave(heapq.heappop(self._waiting))
                continue
            delay = self._delay(time.monotonic(), beyond=head.priority == BEYOND)
            if delay is None:  # only an answer coming back frees a slot; slot() dispatches then
                return
            if delay > 0:
                self._timer = asyncio.get_running_loop().call_later(delay, self._dispatch)
                return
            self._leave(heapq.heappop(self._waiting))
            self._serving[head.priority] = head.round
            self._in_flight += 1
            head.granted.set_result(None)

    def _delay(self, now: float, *, beyond: bool = False) -> float | None:
        """Seconds until a slot may be granted (0: now); None while every slot is in flight
        (or the gate says to wait for a poke)."""
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        if self._in_flight >= self.limit and not beyond:
            return None
        delay = self._paused_until - now
        if self._in_flight + len(self._stamps) >= self.limit and not beyond:
            delay = max(delay, self._stamps[0] + self.window - now)
        if self.gate is not None:
            gated = self.gate(now)
            if gated is None:
                return None
            delay = max(delay, gated)
        return max(delay, 0.0)

    def _leave(self, waiter: _Waiter) -> None:
        """The waiter left the queue; forget its owner once nothing of theirs is queued."""
        key = (waiter.priority, waiter.owner)
        mine = self._owners[key]
        mine.queued -= 1
        if not mine.queued:
            del self._owners[key]


def part_of(whole: int, parts: int, polling: bool | None) -> int:
    """One of `parts` processes' part of a key's `whole` limit (RateLimiter.share)."""
    if parts <= 1:
        return whole
    if polling is None:
        return whole // parts
    half = whole // 2
    return whole - half if polling else half // (parts - 1)
