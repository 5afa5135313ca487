"""Restarts: a killed bot loses no task, charges once, delivers once; a task it never sent
is refunded on start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bot.store import Generation, GenerationState, LedgerKind, Store
from testkit import ROOT
from testkit.bot import ADMIN_ID, KIE_KEY, TOKEN
from testkit.bot_process import BotProcess, fork_bot
from testkit.chat import Person, button
from testkit.databases import ENGINES, database, environment
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import Call, FakeTelegram


async def start_process(tmp_path: Path, tg, kie, *, cold: bool = False,
                        **extra: str) -> BotProcess | asyncio.subprocess.Process:
    """`python -m bot` as an operator starts it, configured through the environment: forked
    from a server that has done its imports (testkit/bot_process.py), or, `cold`, a new
    interpreter, for what happens before and during those imports (TEST_TIMING is the fork's)."""
    assert not (cold and "TEST_TIMING" in extra), "a cold start runs `python -m bot` as it is"
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN, "KIE_API_KEY": KIE_KEY, "ADMIN_IDS": str(ADMIN_ID),
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"), "TELEGRAM_API_URL": tg.url,
        "KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.url, "KIE_RATE_WINDOW": "0.5",
        "KIE_POLL_INTERVAL": "0.05", "KIE_POLL_MAX_INTERVAL": "0.2", "STARTING_CREDITS": "100",
        **extra,
    }
    started = len(tg.calls_of("getMe"))
    process = await (asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT) if cold
        else fork_bot(tmp_path, env))
    # A new interpreter imports the bot first: seconds of CPU, many more on a busy machine.
    await tg.wait_for("getMe", count=started + 1, timeout=60 if cold else 20)
    return process


@pytest.mark.parametrize("engine", ENGINES)
async def test_sigkill_after_create_then_restart_delivers_once(tg, kie, tmp_path, engine):
    async with database(engine, tmp_path) as target:
        await _sigkill_after_create(tg, kie, tmp_path, environment(target), target)


async def _sigkill_after_create(tg, kie, tmp_path, env, target):
    kie.default_plan = TaskPlan(reads_before_done=1)
    process = await start_process(tmp_path, tg, kie, **env)
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image survive")
    await alice.press(picker, "Imagen 4")
    tg.press(alice.user, alice.refreshed(picker), button(alice.refreshed(picker), "✅"))
    store = await Store.open(target)
    try:  # killed once Kie's task id is stored (before that, a restart can only refund)
        while not await store.generations_in([GenerationState.RUNNING]):
            await asyncio.sleep(0.005)
    finally:
        await store.close()
    process.send_signal(signal.SIGKILL)
    output = (await process.communicate())[0].decode()
    assert process.returncode == -signal.SIGKILL

    process = await start_process(tmp_path, tg, kie, **env)
    try:
        await tg.wait_for("sendPhoto", timeout=15)
        await asyncio.sleep(0.5)  # time enough for a second, wrong delivery to show
    finally:
        process.send_signal(signal.SIGTERM)
        output += (await asyncio.wait_for(process.communicate(), 15))[0].decode()
    assert process.returncode == 0, output
    assert len(tg.calls_of("sendPhoto")) == 1 and len(kie.creates) == 1
    store = await Store.open(target)
    try:
        assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
        assert (await store.get_user(42)).balance == 60
    finally:
        await store.close()
    assert TOKEN not in output and KIE_KEY not in output


async def test_sigterm_stops_cleanly(tg, kie, tmp_path):
    """`python -m bot` itself (`cold`), from a new interpreter to its clean exit."""
    process = await start_process(tmp_path, tg, kie, cold=True)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output = (await asyncio.wait_for(process.communicate(), 15))[0].decode()
    assert process.returncode == 0, output
    assert "bot stopped" in output and "Traceback" not in output
    assert time.monotonic() - started < 10


async def test_abrupt_stop_in_process_then_restart_delivers_once(tg, kie, settings, start_bot, store):
    kie.default_plan = TaskPlan(reads_before_done=50)
    first = await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "keep going")
    while not await store.generations_in([GenerationState.RUNNING]):
        await asyncio.sleep(0.005)
    await first.kill()
    [task] = kie.tasks.values()
    reads_before = task.reads
    kie.finish(task.task_id)

    await start_bot(settings)
    await tg.wait_for("sendPhoto")
    await asyncio.sleep(0.3)
    assert len(tg.calls_of("sendPhoto")) == 1 and task.reads > reads_before
    assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []


