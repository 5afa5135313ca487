"""End to end: money rules an attack run broke — ✅ charges exactly what it shows, per-user
limits refuse before anything is charged, a repeated update changes nothing."""

from __future__ import annotations

import asyncio

from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person, button, buttons
from testkit.e2e import charges, generate
from testkit.fakes.kie import TaskPlan


async def test_confirm_on_a_keyboard_older_than_the_choice_charges_nothing(tg, kie, bot, store):
    """The edit that would show "· 20" is refused (flood control): the ✅ still on screen says
    10, so pressing it charges nothing and shows the picker as it really is."""
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image two foxes")
    await alice.press(picker, "Imagen 4 Fast")
    shown = alice.refreshed(picker)
    assert button(shown, "✅") and "10 credits" in next(
        b["text"] for b in buttons(shown) if b["text"].startswith("✅"))
    tg.fail_next("editMessageText", error_code=429, retry_after=30)
    await alice.press(shown, "2 ·")
    assert "10 credits" in str(alice.refreshed(picker)["reply_markup"])  # the edit never landed

    answer = await alice.press(alice.refreshed(picker), "✅")
    assert answer["show_alert"] and "changed" in answer["text"]
    assert await charges(store, 42) == [] and kie.creates == []
    fresh = alice.refreshed(picker)
    [go] = [b["text"] for row in fresh["reply_markup"]["inline_keyboard"] for b in row
            if b["text"].startswith("✅")]
    assert "20 credits" in go

    await alice.press(fresh, "✅")
    await tg.wait_for("sendPhoto")
    [charge] = await charges(store, 42)
    assert charge.amount == -20


async def test_a_tap_faster_than_the_edit_charges_nothing(tg, kie, bot, store):
    """✅ pressed on the message as it was before an option press took effect."""
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image racing")
    await alice.press(picker, "Imagen 4 Fast")
    stale = alice.refreshed(picker)
    await alice.press(stale, "4 ·")
    answer = await alice.press(stale, "✅")  # the keyboard from before "4"
    assert answer["show_alert"] and "changed" in answer["text"]
    assert await charges(store, 42) == [] and kie.creates == []


async def test_open_generations_per_user_are_capped_before_anything_is_charged(
        tg, kie, tmp_path, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, max_open_generations=2, starting_credits=500))
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    for n in range(2):
        await generate(alice, f"fox {n}", model="Seedream")
    _, picker = await alice.ask("/image one more")  # on Seedream: the last choice
    answer = await alice.press(alice.refreshed(picker), "✅")
    assert answer["show_alert"] and "running" in answer["text"]
    assert len(await charges(store, 42)) == 2 and len(kie.creates) == 2
    assert (await store.get_user(42)).balance == 460 == await store.ledger_sum(42)
    # The admin is exempt.
    admin = Person(tg, ADMIN_ID, "Admin")
    for n in range(3):
        await generate(admin, f"admin {n}", model="Seedream")
    assert len(await charges(store, ADMIN_ID)) == 3


async def test_starts_per_minute_are_capped_before_anything_is_charged(
        tg, kie, tmp_path, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, max_starts_per_minute=2,
                                  starting_credits=500))
    kie.default_plan = TaskPlan(reads_before_done=0)
    alice = Person(tg, 42, "Alice")
    for n in range(2):
        await generate(alice, f"fox {n}", model="Seedream")
    await tg.wait_for("sendPhoto", count=2)  # finished: only the per-minute cap is left
    _, picker = await alice.ask("/image a third")  # on Seedream: the last choice
    answer = await alice.press(alice.refreshed(picker), "✅")
    assert answer["show_alert"] and "last minute" in answer["text"]
    assert len(await charges(store, 42)) == 2 and len(kie.creates) == 2


async def test_concurrent_confirms_cannot_pass_the_cap_together(tg, kie, tmp_path, start_bot,
                                                                store):
    await start_bot(make_settings(tmp_path, tg, kie, max_open_generations=3,
                                  starting_credits=1000))
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    pickers = []
    for n in range(8):
        _, picker = await alice.ask(f"/image burst {n}")
        await alice.press(picker, "Seedream")
        pickers.append(alice.refreshed(picker))
    for picker in pickers:
        tg.press(alice.user, picker, button(picker, "✅"))
    await tg.wait_for("answerCallbackQuery", lambda c: True, count=8 + 8)
    await asyncio.sleep(0.3)
    assert len(await charges(store, 42)) == 3 and len(kie.creates) == 3
    assert (await store.get_user(42)).balance == 940 == await store.ledger_sum(42)


