"""Refusals: requests the bot turns down with a message to the person, not faults.

Raise one anywhere under a handler; `handlers/refusals.py` turns it into the answer (a message,
or the pressed button's alert), so handlers read straight through.
"""

from __future__ import annotations

import html

from aiogram.utils.i18n import gettext as _


class Refusal(Exception):
    """`message` is a message id (marked with N_), translated when shown; `params` fill it in."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def text(self) -> str:
        """The refusal in the current language; the params may be user input, so escaped."""
        safe = {key: html.escape(str(value), quote=False) for key, value in self.params.items()}
        return _(self.message).format(**safe)
