"""`python -m bot` on PostgreSQL (DATABASE_URL): a whole generation paid and delivered; two and
three instances sharing one database and one set of fakes (one polls, all track and deliver,
each result once, Kie's limit held together); the poller killed and another taking over; a
database that cannot be used is one line and exit 2, never a traceback or the password."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.store import GenerationState, Store
from testkit.bot_process import BotProcess, timing_environment
from testkit.chat import Person
from testkit.databases import database, environment
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan
from testkit.timing import stays, until
from tests.process.test_e2e_restart import start_process
from tests.process.test_startup import NoStartWait, run_to_exit, stop


async def test_a_generation_paid_and_delivered_on_postgres(tg, kie, tmp_path):
    async with database("postgres", tmp_path) as url:
        process = await start_process(tmp_path, tg, kie, **environment(url))
        try:
            alice = Person(tg, 42, "Alice")
            await generate(alice, "a fox on postgres")
            await tg.wait_for("sendPhoto")
        finally:
            output = await stop(process)
        assert process.returncode == 0, output
        assert not (tmp_path / "bot.sqlite3").exists()  # DATABASE_URL wins over DATABASE_PATH
        async with store_at(url) as store:
            assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
            assert (await store.get_user(42)).balance == 60
            assert await store.ledger_sum(42) == 60


@asynccontextmanager
async def store_at(url: str) -> AsyncIterator[Store]:
    """A connection of the test's own to the instances' database."""
    store = await Store.open(url)
    try:
        yield store
    finally:
        await store.close()


async def assert_charged_once(store: Store, people: list[Person]) -> None:
    for person in people:
        assert len(await charges(store, person.user["id"])) == 1
        assert await refunds(store, person.user["id"]) == []


# The instances' heartbeat (10 s in production) and a standby's pause between two tries for long
# polling (2 s), shrunk: what waits on them (a killed poller's tasks taken over at the survivor's
# next heartbeat, its long polling at the next try) takes a second rather than ten.
# INSTANCE_TIMEOUT keeps its 30 s, so that a busy machine never has them count each other gone.
TIMING = {"HEARTBEAT": 1.0, "LOCK_RETRY": 0.5}


async def start_instances(count: int, tmp_path: Path, tg, kie, url: str,
                          timing: dict[str, float] = TIMING) -> list[BotProcess]:
    """`count` processes of `python -m bot` on one database, each in a folder of its own, with
    these constants shrunk (testkit/bot_process.py)."""
    processes: list[BotProcess] = []
    try:
        for n in range(count):
            folder = tmp_path / f"instance{n}"
            folder.mkdir()
            # The first polls (getMe first); the others stand by, calling Telegram to deliver.
            processes.append(await start_process(folder, tg if n == 0 else NoStartWait(tg), kie,
                                                 **environment(url), **timing_environment(**timing)))
        async with store_at(url) as store:
            await until(lambda: all_beat_since_the_last_came(store, count), timeout=20)
    except BaseException:
        for process in processes:
            process.kill()
            await process.wait()
        raise
    return processes


async def all_beat_since_the_last_came(store: Store, count: int) -> bool:
    """All `count` instances are there, and each has had a heartbeat since the last one came:
    each then counts them all, and spends its part of Kie's budget (a beat recounts it)."""
    rows = await store._rows("SELECT started_at, seen_at FROM instances")
    return len(rows) == count and min(r[1] for r in rows) > max(r[0] for r in rows)


