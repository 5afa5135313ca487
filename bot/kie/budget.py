"""A key's Kie.ai budget under KIE_RATE_SCOPE.

`all` (`WholeBudget`): one RateLimiter for every call, as Kie's old wording asks; a 429 stops
every call of the key for a while.

`creates` (`ScopedBudget`): Kie's Getting Started counts "new generation requests" only
(kie-api-more.md §0, §8), so creates (every API's, and chat calls) have KIE_RATE_LIMIT per
window, and reads and the other calls a budget of their own (`ReadBudget`) that starts there,
grows by one per window in which it was the limit and Kie refused nothing, and halves on a 429.

That reads are free is Kie's word, not a certainty. Until this process has seen it (`proven`:
Kie accepted a read while it had surely counted KIE_RATE_LIMIT calls within its window), a key
runs as if Kie counted every call — a create waits until creates and reads together leave room
and while a read is in flight, and a read waits while a create is in flight — so that if Kie
does count reads, reads may be refused but a create never is. A create refused anyway (it should
not be) pauses the key's creates as under `all` and forgets the proof.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal

from bot.kie.ratelimit import Priority, RateLimiter, part_of

Scope = Literal["all", "creates"]
Kind = Literal["create", "read"]

# Which budget a call spends, by the priority it is made with: the one place calls are told
# apart. Creates (KieClient.start, .chat) are made with Priority.CREATE; status reads with POLL
# (READ when a person waits); the credit balance, download-url and uploads with READ.
KIND: dict[Priority, Kind] = {
    Priority.CREATE: "create", Priority.READ: "read", Priority.POLL: "read"}


class ReadBudget(RateLimiter):
    """A budget that learns Kie's: starts at `limit` per window; after each window in which a
    caller had to wait for it (or went beyond it) and Kie refused nothing, one more; after a
    429, half (at most once a window: the 429s of one burst are one signal), never below one.
    `whole` is what this process has learned of the key's; it spends its part (share)."""

    def __init__(self, limit: int, window: float = 10.0) -> None:
        super().__init__(limit, window)
        self._parts = 1
        self._polling: bool | None = None
        self._since = time.monotonic()  # the window being watched began
        self._pressed = False  # within it, a caller found no room
        self._refused = False  # within it, Kie answered 429
        self._halved_at = float("-inf")

    def share(self, parts: int, *, polling: bool | None = None) -> None:
        self._parts, self._polling = parts, polling
        super().share(parts, polling=polling)

    def sibling(self) -> ReadBudget:
        return ReadBudget(self._whole, self.window)

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.READ, *, owner: Hashable = None,
                   wait: float | None = None) -> AsyncIterator[None]:
        self._watch(time.monotonic())
        if self.room() <= 0:
            self._pressed = True
        async with super().slot(priority, owner=owner, wait=wait):
            yield

    def refused(self) -> None:
        """Kie answered a call of this budget 429."""
        now = time.monotonic()
        self._watch(now)
        self._refused = True
        if now - self._halved_at >= self.window:
            self._halved_at = now
            self._resize(max(1, self._whole // 2))

    def _watch(self, now: float) -> None:
        """Close the watched window once it has passed: grown if it earned it."""
        if now - self._since < self.window:
            return
        if self._pressed and not self._refused:
            self._resize(self._whole + 1)
        self._since, self._pressed, self._refused = now, False, False

    def _resize(self, whole: int) -> None:
        self._whole = whole
        part = max(1, part_of(whole, self._parts, self._polling))
        if self._widening is not None:  # a larger part is due (an instance gone): of this whole
            self._widening_to = part
        if part < self.limit or self._widening is None:
            self.limit = part
        self.poke()


class WholeBudget:
    """KIE_RATE_SCOPE=all: every call of the key on one RateLimiter."""

    scope: Scope = "all"

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    @property
    def limit(self) -> int:
        return self.limiter.limit

    @property
    def read_limit(self) -> int:
        return self.limiter.limit

    def room(self) -> int:
        return self.limiter.room()

    def share(self, parts: int, *, polling: bool | None) -> None:
        self.limiter.share(parts, polling=polling)

    def slot(self, priority: Priority, *, owner: Hashable,
             wait: float | None = None) -> AbstractAsyncContextManager[None]:
        # (`wait` is the tracker's under `creates` only: every read here waits its turn.)
        return self.limiter.slot(priority, owner=owner)

    def accepted(self, priority: Priority, sent: float) -> None:
        """Kie took a call sent at `sent` (time.monotonic())."""

    def refused(self, priority: Priority, pause: float) -> None:
        """Kie answered 429: every call of the key holds back `pause` seconds."""
        self.limiter.pause(pause)

    def retries_refused(self, priority: Priority) -> bool:
        """Whether the client tries a call again after a 429 (a create: Kie did not take it)."""
        return True

    def sibling(self) -> WholeBudget:
        return WholeBudget(self.limiter.sibling())


class ScopedBudget:
    """KIE_RATE_SCOPE=creates: creates on `creates`, everything else on `reads` (see above)."""

    scope: Scope = "creates"

    def __init__(self, creates: RateLimiter) -> None:
        self.creates = creates
        self.reads = ReadBudget(creates.whole, creates.window)
        self.proven = False
        self._accepted: deque[tuple[float, float]] = deque()  # (sent, answered), answer order
        creates.gate = self._create_gate
        self.reads.gate = self._read_gate

    @property
    def limit(self) -> int:
        return self.creates.limit

    @property
    def read_limit(self) -> int:
        return self.reads.limit

    def room(self) -> int:
        return self.creates.room()

    def share(self, parts: int, *, polling: bool | None) -> None:
        self.creates.share(parts, polling=polling)
        self.reads.share(parts)  # every instance reads, whichever polls

    @asynccontextmanager
    async def slot(self, priority: Priority, *, owner: Hashable,
                   wait: float | None = None) -> AsyncIterator[None]:
        """A slot of the call's budget; `wait`: a read's longest wait for its budget."""
        create = KIND[priority] == "create"
        mine, other = (self.creates, self.reads) if create else (self.reads, self.creates)
        try:
            async with mine.slot(priority, owner=owner, wait=None if create else wait):
                yield
        finally:
            other.poke()  # an answer back: the other's gate may open

    def accepted(self, priority: Priority, sent: float) -> None:
        """Kie took a call sent at `sent` (time.monotonic()): one more it counts, and the proof
        that reads are free if it is a read that came when Kie had surely counted the key's
        whole limit already."""
        now = time.monotonic()
        while self._accepted and self._accepted[0][1] <= now - 2 * self.creates.window:
            self._accepted.popleft()  # (the proof looks a window back from a call's sending)
        if not self.proven and KIND[priority] == "read" \
                and self._surely_counted(sent, now) >= self.creates.whole:
            self.proven = True
            self.creates.poke()
        self._accepted.append((sent, now))

    def refused(self, priority: Priority, pause: float) -> None:
        """Kie answered 429: a create's pauses the key's creates; a read's halves the reads."""
        if KIND[priority] == "create":
            self.proven = False
            self.creates.pause(pause)
        else:
            self.reads.refused()

    def retries_refused(self, priority: Priority) -> bool:
        """A status poll refused is not tried again at once: the tracker reads it again at
        its next time, and that read alone is late."""
        return priority is not Priority.POLL

    def sibling(self) -> ScopedBudget:
        return ScopedBudget(self.creates.sibling())

    def _surely_counted(self, sent: float, answered: float) -> int:
        """Calls Kie had surely counted in its window when a call sent at `sent` and answered
        at `answered` reached it (somewhere between the two, however late the loop sent it):
        accepted ones answered before `sent` (so arrived before it) and sent within the window
        before `answered` (so arrived within it)."""
        return sum(1 for was_sent, was_answered in self._accepted
                   if was_answered <= sent and was_sent > answered - self.creates.window)

    def _create_gate(self, now: float) -> float | None:
        """Unproven: a create waits while a read is in flight, and until the calls Kie may
        still count (in flight, or accepted within the window: a refused one does not count)
        leave room in the key's limit (KIE_RATE_LIMIT, this process's part of it)."""
        if self.proven:
            return 0.0
        if self.reads.in_flight:
            return None
        answers = [answered for _, answered in self._accepted
                   if answered > now - self.creates.window]
        over = self.creates.in_flight + len(answers) - self.creates.limit
        if over < 0:
            return 0.0
        if over >= len(answers):  # only answers coming back free room
            return None
        return answers[over] + self.creates.window - now

    def _read_gate(self, now: float) -> float | None:
        """Unproven: a read waits while a create is in flight (it could take the create's
        place in Kie's window)."""
        return 0.0 if self.proven or not self.creates.in_flight else None


Budget = WholeBudget | ScopedBudget


def budget_for(limiter: RateLimiter, scope: Scope) -> Budget:
    """A key's budget under KIE_RATE_SCOPE `scope`, of `limiter`'s size."""
    return WholeBudget(limiter) if scope == "all" else ScopedBudget(limiter)
