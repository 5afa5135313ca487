"""End to end: /broadcast through the real bot and the fake Bot API. The preview (the message
copied back, the audience's count, ✅ Send to N); the copies at BROADCAST_RATE at most (read
from the fake's clock: no second holds more than ceil(rate) + 1), one per person, whatever
Telegram answers: 403 marks the person blocked and the next broadcast skips them, a 429 holds
the whole broadcast for its retry_after, a 5xx is tried again, a chat not found fails; the
report; /broadcast stop; ✅ pressed twice or its update repeated; a restart half-way; admins
only; usage without a reply or with a wrong audience."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bot.services import broadcast as broadcast_service
from bot.store import Store
from bot.store.broadcasts import RecipientState
from testkit.bot import ADMIN_ID, RunningBot, make_settings
from testkit.chat import Person, button
from testkit.fakes.telegram import Call, FakeTelegram
from testkit.timing import until

Dict = dict[str, Any]
RATE = 30.0  # the highest BROADCAST_RATE allowed: quick tests


@pytest.fixture(autouse=True)
def quick_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcast_service, "PROGRESS_GAP", 0.1)
    monkeypatch.setattr(broadcast_service, "IDLE_LOOK", 0.1)
    monkeypatch.setattr(broadcast_service, "SERVER_RETRY_FIRST", 0.05)


@pytest.fixture
async def running(tg, kie, tmp_path, start_bot, settings) -> RunningBot:
    """The bot (on `settings`' database, which the `store` fixture opens too) at RATE."""
    return await start_bot(make_settings(tmp_path, tg, kie, broadcast_rate=RATE))


async def crowd(tg: FakeTelegram, store: Store, first: int, count: int,
                language: str = "en") -> list[int]:
    """`count` people the bot knows (registered as an update from them would register them),
    each with a private chat Telegram knows."""
    ids = list(range(first, first + count))
    for user_id in ids:
        tg.user(user_id, f"P{user_id}", language_code=language)
        await store.upsert_user(user_id, username=None, first_name=f"P{user_id}", last_name=None,
                                tg_language=language, starting_credits=0)
    return ids


async def preview(tg: FakeTelegram, admin: Person, source: Dict, args: str = "") -> Dict:
    """`/broadcast [args]` in reply to `source`: the message with ✅ Send to N."""
    admin.say(f"/broadcast {args}".strip(), reply_to=source)
    call = await admin.told("Send it?")
    return admin.message(ADMIN_ID, call.response["message_id"])


def copies(tg: FakeTelegram, source: Dict, since: int = 0) -> list[Call]:
    """The copies of `source` Telegram accepted, after the `since`-th recorded call."""
    return [c for c in tg.calls[since:] if c.method == "copyMessage" and c.ok
            and c.params["message_id"] == source["message_id"]]


def copied_to(tg: FakeTelegram, source: Dict, since: int = 0) -> list[int]:
    return sorted(c.params["chat_id"] for c in copies(tg, source, since))


def most_in_one_second(calls: list[Call]) -> int:
    times = sorted(c.time for c in calls)
    return max((sum(1 for t in times[i:] if t - start <= 1.0) for i, start in enumerate(times)),
               default=0)


async def sent(tg: FakeTelegram, admin: Person, source: Dict, args: str = "") -> tuple[int, Dict]:
    """Preview, ✅, and the report: (index in tg.calls where the copies begin, the report)."""
    message = await preview(tg, admin, source, args)
    since = len(tg.calls)
    await admin.press(message, "✅")
    report = await admin.told("finished", timeout=20)
    return since, report.params


async def test_preview_shows_the_message_and_counts_each_audience(tg, running, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("Spring sale!")  # the admin is registered by it: one of `all`, `en`
    await crowd(tg, store, 100, 3, "en")
    await crowd(tg, store, 200, 2, "ru")
    await store.record_purchase(200, charge_id="c1", package="p", credits=10, stars=5)
    expected = {"": 6, "all": 6, "paying": 1, "active": 6, "en": 4, "ru": 2}
    for args, count in expected.items():
        message = await preview(tg, admin, source, args)
        assert f"✅ Send to {count}" in [b["text"] for row in message["reply_markup"][
            "inline_keyboard"] for b in row]
        assert f"will get: {count} " in message["text"]
        shown = admin.message(ADMIN_ID, message["reply_to_message"]["message_id"])
        assert shown["text"] == "Spring sale!"  # the copy, as people will get it
    assert copied_to(tg, source) == [ADMIN_ID] * len(expected)  # previews only: nothing sent
    assert await store._rows("SELECT * FROM broadcasts") == []


async def test_twenty_people_ten_percent_blocked_each_gets_one_copy_at_the_rate(
        tg, running, store):
    """Two of twenty blocked the bot: marked, and the next broadcast skips them; every other
    person gets one copy; no second holds more than ceil(rate) + 1 copies."""
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    people = await crowd(tg, store, 100, 20)
    blocked = people[3], people[11]
    for user_id in blocked:
        tg.block(user_id)
    since, report = await sent(tg, admin, source)
    reachable = [*sorted(set(people) - set(blocked)), ADMIN_ID]
    assert copied_to(tg, source, since) == sorted(reachable)
    assert "Sent: 19" in report["text"] and "Blocked the bot: 2" in report["text"]
    assert most_in_one_second(copies(tg, source, since)) <= math.ceil(RATE) + 1
    for user_id in blocked:
        assert (await store.get_user(user_id)).blocked

    tg.unblock(blocked[0])  # Telegram would take it again, but the bot knows better
    since, report = await sent(tg, admin, source)
    assert copied_to(tg, source, since) == sorted(reachable)
    attempted = {c.params["chat_id"] for c in tg.calls[since:] if c.method == "copyMessage"}
    assert not attempted & set(blocked)
    assert "Sent: 19" in report["text"]


async def test_a_429_holds_the_whole_broadcast_for_its_retry_after(tg, running, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    people = await crowd(tg, store, 100, 12)
    tg.fail_next("copyMessage", error_code=429, retry_after=1,
                 when=lambda p: p["chat_id"] == people[5])
    since, report = await sent(tg, admin, source)
    assert copied_to(tg, source, since) == sorted([*people, ADMIN_ID])  # none lost, none doubled
    calls = [c for c in tg.calls[since:] if c.method == "copyMessage"]
    [flood] = [n for n, c in enumerate(calls) if not c.ok]
    assert calls[flood + 1].time - calls[flood].time >= 1.0 - 0.01  # nothing before it ended
    assert calls[flood + 1].params["chat_id"] == people[5]
    assert "Sent: 13" in report["text"] and "Failed: 0" in report["text"]


async def test_a_5xx_is_tried_again_and_a_chat_not_found_fails(tg, running, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    people = await crowd(tg, store, 100, 4)
    await store.upsert_user(999, username=None, first_name="Gone", last_name=None,
                            tg_language="en", starting_credits=0)  # Telegram has no such chat
    tg.fail_next("copyMessage", error_code=502, times=2, when=lambda p: p["chat_id"] == people[1])
    since, report = await sent(tg, admin, source)
    assert copied_to(tg, source, since) == sorted([*people, ADMIN_ID])
    assert "Sent: 5" in report["text"] and "Failed: 1" in report["text"]
    assert not (await store.get_user(999)).blocked


async def test_broadcast_stop_leaves_the_rest_unsent_and_says_so(tg, running, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    await crowd(tg, store, 100, 20)
    tg.slow("copyMessage", 0.1, times=100)
    message = await preview(tg, admin, source)
    since = len(tg.calls)
    await admin.press(message, "✅")
    await until(lambda: len(copies(tg, source, since)) >= 3)
    admin.say("/broadcast stop")
    report = (await admin.told("stopped", timeout=20)).params["text"]
    done = len(copies(tg, source, since))
    assert 3 <= done < 21
    assert f"Sent: {done}" in report and f"Not sent, stopped before: {21 - done}" in report
    admin.say("/broadcast stop")
    await admin.told("No broadcast is under way")
    assert len(copies(tg, source, since)) == done
    assert len(set(copied_to(tg, source, since))) == done  # none twice


async def test_a_second_press_or_a_repeated_update_starts_nothing_more(tg, running, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    people = await crowd(tg, store, 100, 5)
    tg.slow("copyMessage", 0.05, times=100)
    message = await preview(tg, admin, source)
    since = len(tg.calls)
    data = button(message, "✅")
    await admin.press(message, "✅")
    answer = await admin.press(message, "✅", data=data)  # the keyboard as it was
    assert "made with this button already" in answer["text"]
    first = next(u for u in tg.update_log if (u.get("callback_query") or {}).get("data") == data)
    tg.redeliver(first["update_id"])  # the first press's update, again
    await admin.told("finished", timeout=20)
    assert copied_to(tg, source, since) == sorted([*people, ADMIN_ID])
    assert len(await store._rows("SELECT * FROM broadcasts")) == 1


async def test_a_restart_half_way_sends_the_rest_and_nobody_twice(tg, kie, tmp_path, running,
                                                                  start_bot, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    source = admin.say("News")
    people = await crowd(tg, store, 100, 20)
    tg.slow("copyMessage", 0.05, times=100)
    message = await preview(tg, admin, source)
    since = len(tg.calls)
    await admin.press(message, "✅")
    await until(lambda: len(copies(tg, source, since)) >= 5)
    await running.kill()  # cancelled wherever it is: maybe with a copy on its way
    await start_bot(running.settings)
    report = (await admin.told("finished", timeout=20)).params["text"]
    received = copied_to(tg, source, since)
    assert len(received) == len(set(received))  # at most one each
    states = {int(r[0]): str(r[1]) for r in await store._rows(
        "SELECT user_id, state FROM broadcast_recipients")}
    delivered = {u for u, s in states.items() if s == RecipientState.SENT}
    cut_off = {u for u, s in states.items() if s == RecipientState.UNKNOWN}
    assert len(cut_off) <= 1 and set(states.values()) <= {RecipientState.SENT,
                                                          RecipientState.UNKNOWN}
    assert delivered <= set(received) <= delivered | cut_off  # the one cut off: maybe arrived
    assert len(states) == len(people) + 1  # the admin too
    assert f"Sent: {len(delivered)}" in report


async def test_only_admins_and_usage_without_a_reply_or_with_a_wrong_audience(tg, running):
    admin, mallory = Person(tg, ADMIN_ID, "Admin"), Person(tg, 77, "Mallory")
    source = admin.say("News")
    mallory.say("/broadcast", reply_to=source)
    await mallory.told("for admins only")
    admin.say("/broadcast")
    await admin.told("Reply with /broadcast to the message to send.")
    await admin.told("Example: <code>/broadcast paying</code>")
    admin.say("/broadcast everyone", reply_to=source)
    await admin.told("Say one audience")
    admin.say("/broadcast en ru", reply_to=source)
    await admin.told("Say one audience")
    assert tg.calls_of("copyMessage") == []
