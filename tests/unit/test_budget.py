"""KIE_RATE_SCOPE's budgets (bot/kie/budget.py): the reads' budget that learns Kie's, and a key's
two budgets coupled until reads are seen to be free. Short windows, no server."""

from __future__ import annotations

import asyncio
import time

from bot.kie.budget import KIND, ReadBudget, ScopedBudget, WholeBudget, budget_for
from bot.kie.ratelimit import Priority, RateLimiter


async def fill(budget: ReadBudget, n: int) -> None:
    """`n` reads at once: those past the limit wait for it."""
    async def one() -> None:
        async with budget.slot(Priority.POLL):
            pass
    await asyncio.gather(*(one() for _ in range(n)))


async def test_the_read_budget_grows_by_one_after_each_window_it_was_the_limit() -> None:
    budget = ReadBudget(2, 0.05)
    await fill(budget, 3)  # one waited: the limit held it back
    await asyncio.sleep(0.06)
    await fill(budget, 1)  # the next window: the last one is judged
    assert budget.limit == 3
    await asyncio.sleep(0.06)
    await fill(budget, 1)  # a window nobody waited in: no growth
    assert budget.limit == 3


async def test_the_read_budget_halves_on_a_429_once_a_window_and_never_below_one() -> None:
    budget = ReadBudget(20, 0.05)
    budget.refused()
    budget.refused()  # the same burst
    assert budget.limit == 10
    for expected in (5, 2, 1, 1):
        await asyncio.sleep(0.06)
        budget.refused()
        assert budget.limit == expected


async def test_a_window_with_a_429_does_not_grow() -> None:
    budget = ReadBudget(4, 0.05)
    await fill(budget, 6)
    budget.refused()
    assert budget.limit == 2
    await asyncio.sleep(0.06)
    await fill(budget, 1)
    assert budget.limit == 2


async def test_instances_share_the_learned_read_budget() -> None:
    """Each instance spends its part of what it learned of the key's read budget; its part of
    a growth is one more of the whole, not one more each."""
    budget = ReadBudget(20, 0.05)
    budget.share(2)
    assert budget.limit == 10
    budget.refused()
    assert (budget.whole, budget.limit) == (10, 5)
    for _ in range(2):  # two windows in which reads waited: the whole grows by two
        await asyncio.sleep(0.06)
        await fill(budget, budget.limit + 1)
    await asyncio.sleep(0.06)
    await fill(budget, 1)
    assert (budget.whole, budget.limit) == (12, 6)


def test_calls_are_told_apart_in_one_table() -> None:
    assert KIND == {Priority.CREATE: "create", Priority.READ: "read", Priority.POLL: "read"}
    assert isinstance(budget_for(RateLimiter(5, 1.0), "all"), WholeBudget)
    assert isinstance(budget_for(RateLimiter(5, 1.0), "creates"), ScopedBudget)


async def call(budget: ScopedBudget, priority: Priority, *, refused: bool = False,
               held: float = 0.0) -> float:
    """One call through the budget as KieClient makes it; returns when it was granted."""
    async with budget.slot(priority, owner=None):
        sent = time.monotonic()
        await asyncio.sleep(held)
        if refused:
            budget.refused(priority, 0.01)
        else:
            budget.accepted(priority, sent)
    return sent


async def test_until_reads_are_seen_free_creates_and_reads_share_the_limit() -> None:
    """Unproven, a key runs as if Kie counted every call: with 3 reads accepted in the window
    of a limit of 4, only one create goes before the window passes."""
    budget = ScopedBudget(RateLimiter(4, 0.2))
    for _ in range(3):
        await call(budget, Priority.POLL)
    begin = time.monotonic()
    first = await call(budget, Priority.CREATE)
    second = await call(budget, Priority.CREATE)
    assert first - begin < 0.1 <= second - begin
    assert not budget.proven


async def test_refused_reads_leave_the_creates_their_room() -> None:
    budget = ScopedBudget(RateLimiter(2, 0.2))
    await call(budget, Priority.POLL, refused=True)
    await call(budget, Priority.POLL, refused=True)  # Kie counted neither
    assert budget.reads.limit == 1  # the two 429s (one burst) halved it once
    begin = time.monotonic()
    await call(budget, Priority.CREATE)
    await call(budget, Priority.CREATE)
    assert time.monotonic() - begin < 0.1


async def test_unproven_a_create_waits_for_the_read_in_flight_and_a_read_for_the_create() -> None:
    """Either could otherwise reach Kie first and take the other's place in its window."""
    budget = ScopedBudget(RateLimiter(4, 0.2))
    reading = asyncio.create_task(call(budget, Priority.POLL, held=0.05))
    await asyncio.sleep(0.01)
    begin = time.monotonic()
    creating = asyncio.create_task(call(budget, Priority.CREATE, held=0.05))
    assert await creating - begin >= 0.03  # after the read's answer, not beside it
    await reading
    begin = time.monotonic()
    creating = asyncio.create_task(call(budget, Priority.CREATE, held=0.05))
    await asyncio.sleep(0.01)
    assert await call(budget, Priority.POLL) - begin >= 0.04
    await creating


async def test_a_read_accepted_past_the_whole_limit_proves_reads_free() -> None:
    """Kie accepted a read while it surely counted the key's limit: from then on creates have
    the whole limit to themselves, until a create is refused."""
    budget = ScopedBudget(RateLimiter(2, 0.3))
    await call(budget, Priority.CREATE)
    await call(budget, Priority.CREATE)
    await call(budget, Priority.POLL)  # Kie counted 2 already: a read past them was taken
    assert budget.proven
    await call(budget, Priority.POLL)
    begin = time.monotonic()
    await call(budget, Priority.CREATE)  # the creates' own window is full: it waits for it
    assert time.monotonic() - begin >= 0.2
    await call(budget, Priority.CREATE, refused=True)
    assert not budget.proven


async def test_a_late_read_goes_beyond_the_reads_budget() -> None:
    budget = ScopedBudget(RateLimiter(1, 0.3))
    budget.proven = True
    await call(budget, Priority.POLL)
    begin = time.monotonic()
    async with budget.slot(Priority.POLL, owner=None, wait=0.0):
        pass
    assert time.monotonic() - begin < 0.1
