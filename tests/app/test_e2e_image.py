"""End to end: /image → picker → charge → Kie.ai task → tracker → the picture in the chat."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.store import GenerationState
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person, button, buttons
from testkit.e2e import charges, generate, refunds, states_become
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import UploadedFile


async def test_happy_path_delivers_the_photo_as_a_reply(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    request, picker = await generate(alice, "a red fox", options=("16:9",))

    [photo] = await tg.wait_for("sendPhoto")
    [create] = kie.creates
    assert create["model"] == "google/imagen4"
    assert create["input"] == {"prompt": "a red fox", "aspect_ratio": "16:9"}
    assert photo.params["photo"].startswith(kie.url + "/files/")
    assert photo.params["reply_parameters"]["message_id"] == request["message_id"]
    assert "a red fox" in photo.params["caption"] and "Balance: 60 credits" in photo.params["caption"]
    assert [[b["text"] for b in row] for row in photo.params["reply_markup"]["inline_keyboard"]] == [
        ["🔁 Again · 40 credits", "⬆️ Upscale · 15 credits"],
        ["✏️ Edit", "🎬 Animate", "📎 Original"]]
    [charge] = await charges(store, 42)
    assert charge.amount == -40 and charge.balance_after == 60
    assert await refunds(store, 42) == []
    done = await alice.told("✅ Imagen 4 — done in")
    assert done.params["message_id"] == picker["message_id"]
    [generation] = await store.generations_in([GenerationState.DELIVERED])
    assert generation.delivered_at and generation.result_urls == kie.tasks[generation.task_id].result_urls


@pytest.mark.parametrize("model, option, expected", [
    ("Imagen 4", "9:16", {"aspect_ratio": "9:16"}),
    ("Seedream", "16:9", {"image_size": "landscape_16_9"}),
    ("Grok Imagine", "2:3", {"aspect_ratio": "2:3"}),
    ("Imagen 4 Fast", "3 ·", {"aspect_ratio": "1:1", "num_images": "3"}),
])
async def test_each_model_gets_its_own_input_fields(tg, kie, bot, model, option, expected):
    kie.default_plan = TaskPlan(urls=int(expected.get("num_images", 1)))
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a cat", model=model, options=(option,))
    await tg.wait_for("sendPhoto" if "num_images" not in expected else "sendMediaGroup")
    [create] = kie.creates
    assert create["input"] == {"prompt": "a cat", **expected}


async def test_several_images_arrive_as_one_album_then_again_and_balance(tg, kie, bot, store):
    kie.default_plan = TaskPlan(urls=2)
    alice = Person(tg, 42, "Alice")
    request, _ = await generate(alice, "two foxes", model="Imagen 4 Fast", options=("2 ·",))
    [album] = await tg.wait_for("sendMediaGroup")
    assert len(album.params["media"]) == 2
    assert album.params["reply_parameters"]["message_id"] == request["message_id"]
    footer = await alice.told("Balance: 80 credits")
    assert [b["text"] for b in buttons(footer.params)] == ["🔁 Again · 20 credits", "📎 Original"]
    [charge] = await charges(store, 42)
    assert charge.amount == -20


async def test_picker_shows_prices_and_marks_the_choice(tg, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a lake")
    assert [b["text"] for b in buttons(picker)] == [
        "Imagen 4 · 40 credits", "Seedream · 20 credits", "Grok Imagine · 30 credits",
        "Imagen 4 Fast · from 10 credits", "Nano Banana Pro · 90 credits",
        "Seedream 4.5 · from 20 credits", "Flux Kontext Pro · 20 credits",
        "Flux Kontext Max · 40 credits", "GPT-4o Image · 25 credits",
        "GPT Image 1.5 · from 25 credits", "✨ Improve · 1 credit", "✖ Cancel"]
    await alice.press(picker, "Imagen 4 Fast")
    await alice.press(alice.refreshed(picker), "4 ·")
    texts = [b["text"] for b in buttons(alice.refreshed(picker))]
    assert "✓ 4 · 40 cr." in texts and "1 · 10 cr." in texts and "✓ 1:1" in texts
    assert "✅ Generate · 40 credits" in texts
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons(alice.refreshed(picker)))


async def test_cancel_closes_the_picker_and_charges_nothing(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a lake")
    await alice.press(picker, "✖")
    await alice.told("Cancelled.")
    answer = await alice.press(alice.refreshed(picker), "", data=buttons(picker)[0]["callback_data"])
    assert answer["show_alert"] and "already sent or cancelled" in answer["text"]
    assert kie.creates == [] and await charges(store, 42) == []


async def test_image_without_prompt_asks_for_one(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/image")
    question = await alice.told("What should the picture show?")
    assert question.params["reply_markup"]["force_reply"] is True


async def test_kie_task_failure_is_refunded_once_and_told(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1, fail_msg="NSFW content <detected>")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "something")
    told = await alice.told("❌ Imagen 4")
    assert "the content of the request was refused" in told.params["text"]
    assert "NSFW" not in told.params["text"]  # Kie's own words stay in the log
    assert "40 credits returned" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.amount == 40 and refund.balance_after == 100
    await asyncio.sleep(0.3)  # the tracker keeps running: still one refund, no photo
    assert len(await refunds(store, 42)) == 1 and tg.calls_of("sendPhoto") == []


@pytest.mark.parametrize("code, told_text, alert", [
    (422, "the content of the request was refused", None),
    (402, "temporarily unavailable", "out of credits"),
    (401, "temporarily unavailable", "refuses the API key"),
    (500, "temporarily unavailable", None),
])  # 505 also hides the model: test_e2e_admin.py
async def test_create_rejected_is_refunded_and_told(tg, kie, bot, store, code, told_text, alert):
    kie.fail_create_next(code, "prompt violates policy" if code == 422 else None, times=2)
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    await generate(alice, "a fox")
    told = await alice.told("❌")
    assert told_text in told.params["text"]
    await generate(bob, "a dog")
    await bob.told("❌")
    assert len(await refunds(store, 42)) == 1 and len(await refunds(store, 43)) == 1
    assert (await store.get_user(42)).balance == 100
    admin_alerts = [c for c in tg.calls_of("sendMessage") if c.params["chat_id"] == ADMIN_ID]
    if alert:  # the operator's problem: admins hear of it once, not once per user
        assert len(admin_alerts) == 1 and alert in admin_alerts[0].params["text"]
    else:
        assert admin_alerts == []


async def test_never_finishing_task_is_refunded_at_the_deadline(tg, kie, tmp_path, start_bot, store):
    kie.default_plan = TaskPlan(outcome="never")
    await start_bot(make_settings(tmp_path, tg, kie, kie_deadline_image=1.0))
    alice = Person(tg, 42, "Alice")
    await generate(alice, "forever")
    told = await alice.told("❌", timeout=5)
    assert "it took too long" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.note == "timeout"
    assert kie.count("recordInfo") >= 2


async def test_unknown_state_is_polled_again_never_delivered(tg, kie, bot, store):
    kie.default_plan = TaskPlan(state_override="mystery", reads_before_done=4)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "odd")
    await tg.wait_for("sendPhoto")
    [task] = kie.tasks.values()
    assert task.reads == 5  # four "mystery" reads, then success
    assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []


async def test_status_line_moves_while_waiting(tg, kie, tmp_path, start_bot, timing):
    # 5 s live; here above the text's one-second steps, so the gap is what spaces the edits.
    edit_gap = timing.status_edit_gap(1.5)
    kie.default_plan = TaskPlan(reads_before_done=10)
    await start_bot(make_settings(tmp_path, tg, kie, kie_poll_interval=0.3, kie_poll_max_interval=0.3))
    alice = Person(tg, 42, "Alice")
    _, picker = await generate(alice, "slow")
    await tg.wait_for("sendPhoto", timeout=15)
    edits = [c for c in tg.calls_of("editMessageText")
             if c.params["message_id"] == picker["message_id"] and c.params["text"].startswith("⏳")]
    assert edits[0].params["text"] == "⏳ Imagen 4 — queued… 0:00 · in line: 1 · usually ~20 s"
    assert any("generating…" in c.params["text"] for c in edits)
    gaps = [b.time - a.time for a, b in itertools.pairwise(edits)]
    assert all(gap >= edit_gap - 0.1 for gap in gaps), gaps  # throttled: one edit per gap
    assert len({c.params["text"] for c in edits}) == len(edits)  # never the same text twice


async def test_double_confirm_starts_one_generation(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image twice")
    await alice.press(picker, "Seedream")
    current = alice.refreshed(picker)
    go = button(current, "✅")
    first = tg.press(alice.user, current, go)
    second = tg.press(alice.user, current, go)   # a double tap, or Telegram repeating it
    answers = await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"]
                                in (first["id"], second["id"]), count=2)
    await tg.wait_for("sendPhoto")
    assert len(kie.creates) == 1 and len(await charges(store, 42)) == 1
    assert any("already sent" in (a.params.get("text") or "") for a in answers)


async def test_strangers_press_in_a_group_changes_nothing(tg, kie, bot, store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    mallory = Person(tg, 66, "Mallory")
    _, picker = await alice.ask("/image@testbot a fox", chat=group)
    answer = await mallory.press(picker, "Imagen 4")
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    await alice.press(picker, "Imagen 4")
    answer = await mallory.press(alice.refreshed(picker), "✅")
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    assert kie.creates == []
    assert await charges(store, 42) == [] and await charges(store, 66) == []


async def test_group_members_each_pay_and_get_their_own_reply(tg, kie, bot, store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    alice_request, _ = await generate(alice, "alice's fox", chat=group)
    bob_request, _ = await generate(bob, "bob's dog", model="Seedream", chat=group)
    photos = await tg.wait_for("sendPhoto", count=2)
    replies = {c.params["reply_parameters"]["message_id"]: c.params["caption"] for c in photos}
    assert "alice&#x27;s fox" in replies[alice_request["message_id"]] or \
        "alice's fox" in replies[alice_request["message_id"]]
    assert "bob" in replies[bob_request["message_id"]]
    assert (await store.get_user(42)).balance == 60 and (await store.get_user(43)).balance == 80


async def test_not_enough_credits_charges_nothing_and_says_price_and_balance(
        tg, kie, tmp_path, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=25))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image pricey")
    await alice.press(picker, "Imagen 4")
    answer = await alice.press(alice.refreshed(picker), "✅")
    assert answer["show_alert"]
    assert "costs 40 credits" in answer["text"] and "balance is 25 credits" in answer["text"]
    offer = tg.last_bot_message(42)
    assert any(b["text"].startswith("⭐") for b in buttons(offer))
    assert kie.creates == [] and await charges(store, 42) == []
    # the draft stays open: a cheaper model still works
    await alice.press(alice.refreshed(picker), "← Models")
    await alice.press(alice.refreshed(picker), "Seedream")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    assert (await store.get_user(42)).balance == 5


async def test_again_starts_the_same_request_at_one_tap(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "again fox", model="Seedream", options=("9:16",))
    [photo] = await tg.wait_for("sendPhoto")
    answer = await alice.press(tg.message(42, photo.response["message_id"]), "🔁 Again · 20")
    assert not answer.get("show_alert")  # charged and started at this one tap
    await tg.wait_for("sendPhoto", count=2)
    assert [c["input"] for c in kie.creates] == [{"prompt": "again fox", "image_size": "portrait_16_9"}] * 2
    assert len(await charges(store, 42)) == 2


async def test_expired_picker_answers_with_an_alert(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image old")
    await store._rows("UPDATE drafts SET created_at = created_at - 7 * 3600")
    answer = await alice.press(picker, "Imagen 4")
    assert answer["show_alert"] and "expired" in answer["text"]


async def test_unknown_draft_answers_with_an_alert(tg, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image ghost")
    answer = await alice.press(picker, "", data="pk:99999:go:")
    assert answer["show_alert"] and "out of date" in answer["text"]


async def test_photo_url_refused_by_telegram_is_uploaded(tg, kie, bot):
    tg.refuse_urls = True
    alice = Person(tg, 42, "Alice")
    await generate(alice, "upload me")
    [photo] = await tg.wait_for("sendPhoto")
    assert isinstance(photo.params["photo"], UploadedFile)
    assert photo.params["photo"].data.startswith(b"\x89PNG")


async def test_dead_result_url_is_fetched_through_download_url(tg, kie, bot):
    tg.refuse_urls = True
    kie.default_plan = TaskPlan(reads_before_done=1, file_status=403)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "expired link")
    [photo] = await tg.wait_for("sendPhoto")
    assert isinstance(photo.params["photo"], UploadedFile)
    assert kie.count("download-url") == 1


async def test_large_result_goes_as_document(tg, kie, bot):
    tg.refuse_urls = True
    kie.default_plan = TaskPlan(reads_before_done=1, file_size=11 * 1024 * 1024)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "huge")
    [document] = await tg.wait_for("sendDocument")
    assert document.params["document"].size == 11 * 1024 * 1024


async def test_html_page_instead_of_picture_is_not_uploaded(tg, kie, bot):
    tg.refuse_urls = True
    kie.default_plan = TaskPlan(reads_before_done=1, content_type="text/html")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "broken host")
    link = await alice.told(kie.url + "/files/")
    assert "<a href=" in link.params["text"]
    assert tg.calls_of("sendPhoto")[0].ok is False and len(tg.calls_of("sendPhoto")) == 1


async def test_telegram_flood_control_is_waited_out(tg, kie, bot, store):
    tg.fail_next("sendPhoto", error_code=429, retry_after=1)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "flood")
    [delivered] = await tg.wait_for("sendPhoto")
    [refused] = [c for c in tg.calls_of("sendPhoto") if not c.ok]
    assert delivered.time - refused.time >= 1.0
    assert await states_become(store, {42: GenerationState.DELIVERED}) == \
        {42: GenerationState.DELIVERED}


async def test_the_picker_waits_out_flood_control_in_its_chat(tg, kie, bot, store):
    """A 429 on the picker's message (a busy chat) is waited out: the command is not lost."""
    tg.fail_next("sendMessage", error_code=429, retry_after=1,
                 when=lambda p: "Choose a model" in str(p.get("text")))
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a patient fox")
    assert button(picker, "Imagen 4")
    [refused] = [c for c in tg.calls_of("sendMessage") if not c.ok]
    assert refused.error_code == 429


