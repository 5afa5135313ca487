"""End to end: the models the shipped catalog gained with issue 26 — Veo 3.1 (Fast, Quality and
Fast in 1080p), Runway, Flux Kontext Pro and Max, 4o Image, and the market's Nano Banana Pro,
Seedream 4.5, GPT Image 1.5, Kling 2.6, Wan 2.6 and Hailuo 2.3 — each from /image or /video to
the delivered file: its exact Kie.ai body for the options pressed (from a photo too), and the
price the picker showed charged. And every combination of options any of them can send is one
the fake Kie.ai (which validates each model's fields as kie-api-more.md documents them) takes:
Runway's 1080p with 10 s, which it refuses, is never sent."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from bot.catalog import MODELS, Model
from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET, API_RUNWAY
from bot.kie.errors import KieValidationError
from bot.kie.ratelimit import RateLimiter
from testkit.bot import KIE_KEY, make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import tiny_png

PHOTO = tiny_png(800, 600)
PROMPT = "a fox in snow"
UPLOAD = "<upload>"  # the photo's Kie URL, once uploaded

# The catalog's new menu entries (their picture variants are `<id>-i`).
NEW = ("nanopro", "seedream45", "fluxpro", "fluxmax", "gpt4o", "gptimage15", "veofast", "veo",
       "veofasthd", "runway", "kling26", "wan26", "hailuo23")


@dataclass(frozen=True)
class Case:
    name: str  # the model's button says this, then " · " and its price
    photo: bool  # sent with a photo: the picture variant
    options: tuple[str, ...]  # the option buttons pressed, in order
    api: str  # the fake's API family the create went to
    model: str | None  # the body's model id (None: the API has no model field)
    input: dict[str, Any]  # the model's input besides the prompt (market: `input`; else the body)
    price: int  # shown on ✅ and charged

    @property
    def command(self) -> str:
        video = self.api in ("veo", "runway") or "video" in (self.model or "")
        return "/video" if video else "/image"


CASES = {
    "nanopro": Case("Nano Banana Pro", False, ("16:9", "4K"), API_MARKET, "nano-banana-pro",
                    {"aspect_ratio": "16:9", "resolution": "4K"}, 90),
    "nanopro-i": Case("Nano Banana Pro", True, (), API_MARKET, "nano-banana-pro",
                      {"aspect_ratio": "auto", "resolution": "1K", "image_input": [UPLOAD]}, 90),
    "seedream45": Case("Seedream 4.5", False, ("9:16", "4K"), API_MARKET,
                       "seedream/4.5-text-to-image", {"aspect_ratio": "9:16", "quality": "high"}, 30),
    "seedream45-i": Case("Seedream 4.5", True, ("3:2",), API_MARKET, "seedream/4.5-edit",
                         {"aspect_ratio": "3:2", "quality": "basic", "image_urls": [UPLOAD]}, 20),
    "fluxpro": Case("Flux Kontext Pro", False, ("21:9",), "flux-kontext", "flux-kontext-pro",
                    {"aspectRatio": "21:9"}, 20),
    # An edit keeps the photo's ratio: no aspectRatio at all.
    "fluxpro-i": Case("Flux Kontext Pro", True, (), "flux-kontext", "flux-kontext-pro",
                      {"inputImage": UPLOAD}, 20),
    "fluxmax": Case("Flux Kontext Max", False, (), "flux-kontext", "flux-kontext-max",
                    {"aspectRatio": "1:1"}, 40),
    "fluxmax-i": Case("Flux Kontext Max", True, ("4:3",), "flux-kontext", "flux-kontext-max",
                      {"aspectRatio": "4:3", "inputImage": UPLOAD}, 40),
    "gpt4o": Case("GPT-4o Image", False, ("3:2",), "gpt4o-image", None, {"size": "3:2"}, 25),
    "gpt4o-i": Case("GPT-4o Image", True, (), "gpt4o-image", None,
                    {"size": "1:1", "filesUrl": [UPLOAD]}, 25),
    "gptimage15": Case("GPT Image 1.5", False, ("2:3", "High"), API_MARKET,
                       "gpt-image/1.5-text-to-image", {"aspect_ratio": "2:3", "quality": "high"}, 45),
    "gptimage15-i": Case("GPT Image 1.5", True, (), API_MARKET, "gpt-image/1.5-image-to-image",
                         {"aspect_ratio": "1:1", "quality": "medium", "input_urls": [UPLOAD]}, 25),
    "veofast": Case("Veo 3.1 Fast", False, ("9:16",), "veo", "veo3_fast",
                    {"aspect_ratio": "9:16"}, 150),
    "veofast-i": Case("Veo 3.1 Fast", True, (), "veo", "veo3_fast",
                      {"aspect_ratio": "Auto", "imageUrls": [UPLOAD]}, 150),
    "veo": Case("Veo 3.1", False, (), "veo", "veo3", {"aspect_ratio": "16:9"}, 630),
    "veo-i": Case("Veo 3.1", True, ("9:16",), "veo", "veo3",
                  {"aspect_ratio": "9:16", "imageUrls": [UPLOAD]}, 630),
    "veofasthd": Case("Veo 3.1 Fast 1080p", False, (), "veo", "veo3_fast",
                      {"aspect_ratio": "16:9"}, 160),
    "veofasthd-i": Case("Veo 3.1 Fast 1080p", True, (), "veo", "veo3_fast",
                        {"aspect_ratio": "16:9", "imageUrls": [UPLOAD]}, 160),
    "runway": Case("Runway", False, ("10 s · 720p", "9:16"), API_RUNWAY, None,
                   {"duration": 10, "quality": "720p", "aspectRatio": "9:16"}, 60),
    "runway-1080p": Case("Runway", False, ("5 s · 1080p",), API_RUNWAY, None,
                         {"duration": 5, "quality": "1080p", "aspectRatio": "16:9"}, 60),
    # From a picture the picture decides the ratio: no aspectRatio.
    "runway-i": Case("Runway", True, (), API_RUNWAY, None,
                     {"duration": 5, "quality": "720p", "imageUrl": UPLOAD}, 30),
    "kling26": Case("Kling 2.6", False, ("9:16", "10 s", "With sound"), API_MARKET,
                    "kling-2.6/text-to-video",
                    {"aspect_ratio": "9:16", "duration": "10", "sound": True}, 520),
    "kling26-i": Case("Kling 2.6", True, (), API_MARKET, "kling-2.6/image-to-video",
                      {"duration": "5", "sound": False, "image_urls": [UPLOAD]}, 130),
    "wan26": Case("Wan 2.6", False, ("15 s", "1080p"), API_MARKET, "wan/2-6-text-to-video",
                  {"duration": "15", "resolution": "1080p"}, 180),
    "wan26-i": Case("Wan 2.6", True, ("10 s",), API_MARKET, "wan/2-6-image-to-video",
                    {"duration": "10", "resolution": "720p", "image_urls": [UPLOAD]}, 100),
    "hailuo23": Case("Hailuo 2.3", True, ("6 s · 1080P",), API_MARKET,
                     "hailuo/2-3-image-to-video-standard",
                     {"duration": "6", "resolution": "1080P", "image_url": UPLOAD}, 90),
    "hailuo23-10s": Case("Hailuo 2.3", True, ("10 s · 768P",), API_MARKET,
                         "hailuo/2-3-image-to-video-standard",
                         {"duration": "10", "resolution": "768P", "image_url": UPLOAD}, 120),
}


def with_upload(values: dict[str, Any], url: str) -> dict[str, Any]:
    return {key: [url] if value == [UPLOAD] else url if value == UPLOAD else value
            for key, value in values.items()}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_each_new_model_gets_its_input_and_charges_the_shown_price(
        tg, kie, tmp_path, start_bot, store, case):
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))
    kie.default_plan = TaskPlan(reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    request, picker = await alice.ask(f"{case.command} {PROMPT}",
                                      **({"photo": PHOTO} if case.photo else {}))
    await alice.press(picker, f"{case.name} · ")
    for option in case.options:
        await alice.press(alice.refreshed(picker), option)
    [go] = [b["text"] for b in buttons(alice.refreshed(picker)) if b["text"].startswith("✅")]
    assert f"· {case.price} credits" in go
    await alice.press(alice.refreshed(picker), "✅")

    sent_as = "sendVideo" if case.command == "/video" else "sendPhoto"
    [sent] = await tg.wait_for(sent_as)
    assert sent.params["reply_parameters"]["message_id"] == request["message_id"]
    [task] = kie.tasks.values()
    assert (task.api, task.body.get("model")) == (case.api, case.model)
    upload = f"{kie.url}/uploads/{next(iter(kie.uploads))}" if case.photo else ""
    assert task.input == {"prompt": PROMPT, **with_upload(case.input, upload)}
    # Veo 3.1 Fast 1080p delivers Kie's 1080p version of the video.
    delivered = task.hd_urls if case.name.endswith("1080p") else task.result_urls
    assert sent.params[sent_as.removeprefix("send").lower()] == delivered[0]
    [charge] = await charges(store, 42)
    assert charge.amount == -case.price


def every_choice(model: Model) -> list[dict[str, Any]]:
    """Every combination of choices the model's picker offers."""
    keys = [option.key for option in model.options]
    values = itertools.product(*([choice.value for choice in option.choices]
                                 for option in model.options))
    return [dict(zip(keys, combination, strict=True)) for combination in values]


