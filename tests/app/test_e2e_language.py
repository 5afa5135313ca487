"""End to end: /language offers the shipped languages by their own names; a choice is stored,
answered in the new language at once, and kept across restarts; the command menu has
/history and /language in every language."""

from __future__ import annotations

import asyncio
import json

from bot.keyboards import Language
from testkit.chat import Person, buttons
from testkit.fakes.telegram import FakeTelegram


async def open_menu(person: Person, chat: dict | None = None) -> dict:
    person.say("/language", chat=chat)
    call = await person.told("🌐", chat_id=chat["id"] if chat else None)
    return person.message(call.params["chat_id"], call.response["message_id"])


def labels(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


async def test_choosing_russian_answers_in_russian_and_is_remembered(tg, bot, store, settings,
                                                                    start_bot):
    alice = Person(tg, 42, "Alice", language="en")  # her Telegram app is in English
    menu = await open_menu(alice)
    assert "Choose your language" in menu["text"]
    assert labels(menu) == ["✓ English", "Русский"]

    answer = await alice.press(menu, "Русский")
    assert not answer.get("show_alert")
    await alice.told("Язык: Русский")
    assert labels(alice.refreshed(menu)) == ["English", "✓ Русский"]
    assert (await store.get_user(42)).language == "ru"

    alice.say("/balance")
    await alice.told("Ваш баланс: <b>100 кредитов</b>")

    await bot.stop()  # the choice lives in the database, not in the process
    await start_bot(settings)
    alice.say("/balance")
    await alice.told("Ваш баланс")
    await open_menu(alice)
    assert "Выберите язык" in tg.last_bot_message(42)["text"]
    assert labels(tg.last_bot_message(42)) == ["English", "✓ Русский"]


async def test_switching_back_to_english(tg, bot, store):
    alice = Person(tg, 42, "Alice", language="ru")  # Telegram says Russian
    menu = await open_menu(alice)
    assert "Выберите язык" in menu["text"] and labels(menu) == ["English", "✓ Русский"]
    await alice.press(menu, "English")
    await alice.told("Language: English")
    assert (await store.get_user(42)).language == "en"
    alice.say("/balance")
    await alice.told("Your balance: <b>100 credits</b>")


async def test_someone_elses_menu_and_unknown_languages_are_refused(tg, bot, store):
    group = tg.group_chat()
    alice = Person(tg, 42, "Alice")
    bob = Person(tg, 43, "Bob")
    menu = await open_menu(alice, chat=group)
    answer = await bob.press(menu, "Русский")
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    answer = await alice.press(menu, "", data=Language(owner=42, code="de").pack())
    assert answer["show_alert"] and "out of date" in answer["text"]
    await asyncio.sleep(0.1)
    assert (await store.get_user(42)).language is None
    assert (await store.get_user(43)).language is None


def menu_of(tg: FakeTelegram, language: str) -> dict[str, str]:
    """The command menu as set for the default scope and this language ("" = everyone else)."""
    key = (json.dumps({"type": "default"}, sort_keys=True), language)
    return {c["command"]: c["description"] for c in tg.commands[key]}


async def test_command_menu_has_history_and_language_in_every_language(tg, bot):
    english, russian, default = menu_of(tg, "en"), menu_of(tg, "ru"), menu_of(tg, "")
    for menu in (english, russian, default):
        assert {"history", "language"} <= set(menu)
    assert english["history"] == default["history"] == "Your last generations"
    assert english["language"] == "Change the language"
    assert russian["history"] == "Ваши последние генерации"
    assert russian["language"] == "Сменить язык"
