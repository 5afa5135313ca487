"""The tracker, driven directly: one loop, due times in the database, refunds exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.catalog import get_model
from bot.config import Settings
from bot.i18n import create_i18n
from bot.kie import KieClient, RateLimiter
from bot.services.delivery import Delivery, Outcome
from bot.services.notifier import Notifier
from bot.services.schedule import Schedule
from bot.services.tracker import DELIVERY_LEASE, Tracker, delivery_retry_delay
from bot.store import Generation, GenerationState, LedgerKind, Store
from testkit.bot import KIE_KEY, TOKEN, make_settings
from testkit.databases import ENGINES, database
from testkit.fakes.kie import TaskPlan


@dataclass
class Rig:
    store: Store
    tracker: Tracker
    settings: Settings

    async def running(self, task_id: str | None, *, due_in: float = 0.0,
                      deadline_in: float = 600.0, user_id: int = 42,
                      chat_id: int | None = None) -> Generation:
        """A charged generation whose Kie task is `task_id` (None: never submitted)."""
        await self.store.upsert_user(user_id, username=None, first_name="Alice", last_name=None,
                                     tg_language="en", starting_credits=100)
        draft = await self.store.create_draft(user_id=user_id, chat_id=chat_id or user_id,
                                              request_message_id=None, kind="image",
                                              prompt="a fox", model="imagen4")
        generation = await self.store.start_generation(
            draft.id, revision=draft.revision, input={"prompt": "a fox"}, price=40,
            deadline_at=time.time() + deadline_in)
        if task_id is not None:
            await self.store.mark_submitted(generation.id, task_id, time.time() + due_in)
        return await self.store.get_generation(generation.id)

    async def refunds(self, user_id: int = 42) -> int:
        return sum(r.kind == LedgerKind.REFUND for r in await self.store.ledger(user_id, 100))


@pytest.fixture(params=ENGINES)
async def rig(request, tmp_path, tg, kie) -> AsyncIterator[Rig]:
    async with database(request.param, tmp_path) as target:
        async for rig in _rig(target, tmp_path, tg, kie):
            yield rig


async def _rig(target, tmp_path, tg, kie) -> AsyncIterator[Rig]:
    tg.user(42, "Alice")
    settings = make_settings(tmp_path, tg, kie)
    i18n = create_i18n("en")
    i18n.set_current(i18n)
    store = await Store.open(target)
    kie_client = KieClient(settings.kie.api_key, base_url=kie.url, upload_url=kie.url,
                           limiter=RateLimiter(20, 0.5), backoff=0.01)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)),
              default=DefaultBotProperties(parse_mode="HTML"))
    downloads = httpx.AsyncClient()
    schedule = Schedule(settings.kie)
    notifier = Notifier(bot, store, i18n, (), schedule=schedule)
    delivery = Delivery(bot, store, kie=kie_client, notifier=notifier, i18n=i18n, http=downloads)
    tracker = Tracker(store, kie=kie_client, delivery=delivery, notifier=notifier, kie_settings=settings.kie,
                      schedule=schedule, delivery_deadline=settings.bot.delivery_deadline)
    yield Rig(store, tracker, settings)
    await tracker.stop()
    await downloads.aclose()
    await bot.session.close()
    await kie_client.aclose()
    await store.close()


async def create_task(kie, plan: TaskPlan | None = None) -> str:
    if plan is not None:
        kie.default_plan = plan
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KIE_KEY}"}) as http:
        answer = await http.post(kie.url + "/api/v1/jobs/createTask",
                                 json={"model": "google/imagen4", "input": {"prompt": "a fox"}})
    return answer.json()["data"]["taskId"]


async def tick(tracker: Tracker) -> None:
    """One pass of the loop, and the status reads it started."""
    await tracker.tick()
    await tracker.drain()


async def test_a_due_task_is_read_and_rescheduled(rig, kie):
    """A due, still-running task is read once and its next check is put in the future."""
    task_id = await create_task(kie, TaskPlan(outcome="never"))
    due = await rig.running(task_id)
    later = await rig.running(await create_task(kie), due_in=60)
    ticked_at = time.time()
    await tick(rig.tracker)
    assert kie.count("recordInfo") == 1
    checked = await rig.store.get_generation(due.id)
    assert checked.checks == 1 and checked.kie_state == "waiting"
    # (Compared with the tick, not the assertion: on a busy machine "later" may be past.)
    assert checked.next_check_at > ticked_at
    assert (await rig.store.get_generation(later.id)).checks == 0


async def test_success_is_delivered_once(rig, kie, tg):
    """A successful task becomes `succeeded`, is sent once, and ends `delivered`."""
    generation = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)))
    await tick(rig.tracker)
    await tick(rig.tracker)
    await tg.wait_for("sendPhoto")
    for _ in range(50):
        if (await rig.store.get_generation(generation.id)).state == GenerationState.DELIVERED:
            break
        await asyncio.sleep(0.02)
    assert (await rig.store.get_generation(generation.id)).state == GenerationState.DELIVERED
    assert len(tg.calls_of("sendPhoto")) == 1 and kie.count("recordInfo") == 1


async def test_failure_checked_twice_at_once_refunds_once(rig, kie):
    """Two concurrent checks of one failed task refund it exactly once."""
    generation = await rig.running(await create_task(kie, TaskPlan(outcome="fail",
                                                                   reads_before_done=0)))
    await asyncio.gather(rig.tracker.check(generation), rig.tracker.check(generation))
    assert await rig.refunds() == 1
    assert (await rig.store.get_user(42)).balance == 100
    failed = await rig.store.get_generation(generation.id)
    assert failed.state == GenerationState.FAILED and failed.failure_detail == "Internal error"


async def test_unknown_task_is_refunded_as_lost(rig, kie):
    """Kie no longer knows the task (404): refund."""
    generation = await rig.running("task_that_never_was")
    await tick(rig.tracker)
    assert (await rig.store.get_generation(generation.id)).failure == "lost"
    assert await rig.refunds() == 1


async def test_read_errors_keep_the_task_open(rig, kie):
    """Status reads failing (5xx) after retries: no refund, checked again later."""
    generation = await rig.running(await create_task(kie))
    kie.fail_reads_next(500, times=100)
    ticked_at = time.time()
    await tick(rig.tracker)
    after = await rig.store.get_generation(generation.id)
    assert after.state == GenerationState.RUNNING and await rig.refunds() == 0
    # Rescheduled from the failed read, not left due (on a busy machine "later" may be past).
    assert after.checks == generation.checks + 1 and after.next_check_at > ticked_at


async def test_past_deadline_gets_one_final_read(rig, kie, tg):
    """At the deadline a task is read once more: finished → delivered, else refunded."""
    finished = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)),
                                 due_in=60, deadline_in=-1)
    stuck = await rig.running(await create_task(kie, TaskPlan(outcome="never")), due_in=60,
                              deadline_in=-1, user_id=43)
    never_sent = await rig.running(None, deadline_in=-1, user_id=44)
    await tick(rig.tracker)
    assert (await rig.store.get_generation(finished.id)).state in (
        GenerationState.SUCCEEDED, GenerationState.DELIVERED)
    assert (await rig.store.get_generation(stuck.id)).failure == "timeout"
    assert (await rig.store.get_generation(never_sent.id)).failure == "timeout"
    assert (await rig.refunds(42), await rig.refunds(43), await rig.refunds(44)) == (0, 1, 1)


async def test_wake_checks_a_new_task_at_once(rig, kie):
    """The loop sleeps until the next due time, but a new task wakes it."""
    await rig.tracker.start()
    await asyncio.sleep(0.1)  # idle: nothing open, the loop waits up to a minute
    await rig.running(await create_task(kie, TaskPlan(outcome="never")))
    rig.tracker.wake()
    for _ in range(100):
        if kie.count("recordInfo"):
            break
        await asyncio.sleep(0.01)
    assert kie.count("recordInfo") == 1


async def test_resume_refunds_never_submitted_and_resends_finished(rig, kie, tg):
    """On start: pending (never sent to Kie) → refunded; succeeded but unsent → sent."""
    pending = await rig.running(None)
    done = await rig.running(await create_task(kie), user_id=43)
    tg.user(43, "Bob")
    await rig.store.mark_succeeded(done.id, [kie.url + "/files/none/0.png"],
                                   deliver_by=time.time() + 600, lease_until=time.time() + 600)
    await rig.tracker.resume()
    assert (await rig.store.get_generation(pending.id)).failure == "interrupted"
    await tick(rig.tracker)  # the last run's delivery lease was released: due now
    await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 43)


async def test_a_send_refused_because_the_group_moved_follows_it(rig, kie, tg):
    """No service message needed: Telegram's "upgraded to a supergroup" answer moves the row."""
    tg.group_chat(-4200, "Friends", type="group")
    generation = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)),
                                   chat_id=-4200)
    tg.upgrade_group(-4200, -1004200)
    await tick(rig.tracker)
    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["chat_id"] == -1004200
    refused = [c for c in tg.calls_of("sendPhoto") if not c.ok]
    assert refused and refused[0].params["chat_id"] == -4200
    for _ in range(100):
        stored = await rig.store.get_generation(generation.id)
        if stored.state is GenerationState.DELIVERED:
            break
        await asyncio.sleep(0.02)
    assert (stored.state, stored.chat_id) == (GenerationState.DELIVERED, -1004200)


