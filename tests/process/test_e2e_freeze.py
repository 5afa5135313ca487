"""An instance frozen (SIGSTOP) on PostgreSQL past the time after which the others count it gone
(INSTANCE_TIMEOUT without a heartbeat), then woken (SIGCONT), with two `python -m bot` processes
on one database: a create it held is neither refunded nor sent by the other, and it sends it once
woken; a result it was sending is delivered once, not refunded (issue 23, item 5: a lease is
fenced when its owner acts, and what a frozen owner may still be sending stays its own).

Production's 30 s timeout and 10 s heartbeat are shrunk in these processes to 4 s and 1 s
(testkit/bot_process.py), and the freeze with them: what is checked is the order of events, the
same at either scale — the frozen one counted gone, the other looking at what it holds (at each
of its heartbeats) while it is, then the frozen one woken. The delivery lease (600 s) and the
send timeout (300 s) keep their length: the freeze stays well within them, as 40 s did."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from bot.store import GenerationState, Store
from testkit.bot_process import BotProcess
from testkit.chat import Person
from testkit.databases import database
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import Req, TaskPlan
from tests.process.test_e2e_postgres import TIMING, poller_pid, start_instances, store_at
from tests.process.test_startup import stop

FROZEN_TIMING = {**TIMING, "INSTANCE_TIMEOUT": 4.0}  # HEARTBEAT 1 s: four beats in a timeout
# The timeout, then two heartbeats more: the other instance has looked at least once while it
# counted the frozen one gone (40 s against 30 s and 10 s in production).
FREEZE = FROZEN_TIMING["INSTANCE_TIMEOUT"] + 2 * FROZEN_TIMING["HEARTBEAT"]
# Telegram's answer to the photo the frozen instance sends: after the freeze began, before it ends.
PHOTO_ANSWER = FREEZE / 2


def creates_of(kie, prompt: str) -> list[Req]:
    """Every create request that reached the fake Kie for `prompt`, refused ones (429) too."""
    return [r for r in kie.requests if r.path.endswith("/createTask")
            and prompt in json.dumps(r.body)]


def photos_to(tg, chat_id: int) -> list:
    """The sendPhoto calls into `chat_id` that Telegram carried out."""
    return [c for c in tg.calls_of("sendPhoto") if c.ok and c.params.get("chat_id") == chat_id]


def lines_of(outputs: list[str], generation_id: int, *words: str) -> str:
    """The bot processes' log lines about one generation (or holding one of `words`), for an
    assertion's message."""
    return "\n".join(f"[instance {n}] {line}" for n, output in enumerate(outputs)
                     for line in output.splitlines()
                     if any(w in line for w in (f"generation {generation_id} ", *words)))


async def generation_of(store: Store, user_id: int):
    [generation] = await store.generations_of(user_id, limit=2)
    return generation


