"""The shared Kie.ai budget: the limiter alone (the client under it against the fake:
tests/app/test_ratelimit_kie.py)."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from bot.kie.ratelimit import Priority, RateLimiter

MODEL = "google/imagen4"
INPUT = {"prompt": "A cat astronaut"}


async def timed_slot(limiter: RateLimiter, priority: Priority = Priority.READ,
                     owner: object = None) -> float:
    """Take a slot for a request answered at once; returns when it was granted."""
    async with limiter.slot(priority, owner=owner):
        return time.monotonic()


def max_in_any_window(times: list[float], window: float) -> int:
    """The most grants inside any half-open interval of `window` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times))



# -- the limiter alone: the budget -------------------------------------------------------------

async def test_never_more_than_limit_in_any_window() -> None:
    """Concurrent callers over ~3 windows: every sliding window holds at most `limit` grants."""
    limit, window = 4, 0.2
    limiter = RateLimiter(limit, window)
    started = time.monotonic()
    times = await asyncio.gather(*(timed_slot(limiter, list(Priority)[i % 3]) for i in range(14)))
    assert max_in_any_window(times, window) <= limit
    assert max(times) - started < 4 * window + 0.3  # and it does not crawl: 14 grants in 4 windows


async def test_simulated_kie_never_sees_more_than_limit_whatever_the_latency() -> None:
    """A Kie that counts requests on arrival, behind random latency both ways (up to half a window,
    far above the old grant-time margin), some calls failing and some cancelled in flight: no
    window of Kie's ever holds more than `limit` arrivals."""
    limit, window, latency = 5, 0.1, 0.05
    rng = random.Random(7)
    limiter = RateLimiter(limit, window)
    arrivals: list[float] = []

    async def call(n: int) -> None:
        async with limiter.slot(rng.choice(list(Priority)), owner=n % 4):
            await asyncio.sleep(rng.uniform(0, latency))  # on the way to Kie
            arrivals.append(time.monotonic())  # where Kie counts it
            await asyncio.sleep(rng.uniform(0, latency))  # the answer on its way back
            if n % 7 == 0:
                raise ConnectionResetError

    calls = [asyncio.create_task(call(n)) for n in range(40)]
    for n in range(3, 40, 9):  # cancelled wherever they are: queued, on the way, or answered
        asyncio.get_running_loop().call_later(rng.uniform(0, 0.5), calls[n].cancel)
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    assert sum(isinstance(r, ConnectionResetError) for r in results) >= 4
    assert len(arrivals) >= 35
    assert max_in_any_window(arrivals, window) <= limit


async def test_in_flight_slots_block_grants_and_the_window_starts_at_the_answer() -> None:
    """While the budget is full of requests awaiting their answers nothing is granted, however old
    their grants; a slot frees `window` seconds after its answer came back."""
    window = 0.1
    limiter = RateLimiter(2, window)
    answered = asyncio.Event()

    async def slow_call() -> None:
        async with limiter.slot():
            await answered.wait()

    in_flight = [asyncio.create_task(slow_call()) for _ in range(2)]
    waiting = asyncio.create_task(timed_slot(limiter))
    await asyncio.sleep(3 * window)
    assert not waiting.done()
    answered.set()
    answer_time = time.monotonic()
    await asyncio.gather(*in_flight)
    granted = await asyncio.wait_for(waiting, 1.0)
    assert window <= granted - answer_time < window + 0.1


@pytest.mark.parametrize("ending", ["error", "cancel"])
async def test_failed_or_cancelled_request_still_counts(ending: str) -> None:
    """A request that ends in an error or is cancelled may have reached Kie: its slot counts for a
    window from that moment, not from its grant."""
    window = 0.15
    limiter = RateLimiter(1, window)

    async def call() -> None:
        async with limiter.slot():
            await asyncio.sleep(0.1 if ending == "error" else 10)
            raise ConnectionResetError

    task = asyncio.create_task(call())
    await asyncio.sleep(0.1)
    if ending == "cancel":
        task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    ended = time.monotonic()
    assert isinstance(results[0], ConnectionResetError if ending == "error" else asyncio.CancelledError)
    granted = await asyncio.wait_for(timed_slot(limiter), 1.0)
    assert window - 0.01 <= granted - ended < window + 0.1


async def test_pause_holds_everyone_back() -> None:
    """pause(s) delays every caller, whatever its priority, by s seconds even with budget left."""
    limiter = RateLimiter(100, 1.0)
    assert await asyncio.wait_for(timed_slot(limiter), 0.05)  # free budget: at once
    start = time.monotonic()
    limiter.pause(0.3)
    times = await asyncio.gather(*(timed_slot(limiter, p) for p in Priority))
    for granted in times:
        assert 0.3 <= granted - start < 0.55


# -- the limiter alone: who goes first ---------------------------------------------------------

async def test_create_waiter_served_before_earlier_poll_waiter() -> None:
    """With the budget spent, a CREATE queued after a POLL (and a READ) is granted first."""
    limiter = RateLimiter(1, 0.15)
    await timed_slot(limiter)
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        async with limiter.slot(priority):
            order.append(name)

    queued = []
    for name, priority in [("poll-1", Priority.POLL), ("read", Priority.READ),
                           ("poll-2", Priority.POLL), ("create", Priority.CREATE)]:
        queued.append(asyncio.create_task(take(name, priority)))
        await asyncio.sleep(0.01)  # each is really waiting before the next arrives
    assert order == []
    await asyncio.wait_for(asyncio.gather(*queued), 2.0)
    assert order == ["create", "read", "poll-1", "poll-2"]


