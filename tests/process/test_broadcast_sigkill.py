"""A broadcast SIGKILLed half-way, then `python -m bot` started again: the rest is sent, and
nobody ever gets two copies (a copy on its way at the kill counts as unknown, never resent)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bot.store import Store
from bot.store.broadcasts import RecipientState
from testkit.bot import ADMIN_ID, KIE_KEY, TOKEN
from testkit.chat import Person
from testkit.databases import ENGINES, database, environment
from tests.process.test_e2e_restart import start_process

PEOPLE = 30


@pytest.mark.parametrize("engine", ENGINES)
async def test_sigkill_in_the_middle_then_restart_sends_each_person_one_copy_at_most(
        tg, kie, tmp_path, engine):
    async with database(engine, tmp_path) as target:
        store = await Store.open(target)
        try:
            for user_id in range(100, 100 + PEOPLE):
                tg.user(user_id, f"P{user_id}")
                await store.upsert_user(user_id, username=None, first_name="P", last_name=None,
                                        tg_language="en", starting_credits=0)
        finally:
            await store.close()
        env = {**environment(target), "BROADCAST_RATE": "30"}
        tg.slow("copyMessage", 0.03, times=1000)  # a broadcast long enough to kill half-way
        process = await start_process(tmp_path, tg, kie, **env)
        admin = Person(tg, ADMIN_ID, "Admin")
        source = admin.say("News")
        admin.say("/broadcast", reply_to=source)
        preview = await admin.told("Send it?")
        await admin.press(admin.message(ADMIN_ID, preview.response["message_id"]), "✅")
        since = len(tg.calls)

        def received() -> list[int]:
            return [c.params["chat_id"] for c in tg.calls[since:]
                    if c.method == "copyMessage" and c.ok]

        while len(received()) < 8:
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        output = (await process.communicate())[0].decode()
        assert process.returncode == -signal.SIGKILL
        before = len(received())
        assert before < PEOPLE + 1  # killed half-way

        process = await start_process(tmp_path, tg, kie, **env)
        try:
            await admin.told("finished", timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            output += (await asyncio.wait_for(process.communicate(), 15))[0].decode()
        assert process.returncode == 0, output
        copies = received()
        assert len(copies) == len(set(copies))  # nobody twice
        store = await Store.open(target)
        try:
            states = {int(r[0]): str(r[1]) for r in await store._rows(
                "SELECT user_id, state FROM broadcast_recipients")}
        finally:
            await store.close()
        assert len(states) == PEOPLE + 1  # the admin is one of `all` too
        sent = {u for u, s in states.items() if s == RecipientState.SENT}
        unknown = {u for u, s in states.items() if s == RecipientState.UNKNOWN}
        assert len(unknown) <= 1 and len(sent) + len(unknown) == PEOPLE + 1
        assert sent <= set(copies) <= sent | unknown
        assert TOKEN not in output and KIE_KEY not in output