async def test_charged_but_never_submitted_is_refunded_on_start(tg, kie, settings, start_bot, store):
    alice = Person(tg, 42, "Alice")
    await store.upsert_user(42, username=None, first_name="Alice", last_name=None,
                            tg_language="en", starting_credits=100)
    draft = await store.create_draft(user_id=42, chat_id=42, request_message_id=None,
                                     kind="image", prompt="lost in a crash", model="imagen4")
    generation = await store.start_generation(draft.id, revision=draft.revision,
                                              input={"prompt": "lost in a crash"},
                                              price=40, deadline_at=time.time() + 600)
    assert (await store.get_user(42)).balance == 60

    await start_bot(settings)
    told = await alice.told("❌ Imagen 4")
    assert "restarted" in told.params["text"] and "40 credits returned" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.generation_id == generation.id and refund.balance_after == 100
    assert (await store.get_generation(generation.id)).state == GenerationState.FAILED
    assert kie.creates == []
    assert [r.kind for r in await store.ledger(42)] == [LedgerKind.REFUND, LedgerKind.CHARGE,
                                                        LedgerKind.GRANT]


# -- a video and a Suno song killed mid-flight; a delivery killed while Telegram is down -----------

async def stored_generation(tmp_path: Path, ready: Callable[[Generation], bool],
                            timeout: float = 15.0) -> Generation:
    """The bot's one generation, read through a second connection, once `ready` holds for it."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    deadline = time.monotonic() + timeout
    try:
        while True:
            found = [g for g in await store.generations_in(list(GenerationState)) if ready(g)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, "the generation never got there"
            await asyncio.sleep(0.005)
    finally:
        await store.close()


async def sigkill(process: BotProcess) -> str:
    process.send_signal(signal.SIGKILL)
    output = (await asyncio.wait_for(process.communicate(), 15))[0].decode()
    assert process.returncode == -signal.SIGKILL
    return output


async def sigterm(process: BotProcess) -> str:
    process.send_signal(signal.SIGTERM)
    output = (await asyncio.wait_for(process.communicate(), 15))[0].decode()
    assert process.returncode == 0, output
    return output


async def assert_delivered_once(tmp_path: Path, generation_id: int, *, price: int,
                                balance: int, output: str, user_id: int = 42) -> None:
    """After the run: that one generation delivered, charged `price` once, never refunded, the
    balance as the ledger says; and no secret in the process's output."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        [generation] = await store.generations_in(list(GenerationState))
        user = await store.get_user(user_id)
        assert user is not None and user.balance == await store.ledger_sum(user_id) == balance
        assert generation.id == generation_id and generation.state == GenerationState.DELIVERED
        assert [c.amount for c in await charges(store, user_id)] == [-price]
        assert await refunds(store, user_id) == []
    finally:
        await store.close()
    assert TOKEN not in output and KIE_KEY not in output


def ok_calls(tg: FakeTelegram, method: str) -> list[Call]:
    return [c for c in tg.calls_of(method) if c.ok]


async def test_sigkill_while_a_video_runs_then_restart_delivers_it_once(
        tg: FakeTelegram, kie: FakeKie, tmp_path: Path) -> None:
    # Running until the test says otherwise, so nothing can be delivered before the kill.
    kie.default_plan = TaskPlan(reads_before_done=10_000, content_type="video/mp4")
    process = await start_process(tmp_path, tg, kie, STARTING_CREDITS="1000")
    alice = Person(tg, 42, "Alice")
    request, _ = await generate(alice, "a fox running", "Kling", command="/video")
    running = await stored_generation(tmp_path, lambda g: g.state == GenerationState.RUNNING
                                      and g.task_id is not None and kie.tasks[g.task_id].reads >= 1)
    output = await sigkill(process)
    assert running.task_id is not None
    task = kie.tasks[running.task_id]
    assert ok_calls(tg, "sendVideo") == [] and not task.done
    reads_before = task.reads
    task.plan = replace(task.plan, reads_before_done=task.step + 2)  # two more reads, then done

    process = await start_process(tmp_path, tg, kie, STARTING_CREDITS="1000")
    try:
        [video] = await tg.wait_for("sendVideo", timeout=15)
        await asyncio.sleep(0.5)  # time enough for a second, wrong delivery to show
    finally:
        output += await sigterm(process)
    assert len(ok_calls(tg, "sendVideo")) == 1 and tg.calls_of("sendMediaGroup") == []
    assert video.params["video"] == task.result_urls[0]
    assert video.params["reply_parameters"]["message_id"] == request["message_id"]
    assert task.reads >= reads_before + 3  # the new process followed the same Kie task
    assert len(kie.creates) == 1 and kie.count("/jobs/createTask") == 1
    await assert_delivered_once(tmp_path, running.id, price=150, balance=850,
                                output=output)


