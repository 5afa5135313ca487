"""End to end: ⬆️ Upscale · N under a delivered picture or video (issue 26, item 4). One tap
charges the catalog's upscaler at the price the button showed, sends Kie the result's URL,
and the upscaled file arrives as a document; a double tap, a failure, a result Kie no longer
keeps, a stranger's press and a restart each cost what they should, once."""

from __future__ import annotations

import asyncio

from bot.store import GenerationState
from testkit.chat import Person, button, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan
from testkit.timing import until

UPSCALERS = ("topaz/image-upscale", "recraft/crisp-upscale", "topaz/video-upscale")


def plan_upscales(kie, plan: TaskPlan) -> None:
    """Upscale tasks follow `plan`, every other task the default."""
    kie.plan = lambda body: plan if body.get("model") in UPSCALERS else kie.default_plan


async def a_picture(tg, alice: Person, prompt: str = "a red fox", chat: dict | None = None):
    """A delivered Imagen 4 picture (40 credits of the 100 a newcomer has): its message."""
    await generate(alice, prompt, chat=chat)
    [photo] = await tg.wait_for("sendPhoto")
    return alice.message(photo.params["chat_id"], photo.response["message_id"])


async def spent(store) -> list[int]:
    """Alice's charges, oldest first."""
    return [c.amount for c in reversed(await charges(store, 42))]


def texts_of(message: dict) -> list[list[str]]:
    return [[b["text"] for b in row] for row in message["reply_markup"]["inline_keyboard"]]


async def test_upscale_is_one_tap_charged_once_and_arrives_as_a_document(tg, kie, bot, store):
    plan_upscales(kie, TaskPlan(reads_before_done=10**6))
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    assert texts_of(picture)[0] == ["🔁 Again · 40 credits", "⬆️ Upscale · 15 credits"]
    query = tg.press(alice.user, picture, button(picture, "⬆️"))
    tg.redeliver(query)  # the same press again: handled once
    await until(lambda: len(kie.tasks) == 2)
    second = await alice.press(picture, "⬆️")  # a double tap while it runs
    assert second["show_alert"] and "already under way" in second["text"]
    [source, upscale] = kie.tasks.values()
    assert upscale.body["model"] == "topaz/image-upscale"
    assert upscale.input == {"image_url": source.result_urls[0], "upscale_factor": "2"}
    kie.finish(upscale.task_id)
    [document] = await tg.wait_for("sendDocument")
    assert document.params["document"].startswith(kie.url + "/files/" + upscale.task_id)
    assert document.params["reply_parameters"]["message_id"] == picture["message_id"]
    assert "a red fox" in document.params["caption"]
    # No upscale of an upscale, no 🔁 (the same upscale) and no 📎 (it is the file already).
    assert [b["text"] for b in buttons(document.params)] == ["✏️ Edit", "🎬 Animate"]
    assert await spent(store) == [-40, -15]
    assert await refunds(store, 42) == [] and len(kie.tasks) == 2
    await asyncio.sleep(0.2)
    assert len(tg.calls_of("sendDocument")) == 1 and len(tg.calls_of("sendPhoto")) == 1


async def test_the_next_upscaler_when_the_first_is_hidden_and_admins_prices(tg, kie, bot, store):
    await store.set_model_hidden("topaz", "admin")
    await store.set_model_price("crisp", 7)
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    await alice.press(picture, "⬆️ Upscale · 7 credits")
    await tg.wait_for("sendDocument")
    [source, upscale] = kie.tasks.values()
    assert upscale.body["model"] == "recraft/crisp-upscale"
    assert upscale.input == {"image": source.result_urls[0]}
    assert await spent(store) == [-40, -7]