async def test_blocked_user_does_not_stop_the_others(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    _, alice_picker = await alice.ask("/image for alice")
    await alice.press(alice_picker, "Imagen 4")
    await generate(bob, "for bob")
    tg.block(42)
    await alice.press(alice.refreshed(alice_picker), "✅")
    await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 43)
    expected = {42: GenerationState.UNDELIVERABLE, 43: GenerationState.DELIVERED}
    assert await states_become(store, expected) == expected
    assert (await store.get_user(42)).blocked


async def test_long_prompt_with_markup_is_escaped_and_cut_in_captions(tg, kie, bot):
    alice = Person(tg, 42, "Alice")
    prompt = "<b>bold</b> & " + "very long prompt " * 200
    await generate(alice, prompt)
    [photo] = await tg.wait_for("sendPhoto")  # the fake refuses broken HTML and long captions
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in photo.params["caption"]
    assert "…" in photo.params["caption"]
    assert kie.creates[0]["input"]["prompt"] == prompt.strip()


@pytest.mark.parametrize("error_code, description", [
    (400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
    (502, "Bad Gateway"),
])
async def test_a_charged_press_goes_to_kie_whatever_its_answer_meets(tg, kie, bot, store,
                                                                    error_code, description):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    await alice.press(picker, "Imagen 4 ·")
    tg.fail_next("answerCallbackQuery", error_code=error_code, description=description)
    tg.press(alice.user, alice.refreshed(picker), button(alice.refreshed(picker), "✅"))
    await tg.wait_for("sendPhoto")
    assert len(kie.creates) == 1 and len(await charges(store, 42)) == 1
    assert await refunds(store, 42) == []
