"""Filters that aiogram runs on the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject
from magic_filter import MagicFilter


def on_loop(magic: MagicFilter) -> Callable[[TelegramObject], Awaitable[Any]]:
    """`magic` (an `F…` expression) as a coroutine. aiogram runs a filter that is a plain
    callable, an `F…` one too, in its thread pool (asyncio.to_thread): a hop to a thread and
    back for every update the filter sees, far dearer than the attribute lookups it does."""

    # The parameter is named as MagicFilter.resolve's: aiogram also passes a filter whatever
    # of the update's data bears the names of its parameters.
    async def check(value: TelegramObject) -> Any:
        return magic.resolve(value)

    return check