def test_delivery_retry_gaps_double_up_to_a_minute():
    assert [delivery_retry_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert delivery_retry_delay(10_000) == 60


async def test_a_tick_forgets_expired_drafts_and_old_update_ids(rig):
    """A command flood leaves drafts behind: the tracker purges them (and update ids too old
    for Telegram to repeat) now and then."""
    await rig.store.upsert_user(42, username=None, first_name="Alice", last_name=None,
                                tg_language="en", starting_credits=0)
    old = await rig.store.create_draft(user_id=42, chat_id=42, request_message_id=None,
                                       kind="image", prompt="old", model=None)
    fresh = await rig.store.create_draft(user_id=42, chat_id=42, request_message_id=None,
                                         kind="image", prompt="fresh", model=None)
    await rig.store._rows("UPDATE drafts SET created_at = ? WHERE id = ?",
                                (time.time() - 7 * 3600, old.id))
    await rig.store.first_sight_of_update(1)
    await rig.store._rows("UPDATE updates SET seen_at = 0")
    await tick(rig.tracker)
    assert await rig.store.get_draft(old.id) is None
    assert await rig.store.get_draft(fresh.id) is not None
    assert await rig.store.first_sight_of_update(1)  # forgotten


class HeldDelivery:
    """The real delivery, held at the door until released: a very slow upload."""

    def __init__(self, real: Delivery) -> None:
        self.real = real
        self.release = asyncio.Event()
        self.started = 0

    async def deliver(self, generation: Generation) -> Outcome:
        self.started += 1
        await self.release.wait()
        return await self.real.deliver(generation)


async def test_a_delivery_slower_than_its_lease_is_not_started_twice(rig, kie, tg):
    now = [time.time()]
    held = HeldDelivery(rig.tracker.delivery)
    tracker = Tracker(rig.store, kie=rig.tracker.kie, delivery=held,  # type: ignore[arg-type]
                      notifier=rig.tracker.notifier, kie_settings=rig.settings.kie,
                      schedule=rig.tracker.schedule,
                      delivery_deadline=rig.settings.bot.delivery_deadline, clock=lambda: now[0])
    try:
        await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)))
        now[0] = time.time() + 0.01  # the task is due
        await tick(tracker)  # success: marked, and its delivery starts (and hangs)
        await asyncio.sleep(0.05)
        assert held.started == 1
        now[0] += DELIVERY_LEASE + 1  # the row's lease has run out while it is still sending
        await tick(tracker)
        await asyncio.sleep(0.05)
        assert held.started == 1
        held.release.set()
        await tg.wait_for("sendPhoto")
        await asyncio.sleep(0.2)
        assert len([c for c in tg.calls_of("sendPhoto") if c.ok]) == 1
    finally:
        await tracker.stop()


