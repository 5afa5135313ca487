"""End to end: the conversation (issue 25). A text or photo without a command gets the kinds to
choose from; a kind without words asks for them (ForceReply) and only its person's answer
counts; a picker opens on the person's last choice; 🔁 Again charges and starts at one tap."""

from __future__ import annotations

from bot.store import GenerationState
from testkit.bot import make_settings
from testkit.chat import Person, button, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import tiny_png
from testkit.timing import until


def texts_of(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


async def test_plain_text_in_private_offers_the_three_kinds_and_one_opens_its_picker(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    request, kinds = await alice.ask("a red fox in the snow")
    assert "a red fox in the snow" in kinds["text"]
    assert texts_of(kinds) == ["🖼 Picture", "🎬 Video", "🎵 Music"]
    await alice.press(kinds, "🖼")
    picker = alice.refreshed(kinds)  # the same message became the picker
    assert "Choose a model" in picker["text"] and "a red fox in the snow" in picker["text"]
    await alice.press(picker, "Imagen 4 ·")
    await alice.press(alice.refreshed(picker), "✅")
    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["reply_parameters"]["message_id"] == request["message_id"]
    [create] = kie.creates
    assert create["input"]["prompt"] == "a red fox in the snow"
    assert [c.amount for c in await charges(store, 42)] == [-40]


async def test_a_repeated_plain_text_update_is_answered_once(tg, kie, bot):
    alice = Person(tg, 42, "Alice")
    request, _ = await alice.ask("a lighthouse at night")
    tg.redeliver(request)
    alice.say("/balance")  # queued after the repeat: once answered, the repeat was read
    await alice.told("Your balance")
    kinds = [c for c in tg.calls_of("sendMessage") if "lighthouse" in c.params["text"]]
    assert len(kinds) == 1


async def test_plain_text_in_a_group_gets_no_answer(tg, kie, bot):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    alice.say("a red fox in the snow", chat=group)
    alice.say("/balance")
    await alice.told("Your balance")
    assert not [c for c in tg.calls_of("sendMessage") if c.params["chat_id"] == group["id"]]


async def test_a_bare_photo_asks_what_to_do_then_for_the_words_and_edits_it(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    photo_message, choices = await alice.ask("", photo=True)
    assert texts_of(choices) == ["✏️ Edit", "🎬 Animate"]
    await alice.press(choices, "✏️")
    [question] = await tg.wait_for("sendMessage", lambda c: "force_reply" in (
        c.params.get("reply_markup") or {}))
    assert question.params["reply_parameters"]["message_id"] == photo_message["message_id"]
    asked = alice.message(42, question.response["message_id"])
    answer = alice.say("make the sky purple", reply_to=asked)
    [call] = await tg.wait_for("sendMessage", lambda c: (c.params.get("reply_parameters") or {})
                               .get("message_id") == answer["message_id"])
    picker = alice.message(42, call.response["message_id"])
    assert "Choose a model" in picker["text"] and "From your photo" in picker["text"]
    await alice.press(picker, "Nano Banana")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    [create] = kie.creates
    assert create["input"]["prompt"] == "make the sky purple"
    assert create["input"]["image_urls"] == [f"{kie.url}/uploads/{key}" for key in kie.uploads]


async def test_a_question_answered_by_someone_else_in_a_group_opens_nothing(tg, kie, bot, store):
    group = tg.group_chat()
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    command = alice.say("/image", chat=group)
    [question] = await tg.wait_for("sendMessage", lambda c: "force_reply" in (
        c.params.get("reply_markup") or {}))
    assert question.params["reply_markup"]["selective"] is True
    assert question.params["reply_parameters"]["message_id"] == command["message_id"]
    asked = alice.message(group["id"], question.response["message_id"])
    bob.say("a cat in a hat", chat=group, reply_to=asked)
    await bob.told("That question was for someone else", chat_id=group["id"])
    assert not [c for c in tg.calls_of("sendMessage") if "Choose a model" in c.params["text"]]
    # Alice's own answer opens her picker.
    answer = alice.say("a cat in a hat", chat=group, reply_to=asked)
    [call] = await tg.wait_for("sendMessage", lambda c: (c.params.get("reply_parameters") or {})
                               .get("message_id") == answer["message_id"])
    assert "Choose a model" in call.params["text"]
    assert await charges(store, 43) == [] and await charges(store, 42) == []


async def test_the_next_picker_opens_on_the_last_choice_and_confirms_in_one_tap(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "first", model="Imagen 4", options=("16:9",))
    await tg.wait_for("sendPhoto")
    _, picker = await alice.ask("/image second")
    assert picker["text"].startswith("🖼 Imagen 4")
    assert "✓ 16:9" in texts_of(picker) and any(t.startswith("← ") for t in texts_of(picker))
    await alice.press(picker, "✅")  # the one tap
    await tg.wait_for("sendPhoto", count=2)
    assert kie.creates[1]["input"] == {"prompt": "second", "aspect_ratio": "16:9"}
    # Another kind has a memory of its own: /video still starts at the model list.
    _, videos = await alice.ask("/video a wave")
    assert "Choose a model" in videos["text"]


async def test_a_prompt_too_long_for_some_models_leaves_them_out_and_says_why(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    prompt = "x" * 3000  # past Kling's 2500, within the others'
    _, picker = await alice.ask(f"/video {prompt}")
    assert not any(t.startswith("Kling") for t in texts_of(picker))
    assert "3000 characters" in picker["text"] and "2500" in picker["text"]


async def test_a_prompt_too_long_for_every_model_is_refused_with_limit_and_length(tg, kie, bot,
                                                                                 store):
    alice = Person(tg, 42, "Alice")
    alice.say("/music " + "y" * 20000)
    told = await alice.told("characters long")
    assert "20000" in told.params["text"]
    assert await charges(store, 42) == []


async def test_again_charges_and_starts_at_one_tap_once_per_press(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox", options=("16:9",))
    await store.topup(42, 100, admin_id=1)
    [first] = await tg.wait_for("sendPhoto")
    result = alice.message(42, first.response["message_id"])
    assert button(result, "🔁 Again · 40")
    query = tg.press(alice.user, result, button(result, "🔁"))
    tg.redeliver(query)  # the same press again (a poller that died before confirming it)
    await tg.wait_for("sendPhoto", count=2)
    await alice.press(result, "🔁")
    await tg.wait_for("sendPhoto", count=3)
    assert [c.amount for c in await charges(store, 42)] == [-40, -40, -40]
    assert [c["input"] for c in kie.creates] == [{"prompt": "a fox", "aspect_ratio": "16:9"}] * 3


async def test_again_at_a_price_changed_since_shows_the_picker_and_charges_nothing(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox")
    [first] = await tg.wait_for("sendPhoto")
    result = alice.message(42, first.response["message_id"])
    await store.set_model_price("imagen4", 55)
    answer = await alice.press(result, "🔁")
    assert "changed" in answer.get("text", "")
    picker = await alice.told("Price: 55 credits")
    assert button(picker.params, "✅ Generate · 55 credits")
    assert len(await charges(store, 42)) == 1


async def test_a_failure_offers_try_again_and_another_model(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="fail")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a doomed fox")
    told = await alice.told("returned to your balance")
    assert [b["text"] for b in buttons(told.params)] == ["🔁 Try again · 40 credits",
                                                        "🔀 Change model"]
    failed = alice.message(42, told.params.get("message_id") or told.response["message_id"])
    await alice.press(failed, "🔀")
    models = await alice.told("Choose a model")
    assert "a doomed fox" in models.params["text"]


async def test_too_few_credits_says_price_and_balance_with_buy_and_a_cheaper_model(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a fox")
    await store.topup(42, -70, admin_id=1)  # 30 left: Imagen 4 (40) is too dear
    await alice.press(picker, "Imagen 4 ·")
    answer = await alice.press(alice.refreshed(picker), "✅")
    assert "Not enough credits" in answer["text"]
    told = await alice.told("your balance is 30 credits")
    assert "40 credits" in told.params["text"]
    labels = [b["text"] for b in buttons(told.params)]
    assert any(t.startswith("⭐") for t in labels), labels
    [cheaper] = [t for t in labels if " · " in t]  # the dearest model that 30 credits pay
    name, price = cheaper.split(" · ")
    assert int(price.split()[0]) <= 30 and name != "Imagen 4"
    assert f"{name} fits your balance" in told.params["text"]
    assert await charges(store, 42) == [] and kie.creates == []


async def test_waiting_in_the_bots_line_shows_its_place_and_cancel_refunds_once_and_never_sends(
        tg, kie, tmp_path, start_bot, store, caplog, timing):
    """Kie's budget (2 per 2 s here) holds the third create in the bot's own line: its status
    line says so and carries ✖ Cancel; pressed, it is refunded at once, and when the budget
    frees the create is not sent. A ✖ pressed after a create went out is refused."""
    timing.status_edit_gap(0.2)
    await start_bot(make_settings(tmp_path, tg, kie, kie_rate_limit=2, kie_rate_window=2.0,
                                  starting_credits=1000))
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    statuses = [(await generate(alice, f"fox {n}"))[1] for n in range(3)]
    third = alice.refreshed(statuses[2])
    assert "in line:" in third["text"] and "✖ Cancel" in [b["text"] for b in buttons(third)]
    answer = await alice.press(third, "✖")
    assert not answer.get("show_alert"), answer
    told = await alice.told("you cancelled it")
    assert "40 credits returned" in told.params["text"]
    [generation] = [g for g in await store.generations_of(42, limit=5) if g.prompt == "fox 2"]
    assert generation.state is GenerationState.FAILED
    assert [r.generation_id for r in await refunds(store, 42)] == [generation.id]
    await until(lambda: any("not sent to Kie" in r.getMessage() for r in caplog.records),
                timeout=10)
    assert [c["input"]["prompt"] for c in kie.creates] == ["fox 0", "fox 1"]
    assert len(await refunds(store, 42)) == 1
    # The first one went out: its ✖ goes at the next status edit, and an old keyboard's press
    # is refused.
    await until(lambda: not [b for b in buttons(alice.refreshed(statuses[0]))
                             if b["text"].startswith("✖")])
    first = alice.refreshed(statuses[0])
    answer = await alice.press(first, "", data=f"cg:{(await store.generations_of(42, limit=5))[-1].id}")
    assert answer["show_alert"] and "can no longer be cancelled" in answer["text"]


async def test_the_status_line_says_how_long_it_usually_takes(tg, kie, bot, store):
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a slow fox")
    told = await alice.told("usually ~")
    assert "Imagen 4" in told.params["text"]


async def test_a_group_caption_shows_no_balance(tg, kie, bot, store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox for all", chat=group)
    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["chat_id"] == group["id"]
    assert "Balance" not in photo.params["caption"] and "credits" not in photo.params["caption"]


async def test_a_picture_result_has_its_original_free_and_can_be_edited(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox")
    [photo] = await tg.wait_for("sendPhoto")
    result = alice.message(42, photo.response["message_id"])
    await alice.press(result, "📎")
    [document] = await tg.wait_for("sendDocument")
    [task] = kie.tasks.values()
    assert document.params["document"] == task.result_urls[0]  # Kie's file itself
    # ✏️ Edit: the words are asked for, and the delivered picture is the input.
    largest = result["photo"][-1]["file_id"]
    tg.add_file(largest, tiny_png(64, 64))  # what Telegram keeps of the photo it was sent
    await alice.press(result, "✏️")
    [question] = await tg.wait_for("sendMessage", lambda c: "force_reply" in (
        c.params.get("reply_markup") or {}))
    answer = alice.say("make it blue", reply_to=alice.message(42, question.response["message_id"]))
    [call] = await tg.wait_for("sendMessage", lambda c: (c.params.get("reply_parameters") or {})
                               .get("message_id") == answer["message_id"])
    picker = alice.message(42, call.response["message_id"])
    await alice.press(picker, "Nano Banana")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto", count=2)
    assert kie.creates[1]["input"]["prompt"] == "make it blue"
    assert kie.creates[1]["input"]["image_urls"] == [f"{kie.url}/uploads/{key}" for key in kie.uploads]
    assert sorted(c.amount for c in await charges(store, 42)) == [-40, -30]  # the original: free


async def test_a_purchase_offers_the_refused_request_again_once_while_it_lives(tg, kie, bot,
                                                                               store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a costly fox")
    await store.topup(42, -70, admin_id=1)  # 30 left
    await alice.press(picker, "Imagen 4 ·")
    await alice.press(alice.refreshed(picker), "✅")
    await alice.told("your balance is 30 credits")
    tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    offer = await alice.told("Your request is still here")
    assert "Your balance is now 130 credits" in offer.params["text"]
    offered = alice.message(42, offer.response["message_id"])
    await alice.press(offered, "✅ Generate · 40 credits")
    await tg.wait_for("sendPhoto")
    assert [c.amount for c in await charges(store, 42)] == [-40]
    # A second purchase offers nothing more: that request is gone.
    tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await alice.told("Payment received")
    alice.say("/balance")
    await alice.told("Your balance")
    assert len([c for c in tg.calls_of("sendMessage")
                if "Your request is still here" in c.params["text"]]) == 1


async def test_a_purchase_after_the_refused_picker_expired_offers_nothing(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a stale fox")
    await store.topup(42, -70, admin_id=1)
    await alice.press(picker, "Imagen 4 ·")
    await alice.press(alice.refreshed(picker), "✅")
    await alice.told("your balance is 30 credits")
    await store._rows("UPDATE drafts SET created_at = created_at - 7 * 3600")  # past its life
    tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await alice.told("Payment received")
    alice.say("/balance")
    await alice.told("Your balance")
    assert not [c for c in tg.calls_of("sendMessage")
                if "Your request is still here" in c.params["text"]]


async def test_animate_a_picture_result_asks_how_it_moves_and_offers_the_video_models(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox")
    [photo] = await tg.wait_for("sendPhoto")
    result = alice.message(42, photo.response["message_id"])
    await alice.press(result, "🎬")
    question = await alice.told("How should the picture move?")
    answer = alice.say("the fox runs", reply_to=alice.message(42, question.response["message_id"]))
    [call] = await tg.wait_for("sendMessage", lambda c: (c.params.get("reply_parameters") or {})
                               .get("message_id") == answer["message_id"])
    assert call.params["text"].startswith("🎬") and "From your photo" in call.params["text"]
    assert [c.amount for c in await charges(store, 42)] == [-40]  # nothing more until ✅
