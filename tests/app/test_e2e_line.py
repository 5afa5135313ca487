"""End to end: the bot's own line. While a create waits for Kie's budget, its status line is
redrawn so that "in line: N" counts down as those ahead go out; the ticks cost nothing for a
create that goes at once, end when it goes out, is cancelled or the bot stops, and a status edit
that fails never holds the create back.

Kie's budget here is one request per WINDOW, and the first person's create is answered slowly
(the fake's create_delay): it holds that one slot while the others confirm, so their places are
known (nobody else's create can go before the slow one is answered)."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot import app
from bot.services.notifier import CHAT_EDIT_GAP
from bot.store import Generation, GenerationState, Store
from testkit.bot import make_settings
from testkit.chat import Person, buttons
from testkit.databases import ENGINES, open_store
from testkit.e2e import generate, refunds
from testkit.fakes.kie import Req, TaskPlan
from testkit.fakes.telegram import Call
from testkit.timing import stays, until

GAP = 0.1  # STATUS_EDIT_GAP here (5 s live): the line's ticks
WINDOW = 0.4  # Kie's budget here: one request per WINDOW seconds
HOLD = 1.5  # how long the first create is in flight, holding the budget's one slot
SLOW = 2.0  # how long a hanging status edit hangs
IN_LINE = re.compile(r"in line: (\d+)")


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[int]:
    """Store.line_position's queries, by generation."""
    counted: collections.Counter[int] = collections.Counter()
    original = Store.line_position

    async def line_position(self: Store, generation: Generation) -> Any:
        counted[generation.id] += 1
        return await original(self, generation)
    monkeypatch.setattr(Store, "line_position", line_position)
    return counted


@pytest.fixture
async def tiny_budget(tg, kie, tmp_path, start_bot, timing):
    """The bot with Kie's budget at one request per WINDOW (Kie's own too), the line's gap GAP."""
    timing.status_edit_gap(GAP)
    timing.line_ticks(1000)  # unbounded here: the budget has a test of its own
    kie.rate_limit, kie.window = 1, WINDOW
    kie.default_plan = TaskPlan(outcome="never")
    return await start_bot(make_settings(tmp_path, tg, kie, kie_rate_limit=1,
                                         kie_rate_window=WINDOW, starting_credits=1000))


async def hold_the_budget(kie, alice: Person) -> None:
    """Alice confirms; her create goes at once and is answered HOLD seconds later: until then
    (and a WINDOW more) every other create waits in the bot's own line."""
    kie.create_delay = HOLD
    await generate(alice, "the slow one")
    await until(lambda: kie.count("createTask") == 1)


def create_of(kie, prompt: str) -> Req | None:
    found = [r for r in kie.requests if r.path.endswith("createTask")
             and r.body["input"]["prompt"] == prompt]
    return found[0] if found else None


def edits_of(tg, status: dict, *, ok: bool | None = True) -> list[Call]:
    """The edits of one status message (ok: the successful ones; None: all)."""
    return [c for c in tg.calls_of("editMessageText")
            if c.params["chat_id"] == status["chat"]["id"]
            and c.params["message_id"] == status["message_id"] and (ok is None or c.ok is ok)]


def places(edits: list[Call]) -> list[int]:
    return [int(m[1]) for c in edits if (m := IN_LINE.search(c.params["text"]))]


async def generation_of(store, person: Person) -> Generation:
    [generation] = await store.generations_of(person.id, limit=1)
    return generation


async def test_a_waiting_place_counts_down_until_its_create_goes(tg, kie, tiny_budget, store,
                                                                 counts):
    """Dave confirms third in the line behind Alice's create on its way: his status line says
    so, then counts down as Bob's and Carol's creates go, all before his own goes."""
    alice, bob, carol, dave = (Person(tg, 42 + n, name) for n, name in
                               enumerate(("Alice", "Bob", "Carol", "Dave")))
    await hold_the_budget(kie, alice)
    for person in (bob, carol):
        await generate(person, f"{person.user['first_name']}'s fox")
    _, status = await generate(dave, "Dave's fox")
    kie.create_delay = 0.0
    assert kie.count("createTask") == 1, "the setup did not hold: others went before Dave confirmed"

    await until(lambda: create_of(kie, "Dave's fox") is not None, timeout=HOLD + 4 * WINDOW + 10)
    create = create_of(kie, "Dave's fox")
    await asyncio.sleep(3 * GAP)  # any tick that would still come
    waiting = [c for c in edits_of(tg, status) if IN_LINE.search(c.params["text"])]
    # Drawn at ✅ (third: Alice's create is on its way), then at ticks as Bob's and Carol's go.
    assert list(dict.fromkeys(places(waiting))) == [3, 2, 1], [c.params["text"] for c in waiting]
    assert places(waiting) == sorted(places(waiting), reverse=True)
    assert all(c.time < create.time for c in waiting)  # all before his create went
    assert counts[(await generation_of(store, dave)).id] >= 3


