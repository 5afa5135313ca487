"""✨ Improve without a server: what is cleaned from a chat model's answer, and the catalog
file's [improve] table as the loader checks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import KINDS, MODELS, SHIPPED
from bot.catalog.loader import read_improve
from bot.errors import CatalogError
from bot.services.improve import clean_prompt
from tests.unit.test_catalog_file import MODEL  # a model alone, to write a file around a table

PROMPT = "A red fox in fresh snow at dawn, soft golden light"


@pytest.mark.parametrize("answer", [
    PROMPT,
    f'"{PROMPT}"',
    f"“{PROMPT}”",
    f"«{PROMPT}»",
    f"Here is the improved prompt:\n\n{PROMPT}",
    f"Sure! Here's an enhanced version: '{PROMPT}'",
    f"**Improved prompt:** {PROMPT}",
    f"Prompt: {PROMPT}",
    f"```\n{PROMPT}\n```",
    f"<think>the person wants a fox</think>\n{PROMPT}",
    "  A red fox in fresh snow\nat dawn,   soft golden light  ",
])
def test_what_the_model_adds_is_cleaned_away(answer: str) -> None:
    assert clean_prompt(answer, 1000) == PROMPT


@pytest.mark.parametrize("answer", ["", "   ", '""', "``` ```", "...", "<think>hmm</think>"])
def test_nothing_usable_is_none(answer: str) -> None:
    assert clean_prompt(answer, 1000) is None


def test_a_long_answer_is_cut_at_a_word_within_the_limit() -> None:
    cleaned = clean_prompt(PROMPT, 20)
    assert cleaned == "A red fox in fresh"
    assert clean_prompt("x" * 50, 20) == "x" * 20


def test_the_shipped_catalog_has_a_system_prompt_for_every_kind() -> None:
    improve = read_improve(SHIPPED)
    assert improve is not None and improve == MODELS.improve
    assert set(improve.system) == set(KINDS) and improve.model == "gemini-2.5-flash"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def test_a_file_without_improve_has_none_and_keeps_the_shipped_one(tmp_path: Path) -> None:
    assert read_improve(write(tmp_path, MODEL)) is None


@pytest.mark.parametrize(("table", "says"), [
    ('[improve]\nsystem = { image = "a", video = "b" }', "field improve.system: has no system "
                                                         "prompt for audio"),
    ('[improve]\nsystem = { image = "a", video = "b", audio = "c", text = "d" }',
     "text is not one of"),
    ('[improve]\nmodel = "../api/v1"\nsystem = { image = "a", video = "b", audio = "c" }',
     "field improve.model"),
    ('[improve]\nsystem = { image = "", video = "b", audio = "c" }', "field improve.system.image"),
    ('[improve]\nmodels = "x"\nsystem = { image = "a", video = "b", audio = "c" }',
     "field improve.models: is not a field the catalog knows"),
])
def test_a_wrong_improve_table_is_one_line_naming_the_field(tmp_path: Path, table: str,
                                                            says: str) -> None:
    path = write(tmp_path, MODEL + "\n" + table + "\n")
    with pytest.raises(CatalogError) as raised:
        read_improve(path)
    assert str(raised.value).startswith(f"{path}, ") and says in str(raised.value)
    assert "\n" not in str(raised.value)
