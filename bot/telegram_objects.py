"""aiogram's Telegram objects (updates, messages, keyboards, methods) made cheaper to build.

Each of them binds the bot it came with (`BotContextController.model_post_init`, its one
private attribute `_bot`). pydantic wraps that hook again at every level of the class tree
(Message sits four levels below it), and each wrapper sets up the private attributes once more:
a picker press's update, some thirty objects, cost 180 µs to parse, two fifths of it in those
wrappers (cProfile of 100 press updates; 115 µs with one hook). `flatten_post_init` gives each
such class one hook that does what the chain does, once."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from aiogram.client.context_controller import BotContextController
from pydantic import BaseModel

# aiogram's own hook, under pydantic's wrappers: what every level's chain ends in.
_BINDS_BOT = inspect.unwrap(BotContextController.__dict__["model_post_init"])
_set = object.__setattr__


def _bind_bot(self: BaseModel, context: Any, /) -> None:
    """The chain's effect: private attributes set up, `_bot` the context's bot (or None).
    Those of a subclass made after a flattening were set up by its own wrapper: kept."""
    bot = context.get("bot") if context else None
    private = getattr(self, "__pydantic_private__", None)
    if private is None:
        _set(self, "__pydantic_private__", {"_bot": bot})
    else:
        private["_bot"] = bot


def flatten_post_init() -> int:
    """Give every class whose hook is only that chain the flat one (idempotent); a class with a
    private attribute or a hook of its own is left as it is. How many were changed."""
    changed = 0
    for cls in set(_subclasses(BotContextController)):
        hook = cls.__dict__.get("model_post_init")
        if hook is None or hook is _bind_bot or set(cls.__private_attributes__) != {"_bot"}:
            continue
        if inspect.unwrap(hook) in (_BINDS_BOT, _bind_bot):  # a subclass made after a flattening
            cls.model_post_init = _bind_bot  # type: ignore[method-assign]
            changed += 1
    return changed


def _subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