async def test_a_create_that_waits_less_than_a_gap_costs_no_tick(tg, kie, tiny_budget, store,
                                                                   timing, counts):
    """Alice's create goes at once, Bob's after less than a gap: the line is drawn at ✅ and
    not again (no edit, no count) before the create goes, nor after."""
    gap = timing.status_edit_gap(1.5)  # well above WINDOW: Bob's wait is shorter than a gap
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    lines = [(await generate(alice, "at once"))[1], (await generate(bob, "soon"))[1]]
    await until(lambda: kie.count("createTask") == 2)
    generations = [await generation_of(store, alice), await generation_of(store, bob)]

    def untouched() -> bool:
        return (all(counts[g.id] == 1 for g in generations)
                and all(len(places(edits_of(tg, line))) == 1 for line in lines))
    await stays(untouched, gap + 5 * GAP)


async def test_cancel_while_waiting_stops_the_ticks(tg, kie, tiny_budget, store, counts, caplog):
    """Bob's line ticks while he waits; ✖ Cancel: his line's last edit is the cancelled text,
    no tick comes (no edit, no count), and his create is never sent."""
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    await hold_the_budget(kie, alice)
    _, status = await generate(bob, "never mind")
    generation = await generation_of(store, bob)
    await until(lambda: counts[generation.id] >= 3)  # it ticks (the ✅'s count, then two)
    await bob.press(bob.refreshed(status), "✖")
    cancelled = await bob.told("you cancelled it")
    counted = counts[generation.id]

    # Until Alice's create is answered and the budget frees, then Bob's is not sent: no tick.
    await until(lambda: any("not sent to Kie" in r.getMessage() for r in caplog.records),
                timeout=HOLD + 2 * WINDOW + 10)
    await stays(lambda: edits_of(tg, status, ok=None)[-1] is cancelled, 5 * GAP)
    assert counts[generation.id] == counted
    assert create_of(kie, "never mind") is None
    assert len(await refunds(store, bob.id)) == 1


@pytest.mark.parametrize("fault", ["429", "502", "403", "slow"])
async def test_a_failing_status_edit_never_holds_the_create_back(tg, kie, tiny_budget, store,
                                                                 caplog, fault):
    """Bob's line ticks while Alice's slow create holds the budget, and its edits fail (flood
    control, Telegram down, the bot blocked) or hang: his create still goes when the budget
    frees, and nothing is logged as an error."""
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    await hold_the_budget(kie, alice)
    _, status = await generate(bob, "despite it")
    kie.create_delay = 0.0
    generation = await generation_of(store, bob)

    def bobs(params: dict) -> bool:
        return params["chat_id"] == bob.id
    if fault == "slow":  # the next edit hangs SLOW seconds (answered only then)
        tg.slow("editMessageText", SLOW, when=bobs)
    else:
        tg.fail_next("editMessageText", error_code=int(fault), times=100, when=bobs,
                     **({"retry_after": 30} if fault == "429" else {}))

    since = time.monotonic()

    def tried() -> list[Call]:  # the edits of his line since (those answered)
        return [c for c in edits_of(tg, status, ok=None) if c.time > since]
    await until(lambda: create_of(kie, "despite it") is not None, timeout=HOLD + 2 * WINDOW + 10)
    create = create_of(kie, "despite it")
    await until(lambda: _running(store, generation.id), timeout=5)  # sent, and answered
    if fault == "slow":  # the hanging edit is recorded once answered
        await until(lambda: any(c.time < create.time for c in tried()), timeout=SLOW + 5)
    before = [c for c in tried() if c.time < create.time]
    assert before, "no tick tried to edit Bob's line while his create waited"
    if fault == "slow":
        assert create.time < before[0].time + SLOW  # it went while the edit still hung
    if fault in ("429", "403"):
        # Flood control: that chat's ticks wait it out (30 s here); blocked: no more ticks.
        assert len(before) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def _running(store, generation_id: int) -> bool:
    generation = await store.get_generation(generation_id)
    return generation is not None and generation.state is GenerationState.RUNNING