async def test_a_repeated_update_is_handled_once_even_across_a_restart(tg, kie, settings,
                                                                        start_bot, store):
    running = await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    request, _ = await alice.ask("/image once")
    tg.redeliver(request)
    alice.say("/balance")  # queued after the repeat: once it is answered, the repeat was read
    await alice.told("Your balance")
    await asyncio.sleep(0.3)
    pickers = [c for c in tg.calls_of("sendMessage") if "Choose a model" in c.params["text"]]
    assert len(pickers) == 1

    await running.stop()  # the poller confirmed nothing more: the next one gets it again
    tg.redeliver(request)
    await start_bot(settings)
    alice.say("/balance")
    await alice.told("Your balance")
    await asyncio.sleep(0.3)
    pickers = [c for c in tg.calls_of("sendMessage") if "Choose a model" in c.params["text"]]
    assert len(pickers) == 1
    [(drafts,)] = [tuple(r) for r in await store._rows("SELECT count(*) FROM drafts")]
    assert drafts == 1


async def test_again_pressed_in_another_chat_opens_and_works_there(tg, kie, bot, store):
    """A forged 🔁 Again (its data pressed on a message in a group): its status line and the
    result stay in the group; nothing is edited in the first chat."""
    alice = Person(tg, 42, "Alice")
    await generate(alice, "first here")
    [photo] = await tg.wait_for("sendPhoto")
    await alice.told("✅ Imagen 4 — done", chat_id=42)  # the first status line's last edit
    again_data = button(tg.message(42, photo.response["message_id"]), "🔁")
    group = tg.group_chat(-1006000, "Elsewhere")
    alice.say("/balance@testbot", chat=group)  # any message of the bot's in the group
    await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == -1006000)
    host = tg.last_bot_message(-1006000)
    edits_in_private = len([c for c in tg.calls_of("editMessageText") if c.params["chat_id"] == 42])

    await alice.press(host, "", data=again_data)  # charged and started at this one tap
    [second] = [c for c in await tg.wait_for("sendPhoto", count=2) if c is not photo]
    assert second.params["chat_id"] == -1006000
    await alice.told("✅ Imagen 4 — done", chat_id=-1006000)
    assert len([c for c in tg.calls_of("editMessageText") if c.params["chat_id"] == 42]) == \
        edits_in_private


async def test_one_heavy_user_does_not_push_another_to_the_back_of_kies_queue(
        tg, kie, tmp_path, start_bot, store):
    """An admin (no per-user limits) confirms ten at once against a budget of 2 per window;
    Bob confirms one a moment later: his task goes to Kie in the next round, not after all
    ten of the admin's."""
    await start_bot(make_settings(tmp_path, tg, kie, kie_rate_limit=2, starting_credits=1000))
    kie.default_plan = TaskPlan(outcome="never")
    admin = Person(tg, ADMIN_ID, "Admin")
    pickers = []
    for n in range(10):
        _, picker = await admin.ask(f"/image heavy {n}")
        await admin.press(picker, "Seedream")
        pickers.append(admin.refreshed(picker))
    bob = Person(tg, 43, "Bob")
    _, bob_picker = await bob.ask("/image bob's turn")
    await bob.press(bob_picker, "Seedream")
    for picker in pickers:
        tg.press(admin.user, picker, button(picker, "✅"))
    while len(kie.creates) < 2:  # the admin's first round is at Kie, the rest queued
        await asyncio.sleep(0.01)
    await bob.press(bob.refreshed(bob_picker), "✅")
    while len(kie.creates) < 11:
        await asyncio.sleep(0.05)
    prompts = [c["input"]["prompt"] for c in kie.creates]
    assert prompts.index("bob's turn") <= 4, prompts
    assert kie.rate_limited == 0
