"""The tracker: one loop follows every open generation until it is delivered or refunded.

Due times live in the database, so a restart resumes where the last run stopped. Every status
read goes through the Kie client's shared rate limiter. A finished result is owned the same way
until Telegram has it: a delivery that fails for a passing reason is due again later, and one
not done by its deadline is refunded. A callback (later) only wakes the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.catalog import get_model
from bot.config import KieSettings
from bot.kie import KieClient
from bot.kie.constants import API_MARKET, STATE_FAIL
from bot.kie.errors import KieAuthError, KieError, KieNoResult, KieNotFound
from bot.kie.schemas import TaskStatus
from bot.services import improve
from bot.services.background import Errands, cancel, spawn
from bot.services.delivery import DELIVERY_LEASE, Delivery, Outcome
from bot.services.keys import retire_refused_key
from bot.services.notifier import Notifier
from bot.services.schedule import REMEMBERED, Schedule
from bot.store import DRAFT_LIFETIME, WITHOUT_RESULT, Generation, GenerationState, Store
from bot.store.daily import READING_MEMORY

log = logging.getLogger(__name__)

IDLE_WAKEUP = 60.0
FAILURE_PAUSE = 1.0
# A status read in progress holds its row this long (a read waits for the rate limit and retries
# 5xx for seconds); one that dies with its process is due again after it.
CHECK_LEASE = 30.0
# Gaps between delivery attempts while Telegram is down: 1 s doubling up to a minute.
DELIVERY_RETRY_FIRST = 1.0
DELIVERY_RETRY_MAX = 60.0
HOUSEKEEPING_GAP = 600.0
# Telegram keeps an update for 24 hours; a repeat can come no later than that.
UPDATE_MEMORY = 2 * 86400.0
# KIE_RATE_SCOPE=creates: the most reads one pass sends beyond the reads' budget (late ones).
LATE_READS = 1000


def delivery_retry_delay(failures: int) -> float:
    """Seconds until the next delivery attempt after `failures` failed ones."""
    return min(DELIVERY_RETRY_MAX, DELIVERY_RETRY_FIRST * 2.0 ** min(failures, 10))


class Tracker:
    def __init__(self, store: Store, *, kie: KieClient, delivery: Delivery, notifier: Notifier,
                 kie_settings: KieSettings, schedule: Schedule, delivery_deadline: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.kie = kie
        self.delivery = delivery
        self.notifier = notifier
        self.kie_settings = kie_settings
        self.delivery_deadline = delivery_deadline  # DELIVERY_DEADLINE
        self.schedule = schedule
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._checks: dict[int, asyncio.Task[None]] = {}
        self._recheck: set[int] = set()  # woken (a callback) while its read was under way
        self._full = False  # the last pass had more reads due than room for them
        self._deliveries: dict[int, asyncio.Task[None]] = {}
        self._errands = Errands()  # recoveries, refunds told
        self.last_run_at: float | None = None  # the end of the last pass (for /healthz)
        self._housekept_at = 0.0
        self._stopping = False  # settle() or stop() was called: no new pass or work starts

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """After Presence.start: this instance is among the live ones already."""
        self.schedule.observe_all(await self.store.recent_durations(REMEMBERED))
        self.store.listen_for_work(self.wake)
        await self.resume()
        self._loop_task = asyncio.create_task(self._run(), name="tracker")

    async def settle(self, grace: float) -> None:
        """A graceful stop's first step: take no new work, and give the deliveries under way up
        to `grace` seconds to end. One cut off may leave Telegram holding the result without
        its being recorded, and the next start would send it again."""
        self._stopping = True
        self.wake()  # the loop ends after the pass under way
        if self._deliveries:
            await asyncio.wait(set(self._deliveries.values()), timeout=grace)

    async def stop(self) -> None:
        """End everything still running here (after `settle`, if gracefully)."""
        self._stopping = True
        await self._errands.stop()
        await cancel([t for t in (self._loop_task, *self._checks.values(),
                                  *self._deliveries.values()) if t is not None])

    async def resume(self) -> None:
        """What gone instances left (at start: the last run of this one): refund the creates
        that may never have reached Kie; their deliveries are due at once, and so are the
        status reads they had under way. Other running tasks need nothing: their next check
        time is in the database, and whichever instance claims them first owns them."""
        for generation in await self.store.refund_orphans(self._clock()):
            log.info("%s refunded: interrupted", generation)
            # Told in the background: Telegram's flood control must not hold the heartbeat.
            self._errands.start(self.notifier.failed(generation), f"told-{generation.id}")
        await self.store.release_leases(self._clock())

    async def after_beat(self) -> None:
        """After each heartbeat (Presence): take over what gone instances left, and look."""
        await self.resume()
        self.wake()

    async def _run(self) -> None:
        while not self._stopping:  # (what is due then stays due, for whoever takes it next)
            try:
                healthy = await self.tick()
            except Exception:  # the loop must outlive any one bad row or outage
                log.exception("tracker tick failed")
                healthy = False
            self.last_run_at = self._clock()
            if not healthy:  # what failed is still due: pause rather than spin on it
                await asyncio.sleep(FAILURE_PAUSE)
                continue
            wakeup = None if self._full else await self.store.next_wakeup()
            delay = IDLE_WAKEUP if wakeup is None else min(IDLE_WAKEUP, wakeup - self._clock())
            if self._full and self.schedule.read_wait is not None:  # to find the late ones
                delay = self.schedule.read_wait / 2
            if delay > 0:
                # (Not asyncio.wait_for: on Python 3.11 a stop that comes as the wakeup is set
                # can be swallowed by it, and the loop would never end.)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
            self._wakeup.clear()

    async def tick(self) -> bool:
        """Start a status read of every task that is due now (as many at once as Kie's budget
        takes), close what is past its deadline, start the deliveries that are due. Reads and
        deliveries run on their own: one slow answer holds up nothing else. False when
        something failed unexpectedly."""
        now = self._clock()
        await self._housekeeping(now)
        healthy = True
        for generation in await self.store.overdue_generations(now):
            try:
                await self.check(generation)
            except Exception:
                log.exception("%s: closing it past its deadline failed", generation)
                healthy = False
        if (wait := self.schedule.read_wait) is not None:
            # KIE_RATE_SCOPE=creates: a read late by half the wait (a pass comes at least that
            # often while reads are left due) goes now, beyond the reads' budget.
            for generation in await self.store.claim_checks(now - wait / 2, now + CHECK_LEASE,
                                                            limit=LATE_READS):
                self._claimed(generation, late=True)
        # Only as many as this instance's part of Kie's budget: other instances read the rest.
        room = max(0, self.kie.read_limit - len(self._checks))
        claimed = await self.store.claim_checks(now, now + CHECK_LEASE, limit=room)
        # More may be due than there was room for: the loop then waits for a read to end (it
        # wakes the loop) instead of spinning on rows that are due but cannot be read yet.
        self._full = len(claimed) >= room
        for generation in claimed:
            self._claimed(generation)
        for generation in await self.store.claim_deliveries(now, now + DELIVERY_LEASE,
                                                            limit=self.kie_settings.rate_limit):
            # Past its lease but still being sent here (a slow upload): never send it twice.
            if generation.id not in self._deliveries:
                self._deliver(generation)
        return healthy

    async def drain(self) -> None:
        """Wait for the status reads under way (and those they start)."""
        while self._checks:
            await asyncio.gather(*self._checks.values(), return_exceptions=True)

    def _claimed(self, generation: Generation, *, late: bool = False) -> None:
        if generation.id in self._checks:  # woken while its read is under way: read again
            self._recheck.add(generation.id)
        else:
            self._check(generation, late=late)

    def _check(self, generation: Generation, *, late: bool = False) -> None:
        spawn(self._checks, generation.id, self._checked(generation, late=late),
              f"check-{generation.id}")

    async def _checked(self, generation: Generation, *, late: bool = False) -> None:
        try:
            await self.check(generation, late=late)
        except Exception:  # the row is due again when its lease ends
            log.exception("%s: check failed", generation)
        if generation.id in self._recheck:
            self._recheck.discard(generation.id)
            with contextlib.suppress(Exception):
                await self.store.check_now(generation.id, generation.task_id or "")
        # The loop sleeps until the lease ends: the next read may be due sooner, and there is
        # room for one the last tick had to leave. (At most one pass per read: Kie's budget.)
        self.wake()

    async def check(self, generation: Generation, *, late: bool = False) -> None:
        """Read the task once and act on it. Under KIE_RATE_SCOPE=creates the read waits for
        the reads' budget at most Schedule.read_wait, and not at all when it is `late`."""
        if generation.state == GenerationState.SUCCEEDED:  # overdue: its delivery is given up
            await self._give_up_delivery(generation)
            return
        if generation.task_id is None:  # charged, never submitted, and past its deadline
            await self._fail(generation, "timeout")
            return
        model = get_model(generation.model)
        wait = self.schedule.read_wait
        if late and wait is not None:
            log.info("%s: read late, beyond the reads' budget", generation)
            wait = 0.0
        try:
            status = await self.kie.status(model.api if model else API_MARKET, generation.task_id,
                                           owner=generation.user_id, key=generation.kie_key,
                                           wait=wait)
        except KieNotFound:
            await self._fail(generation, "lost")
            return
        except KieNoResult as error:  # 408: Kie gave up on the task
            await self._fail(generation, error.reason, error.message or None)
            return
        except KieAuthError as error:
            await self._key_refused(generation, error)
            return
        except KieError as error:
            log.warning("%s: status read failed: %s", generation, error)
            await self._after_read(generation, generation.kie_state)
            return
        if status.phase == "success":
            now = self._clock()
            finished = await self.store.mark_succeeded(
                generation.id, status.urls,
                deliver_by=now + self.delivery_deadline, lease_until=now + DELIVERY_LEASE,
                files=_file_details(status))
            if finished is not None:
                log.info("%s: Kie finished it (%d files)", finished, len(status.urls))
                self.schedule.observe(finished.model, now - (finished.submitted_at or now))
                self._deliver(finished)
        elif status.phase == "fail":
            # Kie's words are kept for the log; they only pick which of our reasons is shown.
            # (A Suno status such as SENSITIVE_WORD_ERROR says more than its message.)
            named = status.state if status.state != STATE_FAIL else None
            detail = ": ".join(filter(None, (named, status.message)))
            await self._fail(generation, "kie_failed", detail or None)
        else:
            if not status.known_state:
                log.warning("%s: unknown Kie state %r, polling again", generation, status.state)
            await self._after_read(generation, status.state)

    def recover(self, generation: Generation, task_id: str) -> None:
        """A callback names the task of a generation refunded with its task unrecorded (the bot
        died between Kie's answer and storing it, or the answer never came): if Kie confirms a
        result, deliver it, free."""
        self._errands.start(self._recover(generation, task_id), f"recover-{generation.id}")

    async def _recover(self, generation: Generation, task_id: str) -> None:
        model = get_model(generation.model)
        # Which key created it was never stored: the one whose account knows the task.
        for key in self.kie.key_ids():
            try:
                status = await self.kie.status(model.api if model else API_MARKET, task_id,
                                               owner=generation.user_id, key=key)
                break
            except KieNotFound:
                continue
            except KieError as error:
                log.warning("%s: task %s not read for recovery: %s", generation, task_id, error)
                return
        else:
            log.warning("%s: task %s is unknown to every key", generation, task_id)
            return
        if status.phase != "success":
            return
        now = self._clock()
        recovered = await self.store.recover(
            generation.id, task_id, status.urls, deliver_by=now + self.delivery_deadline,
            lease_until=now + DELIVERY_LEASE, files=_file_details(status), key=key)
        if recovered is not None:
            log.info("%s: recovered task %s, delivered free", generation, task_id)
            self._deliver(recovered)

    async def _key_refused(self, generation: Generation, error: KieAuthError) -> None:
        """Kie refuses the key that made the task (revoked): nothing of the task can be read
        again, so it is refunded as Kie being unavailable (kie-api.md, 401) instead of read until
        its deadline. The key leaves the pool, as a refused create makes it, and admins are told
        once; its other tasks follow as each is read."""
        key = generation.kie_key or self.kie.key_ids()[0]
        if not await retire_refused_key(self.kie, self.notifier, key, str(error.code)):
            await self.notifier.auth_refused()  # the last key left: the bot's own is refused
        await self._fail(generation, "unavailable")

    async def _after_read(self, generation: Generation, kie_state: str | None) -> None:
        now = self._clock()
        if now >= generation.deadline_at:
            await self._fail(generation, "timeout")
            return
        model = get_model(generation.model)
        elapsed = now - (generation.submitted_at or generation.created_at)
        delay = (self.schedule.later_delay(model, elapsed) if model
                 else self.kie_settings.poll_max_interval)
        await self.store.record_check(generation.id, kie_state,
                                      min(now + delay, generation.deadline_at))
        await self.notifier.status(replace(generation, kie_state=kie_state))

    async def _fail(self, generation: Generation, reason: str, detail: str | None = None, *,
                    states: Sequence[GenerationState] = WITHOUT_RESULT) -> None:
        failed = await self.store.fail_generation(generation.id, reason, detail, states)
        if failed is not None:
            log.info("%s refunded: %s %s", generation, reason, detail or "")
            await self.notifier.failed(failed)

    async def _give_up_delivery(self, generation: Generation) -> None:
        """A finished result Telegram did not take (by its deadline, or at all): refunded."""
        await self._fail(generation, "undelivered", states=(GenerationState.SUCCEEDED,))

    def _deliver(self, generation: Generation) -> None:
        """Send in the background, so one slow upload does not hold up every other task. Not
        once stopping: the result stays leased to this instance, which gives it up at stop."""
        if self._stopping:
            return
        spawn(self._deliveries, generation.id, self._delivery(generation),
               f"deliver-{generation.id}")

    async def _delivery(self, generation: Generation) -> None:
        try:
            outcome = await self.delivery.deliver(generation)
        except Exception:  # a bug must not strand the result: it is tried again later
            log.exception("%s: delivery failed", generation)
            outcome = Outcome.RETRY
        if outcome is Outcome.RETRY:
            delay = delivery_retry_delay(generation.deliveries)
            log.warning("%s: not delivered (attempt %d); again in %.0fs", generation,
                        generation.deliveries + 1, delay)
            await self.store.retry_delivery(generation.id, self._clock() + delay)
            self.wake()
        elif outcome is Outcome.GIVE_UP:
            await self._give_up_delivery(generation)

    async def _housekeeping(self, now: float) -> None:
        """Now and then: forget expired picker drafts, old update ids and balance readings."""
        if now - self._housekept_at < HOUSEKEEPING_GAP:
            return
        self._housekept_at = now
        await self.store.purge(drafts_before=now - DRAFT_LIFETIME,
                               updates_before=now - UPDATE_MEMORY,
                               readings_before=now - READING_MEMORY)
        await improve.settle_stale(self.store, now)  # ✨ attempts a gone process left running


def _file_details(status: TaskStatus) -> list[dict[str, Any]]:
    """What Kie says of each result file (a track's title, length and id), as the store keeps
    it."""
    return [{"title": f.title, "duration": f.duration, "audio_id": f.audio_id}
            for f in status.files]
