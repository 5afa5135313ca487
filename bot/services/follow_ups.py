"""⬆️ Upscale and ➕ Extend: what a delivered result offers to be made from it next, and what of
it each follow-up takes. A follow-up is a catalog model with a `role` (catalog/models.py); its
generation is charged and tracked like any other (Generations.follow_up), with the result as
its input.

An upscale takes the result's file URL, so it sits under a single picture or a video (an
album's line below it could not say which picture). An extend takes a Suno track's id, so each
track of a song has its own button. A follow-up's own result offers no upscale again; an
extended song can be extended further (Model.follows).
"""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton

from bot.catalog import EXTEND, ROLES, UPSCALE, Offer
from bot.keyboards import follow_up_button
from bot.store import Generation


def follow_up_buttons(generation: Generation, offer: Offer) -> list[InlineKeyboardButton]:
    """The follow-ups a delivered result offers now (⬆️ then ➕), each at its price now."""
    buttons = []
    for role in ROLES:
        model = offer.follow_up(generation.model, role)
        if model is None:
            continue
        files = [n for n in range(len(generation.result_urls))
                 if source_of(generation, role, n) is not None]
        buttons += [follow_up_button(generation.id, role, n, model.price, numbered=len(files) > 1)
                    for n in files]
    return buttons


def source_of(generation: Generation, role: str, file: int) -> str | None:
    """What a follow-up of `role` takes from file `file` of the result: its URL (upscale, of a
    lone file), its Suno track id (extend; None for a track Kie gave no id, or stored before
    ids were kept)."""
    if not 0 <= file < len(generation.result_urls):
        return None
    if role == UPSCALE:
        return generation.result_urls[file] if len(generation.result_urls) == 1 else None
    if role == EXTEND and file < len(generation.result_files):
        audio_id = generation.result_files[file].get("audio_id")
        return audio_id if isinstance(audio_id, str) and audio_id else None
    return None