@pytest.mark.parametrize("seen", ["answered by Kie", "recorded by the bot"])
async def test_sigkill_after_suno_first_success_then_restart_delivers_both_tracks_once(
        tg: FakeTelegram, kie: FakeKie, tmp_path: Path, seen: str) -> None:
    # PENDING → TEXT_SUCCESS → FIRST_SUCCESS, which it keeps reporting until the test says otherwise.
    kie.default_plan = TaskPlan(reads_before_done=10_000)
    process = await start_process(tmp_path, tg, kie)
    alice = Person(tg, 42, "Alice")
    request, _ = await generate(alice, "a calm song about the sea", "Suno v4.5",
                                ("Instrumental",), command="/music")

    def first_track_ready(g: Generation) -> bool:
        if g.task_id is None or kie.tasks[g.task_id].state != "FIRST_SUCCESS":
            return False  # not yet read by the bot while one track of two was ready
        return seen == "answered by Kie" or g.kie_state == "FIRST_SUCCESS"

    running = await stored_generation(tmp_path, first_track_ready)
    output = await sigkill(process)
    assert running.task_id is not None
    task = kie.tasks[running.task_id]
    assert task.api == "suno" and task.state == "FIRST_SUCCESS" and task.reads >= 3
    assert running.state == GenerationState.RUNNING
    assert tg.calls_of("sendMediaGroup") == [] and tg.calls_of("sendAudio") == []
    reads_before = task.reads
    # After the restart: FIRST_SUCCESS once more (one track only: nothing to send yet), then SUCCESS.
    task.plan = replace(task.plan, reads_before_done=task.step + 1)

    process = await start_process(tmp_path, tg, kie)
    try:
        [album] = await tg.wait_for("sendMediaGroup", timeout=15)
        await asyncio.sleep(0.5)  # time enough for a second, wrong delivery to show
    finally:
        output += await sigterm(process)
    assert len(tg.calls_of("sendMediaGroup")) == 1 and tg.calls_of("sendAudio") == []
    media = album.params["media"]
    assert [m["type"] for m in media] == ["audio", "audio"]
    assert [m["media"] for m in media] == task.result_urls and len(set(task.result_urls)) == 2
    assert all(m.get("title") for m in media)
    assert album.params["reply_parameters"]["message_id"] == request["message_id"]
    assert task.reads >= reads_before + 2
    assert len(kie.tasks) == 1 and kie.count("/api/v1/generate") == 1
    assert kie.count("/jobs/createTask") == 0
    await assert_delivered_once(tmp_path, running.id, price=60, balance=40,
                                output=output)


@pytest.mark.parametrize("when", ["as the send fails", "once the retry is scheduled"])
async def test_sigkill_while_telegram_refuses_the_video_then_restart_delivers_it_once(
        tg: FakeTelegram, kie: FakeKie, tmp_path: Path, when: str) -> None:
    kie.default_plan = TaskPlan(reads_before_done=1, content_type="video/mp4")
    tg.outage(502, methods="sendVideo")  # the result is in hand; Telegram cannot take it yet
    process = await start_process(tmp_path, tg, kie, STARTING_CREDITS="1000")
    alice = Person(tg, 42, "Alice")
    request, _ = await generate(alice, "a fox running", "Kling", command="/video")
    finished = await stored_generation(
        tmp_path, lambda g: g.state == GenerationState.SUCCEEDED and bool(tg.calls_of("sendVideo"))
        and (when == "as the send fails" or g.deliveries >= 1))
    output = await sigkill(process)
    assert ok_calls(tg, "sendVideo") == [] and tg.calls_of("sendVideo")
    reads_before = kie.count("/jobs/recordInfo")
    tg.end_outage()

    process = await start_process(tmp_path, tg, kie, STARTING_CREDITS="1000")
    try:
        [video] = await tg.wait_for("sendVideo", timeout=15)
        await asyncio.sleep(0.5)  # time enough for a second, wrong delivery to show
    finally:
        output += await sigterm(process)
    assert len(ok_calls(tg, "sendVideo")) == 1
    [task] = kie.tasks.values()
    assert video.params["video"] == task.result_urls[0] == finished.result_urls[0]
    assert video.params["reply_parameters"]["message_id"] == request["message_id"]
    # The result was in the database: the new process sent it without asking Kie again.
    assert kie.count("/jobs/recordInfo") == reads_before
    assert len(kie.creates) == 1 and kie.count("/jobs/createTask") == 1
    await assert_delivered_once(tmp_path, finished.id, price=150, balance=850,
                                output=output)
