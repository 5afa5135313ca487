"""End to end: an operator's catalog file (CATALOG_PATH's, loaded at start) with one more market
model than the shipped one: offered in the picker and in /models, generated with its own Kie
input and price, delivered, given up by the deadline the file names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.catalog import MODELS, SHIPPED, load_catalog
from bot.store import GenerationState
from testkit.bot import make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import TaskPlan

ULTRA = """
[[models]]
id = "ultra"
kind = "image"
api = "market"
kie_model = "google/imagen4-ultra"
name = "Imagen 4 Ultra"
price = 60
kie_cost = 12
expected_seconds = 30
deadline = "video"
good_for = { en = "the finest detail", ru = "тончайшие детали" }

[[models.options]]
key = "ar"
field = "aspect_ratio"
title = "Aspect ratio"
choices = ["1:1", { value = "16:9", surcharge = 5 }]
default = "1:1"
"""


@pytest.fixture
def operators_catalog(tmp_path: Path) -> Iterator[None]:
    """The shipped file and Imagen 4 Ultra, as `python -m bot` loads CATALOG_PATH's at start;
    the catalog's own objects back afterwards (tests elsewhere hold them)."""
    path = tmp_path / "operator.toml"
    path.write_text(SHIPPED.read_text(encoding="utf-8") + ULTRA, encoding="utf-8")
    saved = tuple(MODELS)
    load_catalog(path)
    yield
    MODELS.replace(saved)


async def test_a_market_model_added_by_the_file_is_offered_and_delivered(
        operators_catalog, tg, kie, start_bot, settings, store):
    await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a glacier", model="Imagen 4 Ultra", options=("16:9",))

    [photo] = await tg.wait_for("sendPhoto")
    [create] = kie.creates
    assert create["model"] == "google/imagen4-ultra"
    assert create["input"] == {"prompt": "a glacier", "aspect_ratio": "16:9"}
    assert photo.params["photo"].startswith(kie.url + "/files/")
    [charge] = await charges(store, 42)
    assert charge.amount == -65  # 60, and 5 for 16:9
    await alice.told("✅ Imagen 4 Ultra — done in")
    [generation] = await store.generations_in([GenerationState.DELIVERED])
    assert generation.model == "ultra"


async def test_the_file_s_deadline_gives_it_up(operators_catalog, tg, kie, tmp_path, start_bot,
                                               store):
    """`deadline = "video"`: an image given up at KIE_DEADLINE_VIDEO, not KIE_DEADLINE_IMAGE."""
    kie.default_plan = TaskPlan(outcome="never")
    await start_bot(make_settings(tmp_path, tg, kie, kie_deadline_video=1.0))
    alice = Person(tg, 42, "Alice")
    await generate(alice, "forever", model="Imagen 4 Ultra")
    told = await alice.told("❌", timeout=5)
    assert "it took too long" in told.params["text"]
    [refund] = await refunds(store, 42)
    assert refund.amount == 60 and refund.note == "timeout"


async def test_the_file_s_model_in_the_picker_and_in_models(operators_catalog, tg, start_bot,
                                                          settings):
    await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    _, picker = await alice.ask("/image a lake")
    assert [b["text"] for b in buttons(picker)][-3:] == [
        "Imagen 4 Ultra · from 60 credits", "✨ Improve · 1 credit", "✖ Cancel"]
    alice.say("/models")
    text = (await alice.told("Imagen 4 Ultra")).params["text"]
    assert "• Imagen 4 Ultra — from 60 credits · the finest detail\n" in text
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/models")
    text = (await boris.told("Imagen 4 Ultra")).params["text"]
    assert "• Imagen 4 Ultra — от 60 кредитов · тончайшие детали\n" in text
