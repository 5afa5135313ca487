"""Restarts: a killed bot loses no task, charges once, delivers once; a task it never sent
is refunded on start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from bot.store import GenerationState, LedgerKind, Store
from tests.chat import Person, button
from tests.conftest import ADMIN_ID, KIE_KEY, TOKEN
from tests.fakes.kie import TaskPlan
from tests.test_e2e_image import charges, generate, refunds

ROOT = Path(__file__).resolve().parent.parent


async def start_process(tmp_path: Path, tg, kie, **extra: str) -> asyncio.subprocess.Process:
    """`python -m bot` as an operator starts it, configured through the environment."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN, "KIE_API_KEY": KIE_KEY, "ADMIN_IDS": str(ADMIN_ID),
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"), "TELEGRAM_API_URL": tg.url,
        "KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.url, "KIE_RATE_WINDOW": "0.5",
        "KIE_POLL_INTERVAL": "0.05", "KIE_POLL_MAX_INTERVAL": "0.2", "STARTING_CREDITS": "100",
        **extra,
    }
    started = len(tg.calls_of("getMe"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    await tg.wait_for("getMe", count=started + 1, timeout=20)
    return process


async def test_sigkill_after_create_then_restart_delivers_once(tg, kie, tmp_path):
    kie.default_plan = TaskPlan(reads_before_done=1)
    process = await start_process(tmp_path, tg, kie)
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image survive")
    await alice.press(picker, "Imagen 4")
    tg.press(alice.user, alice.refreshed(picker), button(alice.refreshed(picker), "✅"))
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:  # killed once Kie's task id is stored (before that, a restart can only refund)
        while not await store.generations_in([GenerationState.RUNNING]):
            await asyncio.sleep(0.005)
    finally:
        await store.close()
    process.send_signal(signal.SIGKILL)
    output = (await process.communicate())[0].decode()
    assert process.returncode == -signal.SIGKILL

    process = await start_process(tmp_path, tg, kie)
    try:
        await tg.wait_for("sendPhoto", timeout=15)
        await asyncio.sleep(0.5)  # time enough for a second, wrong delivery to show
    finally:
        process.send_signal(signal.SIGTERM)
        output += (await asyncio.wait_for(process.communicate(), 15))[0].decode()
    assert process.returncode == 0, output
    assert len(tg.calls_of("sendPhoto")) == 1 and len(kie.creates) == 1
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []
        assert (await store.get_user(42)).balance == 60
    finally:
        await store.close()
    assert TOKEN not in output and KIE_KEY not in output


async def test_sigterm_stops_cleanly(tg, kie, tmp_path):
    process = await start_process(tmp_path, tg, kie)
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