class HeldReads:
    """The real Kie client, except that status reads of one task hang until released: a read
    stuck in retries of Kie's 5xx, or in a slow network."""

    def __init__(self, real: KieClient, task_id: str) -> None:
        self.real = real
        self.task_id = task_id
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def status(self, api: str, task_id: str, **kwargs: Any) -> Any:
        if task_id == self.task_id:
            await self.release.wait()
        return await self.real.status(api, task_id, **kwargs)


async def test_a_slow_read_holds_up_no_other_task(rig, kie, tg):
    """While one task's read hangs, a task that falls due later is read and delivered."""
    stuck_task = await create_task(kie, TaskPlan(outcome="never"))
    held = HeldReads(rig.tracker.kie, stuck_task)
    tracker = Tracker(rig.store, kie=held, delivery=rig.tracker.delivery,  # type: ignore[arg-type]
                      notifier=rig.tracker.notifier, kie_settings=rig.settings.kie,
                      schedule=rig.tracker.schedule, delivery_deadline=rig.settings.bot.delivery_deadline)
    try:
        stuck = await rig.running(stuck_task)
        await tracker.start()
        await asyncio.sleep(0.1)  # its read has started, and hangs
        quick = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)),
                                  due_in=0.1, user_id=43)
        tg.user(43, "Bob")
        tracker.wake()  # as a new task does
        await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 43)
        assert (await rig.store.get_generation(quick.id)).state in (
            GenerationState.SUCCEEDED, GenerationState.DELIVERED)
        assert (await rig.store.get_generation(stuck.id)).checks == 0  # still hanging
        held.release.set()
        for _ in range(100):
            if (await rig.store.get_generation(stuck.id)).checks == 1:
                break
            await asyncio.sleep(0.02)
        assert (await rig.store.get_generation(stuck.id)).checks == 1
    finally:
        held.release.set()
        await tracker.stop()