async def test_a_price_changed_since_the_result_charges_nothing_and_redraws_the_button(
        tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    await store.set_model_price("topaz", 25)
    answer = await alice.press(picture, "⬆️ Upscale · 15 credits")
    assert answer["show_alert"] and "25 credits now" in answer["text"]
    assert len(kie.tasks) == 1 and len(await charges(store, 42)) == 1
    redrawn = alice.refreshed(picture)
    assert texts_of(redrawn)[0] == ["🔁 Again · 40 credits", "⬆️ Upscale · 25 credits"]
    await alice.press(redrawn, "⬆️ Upscale · 25 credits")
    await tg.wait_for("sendDocument")
    assert await spent(store) == [-40, -25]


async def test_a_failed_upscale_is_refunded_once_with_try_again(tg, kie, bot, store):
    plan_upscales(kie, TaskPlan(outcome="fail", fail_msg="upscale broke"))
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    await alice.press(picture, "⬆️")
    failed = await alice.told("Kie.ai could not generate it")
    # Its own request again (no other model: the catalog picks the upscaler).
    assert [b["text"] for b in buttons(failed.params)] == ["🔁 Try again · 15 credits"]
    assert [r.amount for r in await refunds(store, 42)] == [15]
    plan_upscales(kie, TaskPlan())
    shown = failed.params.get("message_id") or failed.response["message_id"]
    await alice.press(alice.message(42, shown), "🔁 Try again")
    await tg.wait_for("sendDocument")
    [_, first, again] = kie.tasks.values()
    assert again.input == first.input and again.body["model"] == "topaz/image-upscale"
    assert await spent(store) == [-40, -15, -15]
    assert [r.amount for r in await refunds(store, 42)] == [15]
    assert (await store.get_user(42)).balance == 45 == await store.ledger_sum(42)


async def test_an_upscale_kie_refuses_at_create_is_refunded_at_once(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    kie.fail_create_next(422, "image_url: file larger than 10 MB")
    await alice.press(picture, "⬆️")
    await alice.told("rejected")
    assert [r.amount for r in await refunds(store, 42)] == [15]
    assert (await store.get_user(42)).balance == 60 == await store.ledger_sum(42)


async def test_a_result_kie_no_longer_keeps_is_told_not_charged(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    await store._rows("UPDATE generations SET finished_at = finished_at - 3 * 86400")
    answer = await alice.press(picture, "⬆️")
    assert answer["show_alert"] and "too old" in answer["text"]
    assert len(kie.tasks) == 1 and len(await charges(store, 42)) == 1


async def test_only_the_owner_may_upscale_in_a_group(tg, kie, bot, store):
    group = tg.group_chat()
    alice, mallory = Person(tg, 42, "Alice"), Person(tg, 66, "Mallory")
    picture = await a_picture(tg, alice, chat=group)
    answer = await mallory.press(picture, "⬆️")
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    assert len(kie.tasks) == 1 and await charges(store, 66) == []
    await alice.press(picture, "⬆️")
    [document] = await tg.wait_for("sendDocument")
    assert document.params["chat_id"] == group["id"]
    assert "Balance" not in document.params["caption"]  # money stays private in a group


async def test_a_video_is_upscaled_by_topaz_video_as_a_document(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    await generate(alice, "waves at dusk", model="Wan ·", command="/video")
    [video] = await tg.wait_for("sendVideo")
    await store.topup(42, 100, admin_id=1)
    result = alice.message(42, video.response["message_id"])
    assert texts_of(result) == [["🔁 Again · 80 credits", "⬆️ Upscale · 40 credits"]]
    await alice.press(result, "⬆️")
    [document] = await tg.wait_for("sendDocument")
    [source, upscale] = kie.tasks.values()
    assert upscale.body["model"] == "topaz/video-upscale"
    assert upscale.input == {"video_url": source.result_urls[0], "upscale_factor": "2"}
    assert document.params["document"].startswith(kie.url + "/files/" + upscale.task_id)
    assert await spent(store) == [-80, -40]


async def test_a_restart_in_the_middle_of_an_upscale_delivers_it_once(tg, kie, settings,
                                                                      start_bot, store):
    plan_upscales(kie, TaskPlan(reads_before_done=10**6))
    first = await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    picture = await a_picture(tg, alice)
    await alice.press(picture, "⬆️")
    await until(lambda: len(kie.tasks) == 2)
    while not await store.generations_in([GenerationState.RUNNING]):
        await asyncio.sleep(0.005)
    await first.kill()
    [_, upscale] = kie.tasks.values()
    reads_before = upscale.reads
    kie.finish(upscale.task_id)

    await start_bot(settings)
    await tg.wait_for("sendDocument")
    await asyncio.sleep(0.3)
    assert len(tg.calls_of("sendDocument")) == 1 and upscale.reads > reads_before
    assert await spent(store) == [-40, -15]
    assert await refunds(store, 42) == []