async def test_stopping_while_waiting_ends_the_ticks_quietly(tg, kie, tiny_budget, store, counts,
                                                             caplog, monkeypatch):
    """The bot stops while Bob's line ticks: the ticks end with his create's task, quietly."""
    monkeypatch.setattr(app, "STOP_GRACE", 0.2)
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    await hold_the_budget(kie, alice)
    await generate(bob, "cut short")
    generation = await generation_of(store, bob)
    await until(lambda: counts[generation.id] >= 3)
    await tiny_budget.stop()
    stopped = time.monotonic()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("line-")]
    await asyncio.sleep(5 * GAP)
    # By arrival (a long poll under way at the stop is recorded when it ends, after it).
    assert [(c.method, c.time) for c in tg.calls if c.time > stopped] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_place_is_counted_only_while_it_waits(engine: str, tmp_path: Path) -> None:
    """Store.line_position on both engines: the place among the creates not yet sent, and None
    once its own is no longer one of them (sent, or cancelled), in the one count a tick makes."""
    async with open_store(engine, tmp_path) as store:
        line = []
        for user_id in (1, 2, 3):
            await store.upsert_user(user_id, username=None, first_name="U", last_name=None,
                                    tg_language="en", starting_credits=100)
            draft = await store.create_draft(user_id=user_id, chat_id=user_id,
                                             request_message_id=1, kind="image", prompt="a fox",
                                             model="imagen4", options={})
            line.append(await store.start_generation(
                draft.id, revision=0, input={"prompt": "a fox"}, price=10,
                deadline_at=time.time() + 600, limits=None))
        assert [await store.line_position(g) for g in line] == [1, 2, 3]
        assert await store.fence_create(line[0].id)  # its create goes out
        assert [await store.line_position(g) for g in line] == [None, 1, 2]
        assert await store.cancel_pending(line[1].id, 2) is not None
        assert [await store.line_position(g) for g in line] == [None, None, 1]


async def test_a_long_line_shares_a_few_redraws_a_second(tg, kie, tiny_budget, store, timing,
                                                        counts, monkeypatch):
    """Eight people wait, each line due every GAP (160 redraws a second asked for): all the
    lines together get LINE_TICKS_PER_SECOND, a count query and at most an edit each."""
    rate = timing.line_ticks(4)
    kie.create_delay = 4.0  # Alice's create holds the budget: everyone else waits meanwhile
    await generate(Person(tg, 42, "Alice"), "the slow one")
    await until(lambda: kie.count("createTask") == 1)
    people = [Person(tg, 50 + n, f"P{n}") for n in range(8)]
    for person in people:
        await generate(person, f"{person.user['first_name']}'s fox")
    generations = [await generation_of(store, person) for person in people]
    drawn = sum(counts[g.id] for g in generations)  # at ✅, one each (and any tick since)
    edits = len(tg.calls_of("editMessageText"))
    await asyncio.sleep(1.5)
    assert kie.count("createTask") == 1, "the setup did not hold: someone's create went"
    ticks = sum(counts[g.id] for g in generations) - drawn
    assert 2 <= ticks <= max(rate, 1) + 1.5 * rate + 1, ticks
    assert len(tg.calls_of("editMessageText")) - edits <= ticks
    monkeypatch.setattr(app, "STOP_GRACE", 0.2)  # the creates left waiting are not waited for
    await tiny_budget.stop()


async def test_the_cancel_button_goes_with_the_create(tg, kie, tmp_path, start_bot, timing):
    """Bob's line ticks while he waits; as his create goes out, the line and its ✖ Cancel are
    replaced within a second, though the status line's gap has not passed since the last tick
    and no read comes to redraw it (the first is half a minute away)."""
    gap = timing.status_edit_gap(0.8)
    kie.rate_limit, kie.window = 1, WINDOW
    kie.default_plan = TaskPlan(outcome="never")
    await start_bot(make_settings(tmp_path, tg, kie, kie_rate_limit=1, kie_rate_window=WINDOW,
                                  kie_poll_interval=30, starting_credits=1000))
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    kie.create_delay = 4 * gap  # Bob's line ticks (and its clock moves) while Alice's is answered
    await generate(alice, "the slow one")
    await until(lambda: kie.count("createTask") == 1)
    _, status = await generate(bob, "soon")
    kie.create_delay = 0.0  # Bob's own is answered at once
    assert any(b["text"].startswith("✖") for b in buttons(bob.refreshed(status)))
    await until(lambda: create_of(kie, "soon") is not None, timeout=10)
    sent = create_of(kie, "soon").time
    ticked = [c for c in edits_of(tg, status) if c.time > sent - 4 * gap and IN_LINE.search(
        c.params["text"])]
    assert len(ticked) >= 2, "the line did not tick"  # the ✅'s draw, then a tick at least
    await until(lambda: not buttons(bob.refreshed(status)), timeout=1.5)
    assert not IN_LINE.search(bob.refreshed(status)["text"])


async def test_a_create_that_goes_at_once_costs_no_edit_more(tg, kie, tmp_path, start_bot,
                                                             timing):
    """A create that goes at once: its line, drawn with ✖ at ✅, is not edited again before
    the tracker's first read (an edit more per generation would cost Telegram's rate)."""
    timing.status_edit_gap(60.0)
    await start_bot(make_settings(tmp_path, tg, kie, kie_poll_interval=30))
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    _, status = await generate(alice, "at once")
    await until(lambda: create_of(kie, "at once") is not None)
    drawn = edits_of(tg, status, ok=None)
    assert IN_LINE.search(drawn[-1].params["text"])  # the ✅'s draw, with ✖
    await stays(lambda: len(edits_of(tg, status, ok=None)) == len(drawn), 2 * CHAT_EDIT_GAP)
