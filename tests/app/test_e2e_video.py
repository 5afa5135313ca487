"""End to end: /video → picker (prices by option) → charge → Kie task → the video in the chat."""

from __future__ import annotations

import pytest

from testkit.bot import make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan

VIDEO = TaskPlan(reads_before_done=1, content_type="video/mp4")


@pytest.mark.parametrize("model, options, expected, price", [
    ("Kling", ("10 s",), {"duration": "10"}, 300),
    ("Sora 2", ("Portrait", "15 s"),
     {"aspect_ratio": "portrait", "n_frames": "15", "remove_watermark": True}, 180),
    ("Hailuo", ("6 s · 1080P",), {"duration": "6", "resolution": "1080P"}, 150),
    ("Hailuo", ("10 s · 768P",), {"duration": "10", "resolution": "768P"}, 200),
    ("Wan", ("9:16", "480p"), {"aspect_ratio": "9:16", "resolution": "480p"}, 60),
    ("Seedance", ("21:9", "1080p", "10 s"),
     {"aspect_ratio": "21:9", "resolution": "1080p", "duration": "10"}, 220),
])
async def test_each_video_model_gets_its_input_and_charges_the_shown_price(
        tg, kie, tmp_path, start_bot, store, model, options, expected, price):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))
    kie.default_plan = VIDEO
    alice = Person(tg, 42, "Alice")
    request, picker = await alice.ask("/video a fox running")
    await alice.press(picker, model)
    for option in options:
        await alice.press(alice.refreshed(picker), option)
    [go] = [b["text"] for b in buttons(alice.refreshed(picker)) if b["text"].startswith("✅")]
    assert f"{price} credits" in go
    await alice.press(alice.refreshed(picker), "✅")
    [video] = await tg.wait_for("sendVideo")
    assert video.params["reply_parameters"]["message_id"] == request["message_id"]
    [create] = kie.creates
    assert create["input"] == {"prompt": "a fox running", **expected}
    [charge] = await charges(store, 42)
    assert charge.amount == -price


async def test_option_buttons_show_what_they_cost(tg, kie, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/video waves")
    texts = [b["text"] for b in buttons(alice.refreshed(picker))]
    assert "Kling · from 150 credits" in texts and "Wan · from 60 credits" in texts
    await alice.press(picker, "Kling")
    texts = [b["text"] for b in buttons(alice.refreshed(picker))]
    assert "✓ 5 s · 150 cr." in texts and "10 s · 300 cr." in texts
    assert "✅ Generate · 150 credits" in texts


async def test_video_without_prompt_asks_for_one_and_models_lists_videos(tg, bot):
    alice = Person(tg, 42, "Alice")
    alice.say("/video")
    await alice.told("What should happen in the video?")
    alice.say("/models")
    told = await alice.told("<b>Videos</b>")
    assert "Kling" in told.params["text"] and "from 150 credits" in told.params["text"]


async def test_a_failed_video_is_refunded_once(tg, kie, tmp_path, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1, fail_msg="upstream error")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "doomed", "Wan", command="/video")
    told = await alice.told("❌ Wan")
    assert "80 credits returned" in told.params["text"]  # 720p by default: 60 + 20
    assert len(await refunds(store, 42)) == 1
    assert (await store.get_user(42)).balance == 1000 == await store.ledger_sum(42)
