"""The catalog as a file: the shipped one is today's table, a wrong entry is one line naming the
file, the model and the field, and CATALOG_PATH's file takes the shipped one's place."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.catalog import MODELS, SHIPPED, Model, get_model, load_catalog, models_of_entry
from bot.catalog.loader import read_catalog
from bot.catalog.words import WORDS
from bot.config import Settings, describe_error
from bot.errors import CatalogError
from bot.handlers import admin
from bot.keyboards import Pick

# Today's models as bot/catalog.py's Python table held them before they moved into the file:
# dataclasses.asdict of each, "good for" in each language as locales/*.po translated it.
TABLE = Path(__file__).with_name("catalog_table.json")
NEW_FIELDS = ("kie_cost", "deadline", "role", "source_field", "applies_to", "improve")  # added since

MODEL = """
[[models]]
id = "ultra"
kind = "image"
api = "market"
kie_model = "google/imagen4-ultra"
name = "Imagen 4 Ultra"
price = 60
kie_cost = 12
expected_seconds = 30
good_for = { en = "the finest detail", ru = "тончайшие детали" }

[[models.options]]
key = "ar"
field = "aspect_ratio"
title = "Aspect ratio"
choices = ["1:1", { value = "16:9", surcharge = 5 }]
default = "1:1"
"""


def dump(model: Model) -> dict:
    data = dataclasses.asdict(model)
    data["good_for"] = dict(model.good_for.texts)
    for name in NEW_FIELDS:
        del data[name]
    return data


def canonical(data: object) -> str:
    """JSON that tells "5" from 5, false from 0 and 5.0 from 5 (== would not)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


@pytest.fixture
def restore_catalog() -> Iterator[None]:
    """The catalog's own objects back afterwards (tests elsewhere hold them)."""
    saved = tuple(MODELS)
    yield
    MODELS.replace(saved)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_is_todays_table() -> None:
    """The move changed nothing: every model, option, choice, price, input and "good for" of
    the table's models, in the table's order (the models added since are left out)."""
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    ids = {model["id"] for model in table}
    for catalog in (read_catalog(SHIPPED), MODELS):
        assert canonical([dump(model) for model in catalog if model.id in ids]) == canonical(table)


def test_what_the_file_adds_kie_cost_and_the_deadline_of_its_kind() -> None:
    for model in MODELS:
        assert model.deadline == model.kind, model.id
        assert model.kie_cost > 0, model.id
    assert get_model("imagen4f").kie_cost == 4 and get_model("kling-i").kie_cost == 50


def test_a_picture_variant_is_the_same_menu_entry() -> None:
    """`[models.picture]`: `<id>-i`, its own Kie id and picture field, the rest its text model's;
    admins' /price and /model name both with the text model's id."""
    wan, variant = models_of_entry("wan")
    assert (variant.id, variant.entry, variant.kie_model) == (
        "wan-i", "wan", "wan/2-2-a14b-image-to-video-turbo")
    assert variant.image is not None and variant.image.field == "image_url"
    assert variant.options[0].default == "auto" and wan.options[0].default == "16:9"
    assert (variant.name, variant.price, variant.good_for) == (wan.name, wan.price, wan.good_for)


def test_good_for_in_each_language() -> None:
    kling = get_model("kling")
    assert kling.good_for.in_language("ru") == "живое движение и работа камеры"
    assert kling.good_for.in_language("de") == str(kling.good_for) == (
        "lifelike motion and camera moves")


def test_an_operators_file_with_defaults_left_out(tmp_path: Path) -> None:
    """Only what a model needs is written: poll interval, prompt field and limit, deadline and
    the picture slot have their defaults; a bare choice is its own label."""
    [ultra] = read_catalog(write(tmp_path, MODEL))
    assert (ultra.poll_interval, ultra.max_prompt, ultra.prompt_field, ultra.deadline,
            ultra.image, ultra.menu_id, ultra.improve) == (3.0, 5000, "prompt", "image", None,
                                                           None, True)
    [spoken] = read_catalog(write(tmp_path, MODEL.replace("price = 60", "price = 60\nimprove = false")))
    assert not spoken.improve
    assert [(c.value, c.label, c.surcharge) for c in ultra.options[0].choices] == [
        ("1:1", "1:1", 0), ("16:9", "16:9", 5)]
    assert ultra.build_input("x", {"ar": "16:9"}) == {"prompt": "x", "aspect_ratio": "16:9"}
    assert ultra.price_for({"ar": "16:9"}) == 65


# Each wrong entry: what is changed in MODEL (old → new text), and the line's field and reason.
WRONG = {
    "missing-field": ("price = 60\n", "", 'model "ultra", field price: Field required'),
    "wrong-type": ("price = 60", 'price = "60"', 'field price: Input should be a valid integer'),
    "unknown-api": ('api = "market"', 'api = "midjourney"',
                    "field api: 'midjourney' is not one of Kie's APIs the bot speaks (market, suno"),
    "unknown-kind": ('kind = "image"', 'kind = "picture"',
                     "field kind: 'picture' is not one of image, video, audio"),
    "unknown-deadline": ('price = 60', 'price = 60\ndeadline = "forever"',
                         "field deadline: 'forever' is not one of image, video, audio"),
    "default-not-a-choice": ('default = "1:1"', 'default = "7:5"',
                             "field options[0].default: '7:5' is not one of the choices "
                             "('1:1', '16:9')"),
    "choice-wrong-type": ("surcharge = 5", 'surcharge = "5"',
                          "field options[0].choices[1].surcharge: Input should be a valid integer"),
    "choice-twice": ('"1:1", {', '"1:1", "1:1", {', "field options[0].choices: the value '1:1' is "
                     "there twice"),
    "choice-a-list": ('"1:1", {', '["1:1"], {', "field options[0].choices[0].value: must be a "
                      "string, a number or true/false, not ['1:1']"),
    "misspelt-field": ("price = 60", "prize = 60", "field prize: is not a field the catalog knows"),
    "no-russian": (', ru = "тончайшие детали"', "",
                   "field good_for: has no line in ru (one for each language in locales/: en, ru)"),
    "id-unfit-for-buttons": ('id = "ultra"', 'id = "ultra:max"',
                             ('model "ultra:max", field id: \'ultra:max\' must be made of a-z, 0-9, - and _, '
                              "at most 32 characters (buttons carry it)")),
    "zero-price": ("price = 60", "price = 0",
                   "field price: Input should be greater than or equal to 1"),
    "improve-not-true-or-false": ("price = 60", 'price = 60\nimprove = "no"',
                                  "field improve: Input should be a valid boolean"),
    "picture-of-a-picture-model": (
        "expected_seconds = 30", 'expected_seconds = 30\nimage = { field = "image_urls", many = '
        'true }\npicture = { kie_model = "x", image = { field = "image_url", many = false } }',
        "field picture: a model that needs a picture (image) has no picture variant"),
}