async def take_in_order(limiter: RateLimiter, order: list[str], owner: str,
                        priority: Priority = Priority.CREATE) -> None:
    async with limiter.slot(priority, owner=owner):
        order.append(owner)


async def test_round_robin_between_owners() -> None:
    """Owner A queues 24 creates, then owner B queues 2: B's are interleaved with A's (B waits for
    at most one more of A's), not served after all of them."""
    limiter = RateLimiter(2, 0.02)
    order: list[str] = []
    calls = [asyncio.create_task(take_in_order(limiter, order, "A")) for _ in range(24)]
    await asyncio.sleep(0)
    served = len(order)
    assert served < 24
    calls += [asyncio.create_task(take_in_order(limiter, order, "B")) for _ in range(2)]
    await asyncio.wait_for(asyncio.gather(*calls), 2.0)
    assert order[served:served + 4] == ["A", "B", "A", "B"]


async def test_priority_beats_fairness() -> None:
    """An owner with many creates queued still goes before another owner's single poll."""
    limiter = RateLimiter(1, 0.02)
    await timed_slot(limiter)
    order: list[str] = []
    calls = [asyncio.create_task(take_in_order(limiter, order, "B", Priority.POLL))]
    await asyncio.sleep(0)
    calls += [asyncio.create_task(take_in_order(limiter, order, "A")) for _ in range(5)]
    await asyncio.wait_for(asyncio.gather(*calls), 2.0)
    assert order == ["A"] * 5 + ["B"]


async def test_owners_forgotten_when_idle() -> None:
    """Bookkeeping is kept only for owners with something queued: after 300 owners (some giving
    up while queued) the limiter remembers none of them."""
    limiter = RateLimiter(5, 0.01)
    calls = [asyncio.create_task(timed_slot(limiter, p, owner=n)) for n in range(100) for p in Priority]
    await asyncio.sleep(0)
    for call in calls[::10]:
        call.cancel()
    await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5.0)
    assert limiter._owners == {} and limiter._waiting == []


# -- the limiter alone: callers that give up ---------------------------------------------------

async def test_cancelled_waiter_does_not_block_others() -> None:
    """Cancelling the waiter at the head of the queue lets the next one through on time."""
    limiter = RateLimiter(1, 0.2)
    first = await timed_slot(limiter)
    head = asyncio.create_task(timed_slot(limiter, Priority.CREATE))
    other = asyncio.create_task(timed_slot(limiter, Priority.POLL))
    await asyncio.sleep(0.05)
    head.cancel()
    granted = await asyncio.wait_for(other, 1.0)
    assert 0.2 <= granted - first < 0.45
    with pytest.raises(asyncio.CancelledError):
        await head
    await asyncio.wait_for(timed_slot(limiter), 1.0)  # and the limiter keeps working afterwards


async def test_waiter_cancelled_while_others_wake_does_not_block() -> None:
    """A caller cancelled just as it arrives, while other waiters are being woken, must not wedge the
    budget (it once left a dead entry at the head of the queue)."""
    limiter = RateLimiter(1, 0.1)
    await timed_slot(limiter)
    waiters = [asyncio.create_task(timed_slot(limiter, Priority.POLL)) for _ in range(3)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()  # its clean-up wakes the two others
    await asyncio.sleep(0)
    for _ in range(3):  # a caller that gives up just as it arrives (a shutdown, a timeout)
        late = asyncio.create_task(timed_slot(limiter, Priority.CREATE))
        await asyncio.sleep(0)
        late.cancel()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*waiters[1:], timed_slot(limiter)), 0.8)


async def test_waiter_cancelled_as_it_is_granted_frees_its_slot() -> None:
    """A waiter granted and cancelled before it could run sent nothing: its slot comes back."""
    limiter = RateLimiter(1, 0.0)  # a zero window: the slot is free as soon as the answer is in
    holder = limiter.slot()
    await holder.__aenter__()
    waiter = asyncio.create_task(timed_slot(limiter))
    await asyncio.sleep(0)  # queued
    await holder.__aexit__(None, None, None)  # the answer: the waiter is granted at once...
    waiter.cancel()  # ...and cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(timed_slot(limiter), 0.5)


async def test_a_share_shrinks_at_once_and_grows_only_a_window_later() -> None:
    """Instances sharing a key: a newcomer halves each one's part at once; when one goes, the
    survivor's part grows only after a whole window, once the gone one's requests no longer
    count in Kie's. Asked again meanwhile (each heartbeat), the growth is not put off."""
    limiter = RateLimiter(20, 0.2)
    limiter.share(2)
    assert limiter.limit == 10
    limiter.share(1)
    assert limiter.limit == 10
    await asyncio.sleep(0.1)
    limiter.share(1)  # the next heartbeat, within the window
    await asyncio.sleep(0.15)
    assert limiter.limit == 20  # 0.2 s after the first ask
    limiter.share(3)
    assert limiter.limit == 6
    limiter.share(2)
    limiter.share(4)  # one more came before the growth: the smaller part, at once
    assert limiter.limit == 5
    await asyncio.sleep(0.25)
    assert limiter.limit == 5


def test_with_long_polling_the_poller_has_half_of_a_key_and_the_others_share_the_rest() -> None:
    """The poller makes every create (a picture: a create and about one read)."""
    parts = []
    for instances, polling in ((1, True), (2, True), (2, False), (3, True), (3, False),
                               (4, False), (3, None)):
        limiter = RateLimiter(20, 10.0)
        limiter.share(instances, polling=polling)
        parts.append(limiter.limit)
    assert parts == [20, 10, 10, 10, 5, 3, 6]
