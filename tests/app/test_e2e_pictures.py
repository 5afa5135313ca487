"""End to end: a photo as input. /image or /video as a photo's caption or as a reply to one →
only the models that take a picture → ✅ → the photo fetched from Telegram, uploaded to Kie,
its Kie URL in the model's own field — and the bot token in no request Kie sees."""

from __future__ import annotations

import json

import pytest

from testkit.bot import TOKEN, make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges, refunds
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import tiny_png

VIDEO = TaskPlan(reads_before_done=1, content_type="video/mp4")
PHOTO = tiny_png(800, 600)


def model_buttons(picker: dict) -> list[str]:
    return [b["text"].split(" · ")[0] for b in buttons(picker)
            if " · " in b["text"] and not b["text"].startswith("✨")]  # ✨ Improve · N


def uploaded_url(kie, index: int = 0) -> str:
    key = list(kie.uploads)[index]
    return f"{kie.url}/uploads/{key}"


def kie_asked(kie) -> list:
    """What Kie was asked past the start-up check of the key (its credits)."""
    return [r for r in kie.requests if not r.path.endswith("/chat/credit")]


def assert_token_stayed_home(kie) -> None:
    """No request Kie received (creates, reads, uploads) carried the bot token or a file URL."""
    assert kie.token_leaks == []
    secret = TOKEN.partition(":")[2]
    for request in kie.requests:
        assert secret not in json.dumps(request.body, default=str) + request.path


async def test_a_photo_caption_edits_the_photo_and_the_token_never_reaches_kie(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    request, picker = await alice.ask("/image make the sky purple", photo=PHOTO)
    assert model_buttons(picker) == [  # only models that take a photo
        "Nano Banana", "Seedream 4", "Nano Banana Pro", "Seedream 4.5", "Flux Kontext Pro",
        "Flux Kontext Max", "GPT-4o Image", "GPT Image 1.5"]
    assert "From your photo" in picker["text"]
    await alice.press(picker, "Nano Banana")
    await alice.press(alice.refreshed(picker), "16:9")
    await alice.press(alice.refreshed(picker), "✅")
    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["reply_parameters"]["message_id"] == request["message_id"]

    # The largest size was fetched (not the thumbnail) and its bytes uploaded, as they were.
    [fetched] = [c.params["file_id"] for c in tg.calls_of("getFile")]
    assert fetched == request["photo"][-1]["file_id"]
    assert list(kie.uploads.values()) == [PHOTO]
    assert list(kie.upload_types.values()) == ["image/png"]
    [create] = kie.creates
    assert create["model"] == "google/nano-banana-edit"
    assert create["input"] == {"prompt": "make the sky purple", "image_size": "16:9",
                               "image_urls": [uploaded_url(kie)]}
    [charge] = await charges(store, 42)
    assert charge.amount == -30
    assert_token_stayed_home(kie)


@pytest.mark.parametrize("model, kie_model, field", [
    ("Kling", "kling/v2-1-pro", "image_url"),
    ("Sora 2", "sora-2-image-to-video", "image_urls"),
    ("Hailuo", "hailuo/2-3-image-to-video-pro", "image_url"),
    ("Wan", "wan/2-2-a14b-image-to-video-turbo", "image_url"),
    ("Seedance", "bytedance/v1-pro-image-to-video", "image_url"),
])
async def test_a_video_replying_to_a_photo_uses_the_image_to_video_id(
        tg, kie, tmp_path, start_bot, store, model, kie_model, field):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))
    kie.default_plan = VIDEO
    alice = Person(tg, 42, "Alice")
    photo = alice.say("", photo=PHOTO)
    _, picker = await alice.ask("/video the waves start to move", reply_to=photo)
    assert model_buttons(picker) == ["Kling", "Sora 2", "Hailuo", "Wan", "Seedance", "Veo 3.1 Fast",
                                     "Veo 3.1", "Veo 3.1 Fast 1080p", "Runway", "Kling 2.6",
                                     "Wan 2.6", "Hailuo 2.3"]
    await alice.press(picker, model)
    [go] = [b["text"] for b in buttons(alice.refreshed(picker)) if b["text"].startswith("✅")]
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendVideo")
    [create] = kie.creates
    assert create["model"] == kie_model
    url = uploaded_url(kie)
    assert create["input"][field] == ([url] if field == "image_urls" else url)
    [charge] = await charges(store, 42)
    assert f"{-charge.amount} credits" in go  # the price shown is the price charged
    assert_token_stayed_home(kie)


async def test_wan_from_a_photo_keeps_the_photos_shape_by_default(tg, kie, tmp_path, start_bot):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))
    kie.default_plan = VIDEO
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/video drift", photo=PHOTO)
    await alice.press(picker, "Wan")
    assert "Aspect ratio: As the photo" in alice.refreshed(picker)["text"]
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendVideo")
    assert kie.creates[0]["input"]["aspect_ratio"] == "auto"


