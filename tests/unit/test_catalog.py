"""The catalog as data: prices, defaults, Kie inputs, and callback data that always fits."""

from __future__ import annotations

import pytest

from bot.catalog import MODELS, get_model, models_of
from bot.keyboards import Again, Pick

HUGE_ID = 10**15  # far more drafts or generations than a bot will ever have


def test_seed_prices_and_ids():
    """The issue's image models at their prices; the non-working ones are not offered."""
    prices = {m.kie_model: m.price for m in models_of("image")}
    assert prices["google/imagen4"] == 40
    assert prices["bytedance/seedream"] == 20
    assert prices["grok-imagine/text-to-image"] == 30
    assert not {"flux-2/pro", "ideogram/v3"} & set(prices)
    assert models_of("image")[0].kie_model == "google/imagen4"  # the default comes first


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
def test_every_button_fits_in_64_bytes(model):
    """Callback data of every picker button stays within Telegram's 64 bytes."""
    packed = [Pick(draft=HUGE_ID, act="m", val=model.id).pack(),
              Pick(draft=HUGE_ID, act="back").pack(), Again(generation=HUGE_ID).pack()]
    packed += [Pick(draft=HUGE_ID, act="o", val=f"{option.key}.{index}").pack()
               for option in model.options for index in range(len(option.choices))]
    assert max(len(data.encode()) for data in packed) <= 64


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
def test_defaults_are_choices_and_build_the_input(model):
    """Every default is one of its option's choices; the input has the prompt and each field."""
    built = model.build_input("a fox", {})
    assert built[model.prompt_field] == "a fox"
    for option in model.options:
        assert option.default in [c.value for c in option.choices]
        default = option.choice(option.default)
        expected = default.input if default.input is not None else {option.field: option.default}
        assert expected.items() <= built.items()
    assert model.price_for({}) == model.price_for(model.defaults()) >= model.lowest_price
    assert get_model(model.id) is model


def test_a_stale_choice_falls_back_to_the_default():
    """A draft holding a value the catalog dropped gets the default, not an error."""
    imagen = get_model("imagen4")
    assert imagen.resolve({"ar": "7:5", "gone": "x"}) == {"ar": "1:1"}


def test_number_of_images_multiplies_the_price():
    fast = get_model("imagen4f")
    assert [fast.price_for({"n": n}) for n in "1234"] == [10, 20, 30, 40]
    assert fast.build_input("x", {"n": "3"})["num_images"] == "3"


def test_video_prices_follow_the_options_and_invalid_combinations_are_not_offered():
    kling, sora, hailuo, seedance = (get_model(i) for i in ("kling", "sora2", "hailuo", "seedance"))
    assert [kling.price_for({"d": d}) for d in ("5", "10")] == [150, 300]
    assert sora.price_for({"d": "15"}) == 180 and sora.build_input("x", {})["remove_watermark"]
    assert sora.build_input("x", {"ar": "portrait"})["aspect_ratio"] == "portrait"
    combos = [hailuo.build_input("x", {"m": c.value}) for c in hailuo.options[0].choices]
    assert {(c["duration"], c["resolution"]) for c in combos} == {
        ("6", "768P"), ("10", "768P"), ("6", "1080P")}  # Hailuo refuses 1080P with 10 s
    assert seedance.price_for({"r": "1080p", "d": "10"}) == 80 * 2 + 60
    assert seedance.lowest_price == 80 and seedance.varies_in_price
    assert not get_model("imagen4").varies_in_price