@pytest.mark.parametrize("case", WRONG.values(), ids=WRONG.keys())
def test_a_wrong_entry_is_one_line_naming_the_file_the_model_and_the_field(
        tmp_path: Path, case: tuple[str, str, str]) -> None:
    old, new, expected = case
    assert old in MODEL
    path = write(tmp_path, MODEL.replace(old, new, 1))
    with pytest.raises(CatalogError) as raised:
        read_catalog(path)
    line = str(raised.value)
    assert line.startswith(f'{path}, model "ultra') and expected in line
    assert "\n" not in line


@pytest.mark.parametrize(("text", "expected"), [
    (MODEL + MODEL,
     'model "ultra", field id: the id \'ultra\' is another model\'s too'),
    (MODEL.replace('"ultra"', '"ultra-i"') + MODEL + "[models.picture]\n"
     'kie_model = "x"\nimage = { field = "image_url", many = false }\n',
     'model "ultra", field picture: the id \'ultra-i\' is another model\'s too'),
    (MODEL.replace("[[models.options]]", 'kie_cost = 1\n[[models.options]]'),
     "is not valid TOML: Cannot overwrite a value (at line"),
    (MODEL.replace('id = "ultra"\n', ""), 'model #1 (no id), field id: Field required'),
    ("", "field models: Field required"),
    ("models = []\n", "field models: List should have at least 1 item"),
    (MODEL + "\n[extras]\nx = 1\n", "field extras: is not a field the catalog knows"),
], ids=["duplicate-id", "variant-id-taken", "not-toml", "no-id", "no-models", "empty",
        "unknown-table"])
def test_what_is_wrong_across_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as raised:
        read_catalog(path)
    assert str(raised.value).startswith(str(path)) and expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"gone\.toml cannot be read: No such file"):
        read_catalog(tmp_path / "gone.toml")


def test_catalog_path_replaces_the_shipped_catalog(tmp_path: Path, restore_catalog: None) -> None:
    """CATALOG_PATH's file is the whole catalog, for every module that imported MODELS; a wrong
    file leaves the catalog as it was."""
    settings = Settings(_env_file=None, bot_token="1:a", kie_api_key="k",  # type: ignore[call-arg]
                        catalog_path=write(tmp_path, MODEL))
    assert settings.catalog.path == tmp_path / "catalog.toml"
    load_catalog(settings.catalog.path)
    assert [model.id for model in admin.MODELS] == ["ultra"]
    assert get_model("imagen4") is None and get_model("ultra").name == "Imagen 4 Ultra"
    before = tuple(MODELS)
    with pytest.raises(CatalogError):
        load_catalog(write(tmp_path, MODEL.replace("price = 60", "price = -1")))
    assert tuple(MODELS) == before


def test_catalog_path_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, bot_token="1:a", kie_api_key="k",  # type: ignore[call-arg]
                 catalog_path=tmp_path / "missing.toml")
    assert describe_error(raised.value) == (
        "Configuration error: CATALOG_PATH is invalid: Path does not point to a file")
    assert Settings(_env_file=None, bot_token="1:a",  # type: ignore[call-arg]
                    kie_api_key="k").catalog.path is None  # DESIGN.md: the shipped catalog


def test_the_longest_ids_the_file_allows_fit_in_a_button(tmp_path: Path) -> None:
    """The loader's limits on ids and option keys keep every picker button within Telegram's 64
    bytes (keyboards.Pick), for an operator's catalog too."""
    longest = MODEL.replace('"ultra"', f'"{"u" * 32}"').replace('key = "ar"', 'key = "abcdefgh"')
    [model] = read_catalog(write(tmp_path, longest))
    index = 99  # a picker of a hundred choices
    for packed in (Pick(draft=10**15, act="m", val=model.id).pack(),
                   Pick(draft=10**15, act="o", val=f"{model.options[0].key}.{index}").pack()):
        assert len(packed.encode()) <= 64
    with pytest.raises(CatalogError, match="at most 32 characters"):
        read_catalog(write(tmp_path, MODEL.replace('"ultra"', f'"{"u" * 33}"')))


def test_the_files_words_are_marked_for_translation() -> None:
    """Option titles, labels and names made of words are message ids: words.py marks those of
    the shipped file for pybabel (locales/*.po translate them), and nothing it no longer has."""
    titles = {option.title for model in MODELS for option in model.options}
    labels = {choice.label for model in MODELS for option in model.options
              for choice in option.choices}
    names = {model.name for model in MODELS}
    assert titles <= set(WORDS)
    assert set(WORDS) <= titles | labels | names
