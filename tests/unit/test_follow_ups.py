"""Follow-ups (⬆️ Upscale, ➕ Extend) as data: the catalog's entries with a role, checked at
load; which result offers which button, and what each takes of it; the fake Kie's checks of
the upscalers' and Suno extend's exact inputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.catalog import Offer, get_model, models_of
from bot.catalog.loader import read_catalog
from bot.errors import CatalogError
from bot.i18n import create_i18n
from bot.services.follow_ups import follow_up_buttons, source_of
from bot.store import Generation, GenerationState
from testkit.fakes.kie import MODEL_RULES, validate_input, validate_suno_extend

UPSCALER = """
[[models]]
id = "base"
kind = "image"
api = "market"
kie_model = "google/imagen4"
name = "Base"
price = 10
kie_cost = 2
expected_seconds = 10
good_for = { en = "x", ru = "x" }

[[models]]
id = "up"
kind = "image"
api = "market"
kie_model = "topaz/image-upscale"
name = "Up"
role = "upscale"
source_field = "image_url"
price = 5
kie_cost = 1
expected_seconds = 10
fixed_input = { upscale_factor = "2" }
good_for = { en = "x", ru = "x" }
"""


@pytest.fixture
def english() -> Iterator[None]:
    """The buttons' words, in English."""
    i18n = create_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        yield


def generation(model: str, urls: list[str], files: list[dict] | None = None) -> Generation:
    return Generation(
        id=7, user_id=42, chat_id=42, request_message_id=None, status_message_id=None,
        draft_id=None, kind=get_model(model).kind, model=model, prompt="p", options={}, input={},
        price=10, task_id="t", state=GenerationState.DELIVERED, kie_state="success",
        result_urls=urls, failure=None, failure_detail=None, checks=0, deliveries=1,
        next_check_at=None, deadline_at=0, created_at=0, submitted_at=0, finished_at=0,
        delivered_at=0, result_files=files or [])


def labels(generation: Generation, offer: Offer | None = None) -> list[str]:
    return [b.text for b in follow_up_buttons(generation, offer or Offer())]


def test_follow_ups_are_offered_in_no_picker_only_under_results() -> None:
    for kind in ("image", "video", "audio"):
        assert all(m.role is None for m in models_of(kind) + models_of(kind, picture=True))
    assert Offer().follow_up("imagen4", "upscale").id == "topaz"
    assert Offer().follow_up("kling-i", "upscale").id == "topazvid"  # a picture variant too
    assert Offer(hidden=frozenset({"topaz"})).follow_up("imagen4", "upscale").id == "crisp"
    assert Offer().follow_up("suno", "extend").id == "sunoext"
    assert Offer().follow_up("suno5", "extend").id == "suno5ext"
    assert Offer().follow_up("tts", "extend") is None  # speech is no Suno track
    assert Offer().follow_up("topaz", "upscale") is None  # no upscale of an upscale
    assert Offer().follow_up("sunoext", "extend").id == "sunoext"  # a longer song, longer still