async def poller_pid(url: str) -> int:
    """The process holding long polling's turn (its presence connection names its pid)."""
    async with store_at(url) as store:
        rows = await store._rows(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND a.application_name IN (SELECT 'kie-bot ' || id FROM instances)")
    assert len(rows) == 1, rows
    return int(rows[0][0].removeprefix("kie-bot ").split("-")[0])


def conflicts(tg) -> list:
    """getUpdates answered 409: two processes polling at once."""
    return [c for c in tg.calls_of("getUpdates") if c.error_code == 409]


@pytest.mark.parametrize("count", [2, 3])
async def test_instances_share_one_database_and_deliver_each_result_once(tg, kie, tmp_path, count):
    """40 people at once, served by `count` instances on one database and one set of fakes:
    one polls Telegram, all track and deliver; each result sent once, nothing refunded, and
    Kie's limit held by all of them together."""
    kie.default_plan = TaskPlan(reads_before_done=2)
    async with database("postgres", tmp_path) as url:
        processes = await start_instances(count, tmp_path, tg, kie, url)
        try:
            people = [Person(tg, 1000 + n, f"P{n}") for n in range(40)]
            await asyncio.gather(*(generate(p, f"fox number {n}") for n, p in enumerate(people)))
            await tg.wait_for("sendPhoto", count=40, timeout=60)
            # Time enough for a second, wrong delivery to show: watched, it fails at once.
            await stays(lambda: len(tg.calls_of("sendPhoto")) == 40 and conflicts(tg) == [], 1.0)
            # (Not counted after: as the poller stops, the next may ask before its last long
            # poll has ended, and get a 409 once, as from Telegram; aiogram asks again.)
            assert conflicts(tg) == []
        finally:
            outputs = [await stop(process) for process in processes]
        assert all(p.returncode == 0 for p in processes), outputs
        photos = sorted(int(c.params["chat_id"]) for c in tg.calls_of("sendPhoto"))
        assert photos == sorted(p.user["id"] for p in people)  # one each
        assert len(kie.creates) == 40 and kie.rate_limited == 0
        async with store_at(url) as store:
            await assert_charged_once(store, people)
            owners = {g.owner for g in await store.generations_in([GenerationState.DELIVERED])}
            assert len(owners) >= 2, owners  # the work was shared, not done by one


async def test_the_poller_killed_another_takes_over_and_finishes_everything(tg, kie, tmp_path):
    """The polling instance SIGKILLed with 20 tasks running: the other takes over long polling
    (new messages are answered) and every task it held (read, delivered once, none refunded).
    The tasks run until the poller is dead, then end: every result is the survivor's to read
    and deliver (rather than 25 reads each, which spent Kie's budget for 12 s)."""
    kie.default_plan = TaskPlan(reads_before_done=10_000)
    async with database("postgres", tmp_path) as url:
        processes = await start_instances(2, tmp_path, tg, kie, url)
        try:
            people = [Person(tg, 2000 + n, f"Q{n}") for n in range(20)]
            await asyncio.gather(*(generate(p, f"owl number {n}") for n, p in enumerate(people)))
            # Killed once every task id is stored (a create under way would be refunded).
            async with store_at(url) as store:
                while len(await store.generations_in([GenerationState.RUNNING])) < 20:
                    await asyncio.sleep(0.05)
            pid = await poller_pid(url)
            poller = next(p for p in processes if p.pid == pid)
            poller.send_signal(signal.SIGKILL)
            await poller.communicate()
            survivor = next(p for p in processes if p is not poller)
            for task_id in kie.tasks:
                kie.finish(task_id)

            await tg.wait_for("sendPhoto", count=20, timeout=60)
            late = Person(tg, 2999, "Late")
            late.say("/start")
            await late.told("Hi, Late!", timeout=20)  # polled by the survivor now
            assert await poller_pid(url) == survivor.pid
            await stays(lambda: len(tg.calls_of("sendPhoto")) == 20, 1.0)  # and no second one
        finally:
            outputs = [await stop(process) for process in processes if process.returncode is None]
        assert survivor.returncode == 0, outputs
        assert len(tg.calls_of("sendPhoto")) == 20 and len(kie.creates) == 20
        async with store_at(url) as store:
            await assert_charged_once(store, people)


@pytest.mark.parametrize("url", [
    "postgresql://kiebot:s3cretpass@127.0.0.1:1/nothing",            # nothing listens
    "postgresql://postgres:s3cretpass@127.0.0.1:5432/no_such_database",
    "mysql://root@127.0.0.1/x",                                        # not PostgreSQL
])
async def test_database_url_that_cannot_be_used(tg, kie, tmp_path, url):
    code, output, _ = await run_to_exit(tmp_path, tg, kie, DATABASE_URL=url)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0], output
    assert "Traceback" not in output and "s3cretpass" not in output
    assert tg.calls_of("getMe") == []


async def test_two_webhook_instances_with_callbacks_landing_on_the_other(tg, kie, tmp_path):
    """Webhook mode needs no election: both instances serve, neither polls. Telegram posts to
    the one whose webhook was set last, which creates the tasks; Kie's callbacks all land on
    the other one (as behind a load balancer), which wakes whoever has room: each picture
    delivered once, nobody refunded."""
    from testkit.e2e import WEBHOOK_SECRET, free_port  # noqa: PLC0415

    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=1.0)  # ends by the clock: its callback comes then
    ports = [free_port(), free_port()]
    async with database("postgres", tmp_path) as url:
        processes = []
        try:
            for n, port in enumerate(ports):
                folder = tmp_path / f"instance{n}"
                folder.mkdir()
                processes.append(await start_process(
                    folder, NoStartWait(tg), kie, **environment(url), WEB_HOST="127.0.0.1",
                    WEB_PORT=str(port), WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram",
                    WEBHOOK_SECRET=WEBHOOK_SECRET,
                    KIE_CALLBACK_URL=f"http://127.0.0.1:{ports[0]}/kie"))
                await tg.wait_for("setWebhook", count=n + 1, timeout=20)
            people = [Person(tg, 5000 + n, f"W{n}") for n in range(10)]
            await asyncio.gather(*(generate(p, f"heron number {n}") for n, p in enumerate(people)))
            await tg.wait_for("sendPhoto", count=10, timeout=30)
            await asyncio.sleep(0.5)
        finally:
            outputs = [await stop(process) for process in processes]
        assert all(p.returncode == 0 for p in processes), outputs
        assert tg.calls_of("getUpdates") == []
        assert len(tg.calls_of("sendPhoto")) == 10 and kie.rate_limited == 0
        assert all(status == 200 for _, status in kie.callbacks_sent) and kie.callbacks_sent
        async with store_at(url) as store:
            await assert_charged_once(store, people)