async def test_the_tracker_learns_from_each_result_and_from_the_database_at_start(rig, kie, tg):
    imagen = get_model("imagen4")
    assert imagen is not None
    for user_id in range(42, 48):
        tg.user(user_id, "Someone")
        generation = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)),
                                       user_id=user_id)
        # Submitted 12 s ago.
        await rig.store._rows("UPDATE generations SET submitted_at = ? WHERE id = ?",
                                    (time.time() - 12, generation.id))
        await tick(rig.tracker)
    assert rig.tracker.schedule.usual(imagen) == pytest.approx(12, abs=1)
    assert [m for m, _ in await rig.store.recent_durations(3)] == ["imagen4"] * 3
    fresh = Schedule(rig.settings.kie)
    fresh.observe_all(await rig.store.recent_durations(30))
    assert fresh.usual(imagen) == pytest.approx(12, abs=1)


async def test_settling_lets_the_delivery_under_way_end_and_starts_nothing_new(rig, kie, tg):
    """A graceful stop: the send under way is waited for (up to the grace) and recorded; a task
    that falls due meanwhile is left for the next start."""
    held = HeldDelivery(rig.tracker.delivery)
    tracker = Tracker(rig.store, kie=rig.tracker.kie, delivery=held,  # type: ignore[arg-type]
                      notifier=rig.tracker.notifier, kie_settings=rig.settings.kie,
                      schedule=rig.tracker.schedule, delivery_deadline=rig.settings.bot.delivery_deadline)
    try:
        sending = await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)))
        await tracker.start()
        while not held.started:
            await asyncio.sleep(0.01)
        settling = asyncio.create_task(tracker.settle(10.0))
        await rig.running(await create_task(kie), user_id=43)
        tracker.wake()
        await asyncio.sleep(0.2)
        assert not settling.done() and kie.count("recordInfo") == 1
        held.release.set()
        await asyncio.wait_for(settling, 5)
        assert (await rig.store.get_generation(sending.id)).state is GenerationState.DELIVERED
        await asyncio.sleep(0.2)
        assert kie.count("recordInfo") == 1
    finally:
        held.release.set()
        await tracker.stop()


async def test_settling_waits_no_longer_than_the_grace(rig, kie, tg):
    held = HeldDelivery(rig.tracker.delivery)  # never released: a send that hangs
    tracker = Tracker(rig.store, kie=rig.tracker.kie, delivery=held,  # type: ignore[arg-type]
                      notifier=rig.tracker.notifier, kie_settings=rig.settings.kie,
                      schedule=rig.tracker.schedule, delivery_deadline=rig.settings.bot.delivery_deadline)
    try:
        await rig.running(await create_task(kie, TaskPlan(reads_before_done=0)))
        await tracker.start()
        while not held.started:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await tracker.settle(0.3)
        assert 0.25 < time.monotonic() - started < 2
    finally:
        await tracker.stop()


async def test_the_status_line_reads_its_persons_language_once_and_not_inside_its_gap(
        rig, kie, monkeypatch):
    """Every read of a running task ticks the status line: inside the edit gap the tick costs
    no database read, and the person's language is read once per generation."""
    generation = await rig.running("task_x")
    reads = []
    get_user = rig.store.get_user

    async def counted(user_id: int):
        reads.append(user_id)
        return await get_user(user_id)

    monkeypatch.setattr(rig.store, "get_user", counted)
    notifier = rig.tracker.notifier
    now = [1000.0]
    monkeypatch.setattr(notifier, "_clock", lambda: now[0])
    await notifier.status(generation)  # the first tick: edits, reads the language
    for _ in range(5):  # within the gap: nothing
        now[0] += 0.5
        await notifier.status(generation)
    now[0] += 10.0
    await notifier.status(generation)  # past the gap: edits again, the language kept
    assert reads == [42]