@pytest.mark.usefixtures("english")
def test_an_upscale_takes_a_lone_files_url_and_an_extend_each_tracks_id() -> None:
    picture = generation("imagen4", ["https://k/0.png"])
    assert labels(picture) == ["⬆️ Upscale · 15 credits"]
    assert source_of(picture, "upscale", 0) == "https://k/0.png"
    assert labels(generation("imagen4f", ["https://k/0.png", "https://k/1.png"])) == []
    assert labels(picture, Offer(prices={"topaz": 9})) == ["⬆️ Upscale · 9 credits"]
    song = generation("suno", ["https://k/a.mp3", "https://k/b.mp3"],
                      [{"title": "A", "audio_id": "a1"}, {"title": "B", "audio_id": "b2"}])
    assert labels(song) == ["➕ Extend 1 · 60 credits", "➕ Extend 2 · 60 credits"]
    assert [source_of(song, "extend", n) for n in range(3)] == ["a1", "b2", None]
    # Tracks stored before their ids were kept offer nothing.
    assert labels(replace(song, result_files=[{"title": "A"}, {"title": "B"}])) == []
    assert labels(replace(song, result_files=[{"audio_id": "a1"}])) == ["➕ Extend · 60 credits"]
    assert get_model("topaz").follow_up_input("https://k/0.png") == {
        "upscale_factor": "2", "image_url": "https://k/0.png"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_operators_upscaler_is_read(tmp_path: Path) -> None:
    base, up = read_catalog(write(tmp_path, UPSCALER))
    assert (up.role, up.source_field, up.applies_to) == ("upscale", "image_url", ())
    assert up.follows(base) and not up.follows(up) and base.role is None


@pytest.mark.parametrize(("old", "new", "error"), [
    ('source_field = "image_url"\n', "", "a follow-up needs source_field"),
    ('role = "upscale"', 'role = "shrink"', "field role: 'shrink' is not one of upscale, extend"),
    ('role = "upscale"', 'role = "extend"', "with the role 'extend' is of kind audio, not 'image'"),
    ('role = "upscale"\n', "", "source_field is for a follow-up"),
    ('role = "upscale"', 'role = "upscale"\napplies_to = ["nope"]',
     "field applies_to: 'nope' is no image model of this file"),
    ('role = "upscale"', 'role = "upscale"\nimage = { field = "image_url", many = false }',
     "a follow-up has no options, image or picture"),
])
def test_a_wrong_follow_up_is_one_line_naming_it(tmp_path: Path, old: str, new: str,
                                                 error: str) -> None:
    text = UPSCALER[:UPSCALER.index('id = "up"')] + UPSCALER[UPSCALER.index('id = "up"'):].replace(
        old, new, 1)
    with pytest.raises(CatalogError) as raised:
        read_catalog(write(tmp_path, text))
    assert 'model "up"' in str(raised.value) and error in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("model", "given", "error"), [
    ("topaz/image-upscale", {"image_url": "https://k/0.png", "upscale_factor": "2"}, None),
    ("topaz/image-upscale", {"image_url": "https://k/0.png"}, "upscale_factor is required"),
    ("topaz/image-upscale", {"image_url": "https://k/0.png", "upscale_factor": 2},
     "upscale_factor must be one of"),
    ("topaz/image-upscale", {"image_url": "https://k/0.png", "upscale_factor": "2",
                             "prompt": "x"}, "prompt is not a valid parameter"),
    ("recraft/crisp-upscale", {"image": "https://k/0.png"}, None),
    ("recraft/crisp-upscale", {"image_url": "https://k/0.png"}, "image is required"),
    ("topaz/video-upscale", {"video_url": "https://k/0.mp4", "upscale_factor": "2"}, None),
    ("topaz/video-upscale", {"video_url": "https://k/0.mp4", "upscale_factor": "8"},
     "upscale_factor must be one of"),
])
def test_the_fake_checks_each_upscalers_input(model: str, given: dict, error: str | None) -> None:
    found = validate_input(model, MODEL_RULES[model], given)
    assert found == error if error is None else error in (found or "")


@pytest.mark.parametrize(("given", "error"), [
    ({"audioId": "a1", "defaultParamFlag": False, "model": "V4_5"}, None),
    ({"defaultParamFlag": False, "model": "V4_5"}, "audioId is required"),
    ({"audioId": "a1", "model": "V4_5"}, "defaultParamFlag is required"),
    ({"audioId": "a1", "defaultParamFlag": "no", "model": "V4_5"}, "defaultParamFlag must be a boolean"),
    ({"audioId": "a1", "defaultParamFlag": False, "model": "V9"}, "model must be one of"),
    ({"audioId": "a1", "defaultParamFlag": True, "model": "V5"},
     "prompt is required with defaultParamFlag true"),
    ({"audioId": "a1", "defaultParamFlag": True, "model": "V5", "prompt": "la", "style": "pop",
      "title": "T", "continueAt": 30}, None),
])
def test_the_fake_checks_suno_extends_body(given: dict, error: str | None) -> None:
    found = validate_suno_extend(given)
    assert found == error if error is None else error in (found or "")