@pytest.fixture
async def roomy_kie() -> AsyncIterator[tuple[FakeKie, KieClient]]:
    """The fake Kie.ai and a client of it with room for a few hundred creates at once."""
    async with FakeKie(api_key=KIE_KEY, rate_limit=10_000, window=1.0) as fake:
        client = KieClient(SecretStr(KIE_KEY), base_url=fake.url, upload_url=fake.url,
                           limiter=RateLimiter(10_000, 1.0), backoff=0.01)
        yield fake, client
        await client.aclose()


async def test_every_combination_of_options_is_one_kie_takes(roomy_kie):
    fake, client = roomy_kie
    models = [model for model in MODELS if model.entry in NEW]
    assert {model.entry for model in models} == set(NEW)
    refused = []
    for model in models:
        for chosen in every_choice(model):
            kie_input = model.build_input(PROMPT, chosen)
            if model.image is not None:
                kie_input = model.with_picture(kie_input, f"{fake.url}/uploads/photo.png")
            try:
                await client.start(model.api, model.kie_model, kie_input)
            except KieValidationError as error:
                refused.append((model.id, chosen, str(error)))
    assert refused == []
    assert len(fake.tasks) > 100
    runway = [task.body for task in fake.tasks.values() if task.api == API_RUNWAY]
    assert {(body["duration"], body["quality"]) for body in runway} == {
        (5, "720p"), (5, "1080p"), (10, "720p")}
    # What the catalog never sends: the fake refuses it, as Kie does.
    with pytest.raises(KieValidationError, match="1080p is not available with a 10 s duration"):
        await client.start(API_RUNWAY, "runway", {"prompt": PROMPT, "duration": 10,
                                                  "quality": "1080p", "aspectRatio": "16:9"})
