"""The tracker: one loop follows every open generation until it is delivered or refunded.

Due times live in the database, so a restart resumes where the last run stopped. Every status
read goes through the Kie client's shared rate limiter. A callback (later) only wakes the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from collections.abc import Callable

from bot.catalog import get_model
from bot.config import Settings
from bot.kie import KieClient
from bot.kie.constants import STATE_FAIL, STATE_SUCCESS, STATES_RUNNING
from bot.kie.errors import KieError, KieNotFound
from bot.services.delivery import Delivery
from bot.services.notifier import Notifier
from bot.store import Generation, GenerationState, Store

log = logging.getLogger(__name__)

# Kie's advice: check often while a task is young, then back off.
BACKOFF_DIVISOR = 4.0
IDLE_WAKEUP = 60.0
FAILURE_PAUSE = 1.0


def next_check_delay(elapsed: float, expected: float, smallest: float, largest: float) -> float:
    """Seconds until the next status read of a task `elapsed` seconds old."""
    if elapsed < expected:
        return smallest
    return min(largest, smallest + (elapsed - expected) / BACKOFF_DIVISOR)


class Tracker:
    def __init__(self, store: Store, kie: KieClient, delivery: Delivery, notifier: Notifier,
                 settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.kie = kie
        self.delivery = delivery
        self.notifier = notifier
        self.settings = settings
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        await self.resume()
        self._loop_task = asyncio.create_task(self._run(), name="tracker")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(self) -> None:
        """After a restart: refund what never reached Kie, send what finished but was not sent.
        Running tasks need nothing: their next check time is in the database."""
        for generation in await self.store.generations_in([GenerationState.PENDING]):
            await self._fail(generation, "interrupted")
        for generation in await self.store.generations_in([GenerationState.SUCCEEDED]):
            self._deliver(generation)

    async def _run(self) -> None:
        while True:
            try:
                healthy = await self.tick()
            except Exception:  # the loop must outlive any one bad row or outage
                log.exception("tracker tick failed")
                healthy = False
            if not healthy:  # what failed is still due: pause rather than spin on it
                await asyncio.sleep(FAILURE_PAUSE)
                continue
            wakeup = await self.store.next_wakeup()
            delay = IDLE_WAKEUP if wakeup is None else min(IDLE_WAKEUP, wakeup - self._clock())
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                except TimeoutError:
                    pass
            self._wakeup.clear()

    async def tick(self) -> bool:
        """Check everything that is due now (and whatever is past its deadline).
        False when a check failed unexpectedly."""
        now = self._clock()
        overdue = await self.store.overdue_generations(now)
        due = await self.store.due_generations(now, limit=self.settings.kie_rate_limit)
        batch = {g.id: g for g in [*overdue, *due]}
        results = await asyncio.gather(*(self.check(g) for g in batch.values()),
                                       return_exceptions=True)
        healthy = True
        for generation_id, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                log.error("generation %s: check failed", generation_id, exc_info=result)
                healthy = False
        return healthy

    async def check(self, generation: Generation) -> None:
        if generation.task_id is None:  # charged, never submitted, and past its deadline
            await self._fail(generation, "timeout")
            return
        try:
            record = await self.kie.get_task(generation.task_id)
        except KieNotFound:
            await self._fail(generation, "lost")
            return
        except KieError as error:
            log.warning("generation %s: status read failed: %s", generation.id, error)
            await self._after_read(generation, generation.kie_state)
            return
        if record.state == STATE_SUCCESS and record.result_urls:
            finished = await self.store.mark_succeeded(generation.id, record.result_urls)
            if finished is not None:
                self._deliver(finished)
        elif record.state in (STATE_SUCCESS, STATE_FAIL):
            await self._fail(generation, "kie_failed",
                             record.fail_msg or ("no result" if record.state == STATE_SUCCESS else None))
        else:
            if record.state not in STATES_RUNNING:
                log.warning("generation %s: unknown Kie state %r, polling again",
                            generation.id, record.state)
            await self._after_read(generation, record.state)

    async def _after_read(self, generation: Generation, kie_state: str | None) -> None:
        now = self._clock()
        if now >= generation.deadline_at:
            await self._fail(generation, "timeout")
            return
        model = get_model(generation.model)
        delay = next_check_delay(
            now - (generation.submitted_at or generation.created_at),
            expected=model.expected_seconds if model else 60,
            smallest=self.settings.kie_poll_interval or (model.poll_interval if model else 5.0),
            largest=self.settings.kie_poll_max_interval)
        await self.store.record_check(generation.id, kie_state,
                                      min(now + delay, generation.deadline_at))
        await self.notifier.status(replace(generation, kie_state=kie_state))

    async def _fail(self, generation: Generation, reason: str, detail: str | None = None) -> None:
        failed = await self.store.fail_generation(generation.id, reason, detail)
        if failed is not None:
            log.info("generation %s refunded: %s %s", generation.id, reason, detail or "")
            await self.notifier.failed(failed)

    def _deliver(self, generation: Generation) -> None:
        """Send in the background, so one slow upload does not hold up every other task."""
        task = asyncio.create_task(self.delivery.deliver(generation),
                                   name=f"deliver-{generation.id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
