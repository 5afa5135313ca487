"""bot/telegram_objects.py: aiogram's objects bound to their bot by one flat hook, with what
pydantic's chain of wrappers did, and nothing else changed."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, Message, TelegramObject, Update
from pydantic import PrivateAttr
from pydantic._internal import _model_construction

from bot.telegram_objects import flatten_post_init

USER = {"id": 7, "is_bot": False, "first_name": "Ann"}
CHAT = {"id": 7, "type": "private", "first_name": "Ann"}
REQUEST = {"message_id": 1, "from": USER, "chat": CHAT, "date": 1, "text": "/image a cat",
           "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
PICKER = {"message_id": 2, "from": {"id": 1, "is_bot": True, "first_name": "Bot"}, "chat": CHAT,
          "date": 2, "text": "Pick a model", "reply_to_message": REQUEST,
          "reply_markup": {"inline_keyboard": [[{"text": f"Model {n} · {n} credits",
                                                 "callback_data": f"p:1:m:{n}"}]
                                               for n in range(5)]}}
PRESS = {"update_id": 10, "callback_query": {"id": "q1", "from": USER, "message": PICKER,
                                             "chat_instance": "c", "data": "p:1:m:2"}}


def telegram_objects(obj: Any) -> list[TelegramObject]:
    """Every Telegram object inside `obj`, itself included."""
    if isinstance(obj, list):
        return [found for item in obj for found in telegram_objects(item)]
    if not isinstance(obj, TelegramObject):
        return []
    return [obj] + [found for name in type(obj).model_fields
                    for found in telegram_objects(getattr(obj, name))]


@pytest.fixture
def wrapper_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each time pydantic's wrappers set up an object's private attributes."""
    calls: list[object] = []
    original = _model_construction.init_private_attributes

    def counted(self: Any, context: Any, /) -> None:
        calls.append(self)
        original(self, context)

    monkeypatch.setattr(_model_construction, "init_private_attributes", counted)
    return calls


def test_a_parsed_update_binds_its_bot_everywhere_without_the_wrappers(
        wrapper_calls: list[object]) -> None:
    flatten_post_init()
    bot = Bot("1:x")
    update = Update.model_validate(PRESS, context={"bot": bot})
    found = telegram_objects(update)
    assert len(found) >= 15  # the update, the query, both messages, the buttons, ...
    assert all(obj.bot is bot for obj in found)
    assert wrapper_calls == []
    assert update.model_dump(mode="json", by_alias=True, exclude_none=True) == PRESS


def test_an_object_made_in_code_has_no_bot_until_bound(wrapper_calls: list[object]) -> None:
    flatten_post_init()
    button = InlineKeyboardButton(text="✅ 5", callback_data="p:1:ok")
    assert button.bot is None and button.__pydantic_private__ == {"_bot": None}
    bot = Bot("1:x")
    assert button.as_(bot).bot is bot
    assert Message.model_validate(REQUEST).bot is None  # parsed without a bot
    assert wrapper_calls == []


def test_a_class_with_more_than_the_bot_is_left_as_it_is() -> None:
    class Noted(TelegramObject):
        text: str
        _note: str = PrivateAttr(default="fresh")

    class Hooked(TelegramObject):
        text: str

        def model_post_init(self, context: Any, /) -> None:
            super().model_post_init(context)
            object.__setattr__(self, "hooked", True)

    flatten_post_init()
    bot = Bot("1:x")
    noted = Noted.model_validate({"text": "x"}, context={"bot": bot})
    assert noted._note == "fresh" and noted.bot is bot
    hooked = Hooked.model_validate({"text": "x"}, context={"bot": bot})
    assert hooked.hooked and hooked.bot is bot  # type: ignore[attr-defined]


def test_a_class_made_after_a_flattening_is_flattened_by_the_next(
        wrapper_calls: list[object]) -> None:
    flatten_post_init()

    class Later(TelegramObject):
        text: str

    Later(text="before")
    assert len(wrapper_calls) == 1  # pydantic wrapped the flat hook for it
    assert flatten_post_init() >= 1
    bot = Bot("1:x")
    assert Later.model_validate({"text": "after"}, context={"bot": bot}).bot is bot
    assert len(wrapper_calls) == 1
    assert flatten_post_init() == 0  # nothing left to change
