"""bot/logs.py: what the operator's log shows at each LOG_LEVEL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging

EVENTS = logging.getLogger("aiogram.event")


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, events = root.handlers[:], root.level, EVENTS.level
    yield
    root.handlers[:], root.level = handlers, level
    EVENTS.setLevel(events)


@pytest.mark.parametrize(("level", "shown"), [(logging.DEBUG, True), (logging.INFO, False),
                                              (logging.WARNING, False)])
def test_the_line_for_each_update_handled_shows_only_at_debug(level: int, shown: bool) -> None:
    setup_logging([], level=level)
    assert EVENTS.isEnabledFor(logging.INFO) is shown
    assert EVENTS.isEnabledFor(logging.WARNING) is (level <= logging.WARNING)


def test_at_error_aiogram_warns_no_more_than_the_rest() -> None:
    setup_logging([], level=logging.ERROR)
    assert not EVENTS.isEnabledFor(logging.WARNING) and EVENTS.isEnabledFor(logging.ERROR)