async def stop_all(processes: list[BotProcess]) -> list[str]:
    """Wake any frozen one first: a stopped process cannot take SIGTERM."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
    return [await stop(process) for process in processes]


async def test_frozen_while_its_create_waits_keeps_it_and_sends_it_once_woken(tg, kie, tmp_path):
    """The poller's create meets 429s (the bot retries it after a pause); frozen then, past the
    time after which the other counts it gone.
    Its process is still there and may send the create the moment it wakes, so the other
    instance neither refunds it nor sends it: woken, the poller sends it once, and the picture
    is delivered, charged once, refunded never (a refund the create could follow would be a
    picture paid to Kie and never delivered)."""
    prompt = "a fox frozen mid-create"
    kie.fail_create_next(429, times=2, http_status=429)  # Kie's "Rate limited": retried
    alice = Person(tg, 42, "Alice")
    async with database("postgres", tmp_path) as url:
        processes = await start_instances(2, tmp_path, tg, kie, url, FROZEN_TIMING)
        outputs: list[str] = []
        try:
            pid = await poller_pid(url)  # it takes the updates, so it makes the creates
            poller = next(p for p in processes if p.pid == pid)
            await generate(alice, prompt)
            async with asyncio.timeout(10):
                while not creates_of(kie, prompt):
                    await asyncio.sleep(0.005)
            # Frozen in its wait before the next try (Kie answered 429; it holds back 1-2 s).
            await asyncio.sleep(0.3)
            poller.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            sent_before = creates_of(kie, prompt)
            # The retries are still to come: it was frozen with its create waiting.
            assert all(r.status != 200 for r in sent_before) and kie.creates == [], sent_before

            async with store_at(url) as store:
                # Past the time after which the other counts it gone (its heartbeat late).
                while time.monotonic() - frozen_at < FREEZE:
                    assert not await refunds(store, 42), "refunded while its instance lived"
                    await asyncio.sleep(0.5)
                assert (await generation_of(store, 42)).state is GenerationState.PENDING
                assert len(creates_of(kie, prompt)) == len(sent_before)  # nobody else sent it
                poller.send_signal(signal.SIGCONT)
                await tg.wait_for("sendPhoto", lambda c: c.params.get("chat_id") == 42,
                                  timeout=30)
                async with asyncio.timeout(10):
                    while (await generation_of(store, 42)).state is not GenerationState.DELIVERED:
                        await asyncio.sleep(0.05)
        finally:
            outputs = await stop_all(processes)
        assert all(p.returncode == 0 for p in processes), outputs
        async with store_at(url) as store:
            generation = await generation_of(store, 42)
            log = lines_of(outputs, generation.id, "/createTask")
            assert len(kie.creates) == 1, log  # accepted once
            assert generation.state is GenerationState.DELIVERED, log
            assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == [], log
            assert len(photos_to(tg, 42)) == 1, log
            balance = (await store.get_user(42)).balance
            assert balance == await store.ledger_sum(42) == 60, log


async def test_frozen_mid_send_delivers_the_result_once(tg, kie, tmp_path):
    """Telegram takes its time over the photo; the instance sending it is frozen with the
    request in flight, past the time after which the other counts it gone, then woken: the
    other instance leaves the delivery alone (its owner is still connected, its lease runs),
    the photo arrives once, and nothing is refunded."""
    kie.default_plan = TaskPlan(reads_before_done=1)
    alice = Person(tg, 43, "Alice")
    arrived: list[float] = []

    def arriving(params: dict[str, Any]) -> bool:
        """tg.slow's filter, asked as each sendPhoto arrives: when Alice's is in flight."""
        if params.get("chat_id") != alice.id:
            return False
        arrived.append(time.monotonic())
        return True

    tg.slow("sendPhoto", PHOTO_ANSWER, when=arriving)  # answered while its sender is frozen
    async with database("postgres", tmp_path) as url:
        processes = await start_instances(2, tmp_path, tg, kie, url, FROZEN_TIMING)
        outputs: list[str] = []
        try:
            await generate(alice, "an owl frozen mid-send")
            async with store_at(url) as store:
                async with asyncio.timeout(20):
                    while not arrived:
                        await asyncio.sleep(0.005)
                owner = (await generation_of(store, 43)).owner  # the sender holds the delivery
                assert owner is not None
                sender = next(p for p in processes if p.pid == int(owner.split("-")[0]))
                sender.send_signal(signal.SIGSTOP)
                frozen_at = time.monotonic()
                assert frozen_at - arrived[0] < PHOTO_ANSWER, "frozen after Telegram answered: too late"
                while time.monotonic() - frozen_at < FREEZE:
                    await asyncio.sleep(0.2)
                photos_while_frozen = photos_to(tg, alice.id)
                sender.send_signal(signal.SIGCONT)
                async with asyncio.timeout(20):
                    while (await generation_of(store, 43)).state is GenerationState.SUCCEEDED:
                        await asyncio.sleep(0.05)
                deadline = time.monotonic() + 2.0  # time enough for a second, wrong one to show
                while time.monotonic() < deadline and len(photos_to(tg, alice.id)) < 2:
                    await asyncio.sleep(0.1)
        finally:
            outputs = await stop_all(processes)
        assert all(p.returncode == 0 for p in processes), outputs
        async with store_at(url) as store:
            generation = await generation_of(store, 43)
            log = lines_of(outputs, generation.id)
            assert len(photos_while_frozen) == 1, log  # the fake answered the frozen one's
            assert len(photos_to(tg, alice.id)) == 1, f"{tg.summary()}\n{log}"
            assert generation.state is GenerationState.DELIVERED, log
            assert len(await charges(store, 43)) == 1 and await refunds(store, 43) == [], log
            balance = (await store.get_user(43)).balance
            assert balance == await store.ledger_sum(43) == 60, log
        assert len(kie.creates) == 1
