"""End to end: ➕ Extend · N under each track of a delivered Suno song (issue 26, item 5). One
tap charges the catalog's extend entry for that Suno version, sends Kie the track's id
(`audioId`) with the song's own model, and the longer song arrives like any song, with its own
🔁 Again and ➕ Extend; a double tap, a failure and a refusal cost what they should, once."""

from __future__ import annotations

import asyncio

from testkit.chat import Person, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan
from testkit.timing import until


async def a_song(tg, alice: Person, store, model: str = "Suno v4.5") -> dict:
    """A delivered two-track song, then credits for what follows: the line under its album."""
    await generate(alice, "a calm song about the sea", model, command="/music")
    await tg.wait_for("sendMediaGroup")
    footer = await alice.told("Balance:")
    await store.topup(42, 500, admin_id=1)
    return alice.message(42, footer.response["message_id"])


def rows(message: dict) -> list[list[str]]:
    return [[b["text"] for b in row] for row in message["reply_markup"]["inline_keyboard"]]


async def spent(store) -> list[int]:
    return [c.amount for c in reversed(await charges(store, 42))]


async def test_extend_sends_the_tracks_id_and_delivers_a_song_with_its_own_buttons(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    footer = await a_song(tg, alice, store)
    assert rows(footer) == [["🔁 Again · 60 credits"],
                            ["➕ Extend 1 · 60 credits", "➕ Extend 2 · 60 credits"]]
    await alice.press(footer, "➕ Extend 2")
    await tg.wait_for("sendMediaGroup", count=2)
    [song, extended] = kie.tasks.values()
    assert [r.path for r in kie.requests if r.method == "POST"][-1] == "/api/v1/generate/extend"
    assert extended.body == {"audioId": f"{song.task_id}-1", "defaultParamFlag": False,
                             "model": "V4_5"}
    footer2 = await alice.told("Balance: 480 credits")
    # The longer song: 🔁 the same extend again, ➕ each of its own tracks further.
    assert rows(footer2.params) == [["🔁 Again · 60 credits"],
                                    ["➕ Extend 1 · 60 credits", "➕ Extend 2 · 60 credits"]]
    longer = alice.message(42, footer2.response["message_id"])
    await alice.press(longer, "🔁 Again")
    await tg.wait_for("sendMediaGroup", count=3)
    await alice.press(longer, "➕ Extend 1")
    await tg.wait_for("sendMediaGroup", count=4)
    [_, _, again, further] = kie.tasks.values()
    assert again.body == extended.body
    assert further.body == {"audioId": f"{extended.task_id}-0", "defaultParamFlag": False,
                            "model": "V4_5"}
    assert await spent(store) == [-60, -60, -60, -60] and await refunds(store, 42) == []


async def test_suno_v5_extends_with_its_own_entry_and_model(tg, kie, bot, store):
    await store.set_model_price("suno5ext", 70)
    alice = Person(tg, 42, "Alice")
    footer = await a_song(tg, alice, store, model="Suno v5")
    await store.topup(42, 100, admin_id=1)
    await alice.press(footer, "➕ Extend 1 · 70 credits")
    await tg.wait_for("sendMediaGroup", count=2)
    [song, extended] = kie.tasks.values()
    assert extended.body == {"audioId": f"{song.task_id}-0", "defaultParamFlag": False,
                             "model": "V5"}
    assert await spent(store) == [-80, -70]


async def test_a_double_tap_extends_once(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    footer = await a_song(tg, alice, store)
    kie.default_plan = TaskPlan(reads_before_done=10**6)
    query = tg.press(alice.user, footer, buttons(footer)[1]["callback_data"])
    tg.redeliver(query)
    await until(lambda: len(kie.tasks) == 2)
    answer = await alice.press(footer, "➕ Extend 1")
    assert answer["show_alert"] and "already under way" in answer["text"]
    [_, extended] = kie.tasks.values()
    kie.finish(extended.task_id)
    await tg.wait_for("sendMediaGroup", count=2)
    await asyncio.sleep(0.2)
    assert len(kie.tasks) == 2 and await spent(store) == [-60, -60]


async def test_a_failed_extend_is_refunded_once_and_a_refused_one_at_create(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    footer = await a_song(tg, alice, store)
    kie.default_plan = TaskPlan(outcome="fail", fail_state="GENERATE_AUDIO_FAILED")
    await alice.press(footer, "➕ Extend 1")
    failed = await alice.told("Kie.ai could not generate it")
    assert [b["text"] for b in buttons(failed.params)] == ["🔁 Try again · 60 credits"]
    kie.fail_create_next(422, "audioId does not exist")
    await alice.press(footer, "➕ Extend 2")
    await alice.told("rejected")
    assert await spent(store) == [-60, -60, -60]
    assert [r.amount for r in await refunds(store, 42)] == [60, 60]
    assert (await store.get_user(42)).balance == 540 == await store.ledger_sum(42)


async def test_a_song_too_old_for_kie_is_told_not_charged(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    footer = await a_song(tg, alice, store)
    await store._rows("UPDATE generations SET finished_at = finished_at - 3 * 86400")
    answer = await alice.press(footer, "➕ Extend 1")
    assert answer["show_alert"] and "too old" in answer["text"]
    assert len(kie.tasks) == 1 and await spent(store) == [-60]