async def test_a_picture_sent_as_a_file_is_used_with_its_own_type(tg, kie, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image add a hat", document=PHOTO, mime_type="image/png",
                                file_name="cat.png")
    await alice.press(picker, "Seedream 4")
    await alice.press(alice.refreshed(picker), "✅")
    await tg.wait_for("sendPhoto")
    assert list(kie.uploads.values()) == [PHOTO]
    assert kie.creates[0]["model"] == "bytedance/seedream-v4-edit"
    assert kie.creates[0]["input"]["image_urls"] == [uploaded_url(kie)]


async def test_a_file_that_is_not_a_picture_is_refused_before_anything(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    report = alice.say("", document=b"%PDF-1.4 ...", mime_type="application/pdf",
                       file_name="report.pdf")
    alice.say("/image make it pretty", reply_to=report)
    await alice.told("That file is not a picture")
    alice.say("/video animate it", document=b"GIF89a...", mime_type="image/gif")
    await alice.told("That file is not a picture")
    assert tg.calls_of("getFile") == [] and kie_asked(kie) == []
    assert await charges(store, 42) == []
    assert [m for m in tg.bot_messages(42) if m.get("reply_markup")] == []  # no picker


async def test_a_picture_too_large_for_kie_is_refused_before_anything(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    huge = b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024)
    alice.say("/image sharpen", document=huge, mime_type="image/png")
    await alice.told("That picture is too large: at most 10 MB.")
    assert tg.calls_of("getFile") == [] and kie_asked(kie) == []
    assert await charges(store, 42) == []


@pytest.mark.parametrize("fault, told", [
    ("getfile-too-big", "the photo is too large"),
    ("telegram-down", "the photo could not be fetched from Telegram"),
    ("not-an-image", "the photo could not be read as a JPEG, PNG or WebP picture"),
    ("upload-down", "the generator is temporarily unavailable"),
])
async def test_a_photo_that_cannot_reach_kie_is_refunded_once(tg, kie, bot, store, fault, told):
    alice = Person(tg, 42, "Alice")
    document = b"this is text pretending to be a png" if fault == "not-an-image" else PHOTO
    _, picker = await alice.ask("/image recolor", document=document, mime_type="image/png")
    await alice.press(picker, "Nano Banana")
    if fault == "getfile-too-big":
        tg.fail_next("getFile", description="Bad Request: file is too big")
    elif fault == "telegram-down":
        tg.outage(502, methods="getFile")
    elif fault == "upload-down":
        kie.fail_uploads_next(500, times=10)
    await alice.press(alice.refreshed(picker), "✅")
    message = await alice.told(told)
    assert "30 credits returned" in message.params["text"]
    assert len(await charges(store, 42)) == 1
    assert len(await refunds(store, 42)) == 1
    assert (await store.get_user(42)).balance == await store.ledger_sum(42)
    assert kie.creates == []
    assert TOKEN not in message.params["text"]
    assert_token_stayed_home(kie)


async def test_music_ignores_a_photo_and_a_plain_reply_ignores_the_text(tg, kie, bot):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/music a calm piano", photo=PHOTO)
    assert "Suno v4.5" in model_buttons(picker)
    note = alice.say("just some words")
    _, picker = await alice.ask("/image a red fox", reply_to=note)
    assert "Imagen 4" in model_buttons(picker) and "Nano Banana" not in model_buttons(picker)
    assert "From your photo" not in picker["text"]
    assert tg.calls_of("getFile") == []


async def test_a_picture_model_cannot_be_forced_onto_a_text_request(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a red fox")
    data = next(b["callback_data"] for b in buttons(picker) if b["text"].startswith("Imagen 4 ·"))
    forged = data.replace("imagen4", "nanoedit")
    answer = await alice.press(picker, "", data=forged)
    assert "no longer available" in answer["text"]
    assert kie_asked(kie) == [] and await charges(store, 42) == []


async def test_again_after_a_photo_uses_the_photo_again(tg, kie, bot, store):
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image watercolor", photo=PHOTO)
    await alice.press(picker, "Nano Banana")
    await alice.press(alice.refreshed(picker), "✅")
    [result] = await tg.wait_for("sendPhoto")
    delivered = alice.message(42, result.response["message_id"])
    await alice.press(delivered, "🔁")  # charged and started at this one tap
    await tg.wait_for("sendPhoto", count=2)
    assert len(kie.uploads) == 2
    assert [c["input"]["image_urls"] for c in kie.creates] == [[uploaded_url(kie, 0)],
                                                               [uploaded_url(kie, 1)]]
    assert len(await charges(store, 42)) == 2
