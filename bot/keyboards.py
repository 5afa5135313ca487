"""Inline keyboards and their CallbackData factories; callback data holds ids, never prompts."""

from __future__ import annotations

from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import texts
from bot.catalog import Model


class Pick(CallbackData, prefix="pk"):
    """A press in a picker: `act` is m (model), o (option), go, back or x (cancel)."""

    draft: int
    act: str
    val: str = ""


class Again(CallbackData, prefix="ag"):
    generation: int


def models_keyboard(draft_id: int, models: list[Model]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for model in models:
        builder.button(text=texts.model_button(model),
                       callback_data=Pick(draft=draft_id, act="m", val=model.id))
    builder.button(text="✖ " + _("Cancel"), callback_data=Pick(draft=draft_id, act="x"))
    builder.adjust(1)
    return builder.as_markup()


def options_keyboard(draft_id: int, model: Model, chosen: dict[str, Any],
                     can_go_back: bool) -> InlineKeyboardMarkup:
    """One row per option (the current choice ticked), then Generate, then Back / Cancel."""
    builder = InlineKeyboardBuilder()
    values = model.resolve(chosen)
    for option in model.options:
        priced = any(choice.price_factor != 1 for choice in option.choices)
        buttons = []
        for index, choice in enumerate(option.choices):
            label = choice.label
            if priced:
                label += f" · {model.price_for({**values, option.key: choice.value})}"
            if choice.value == values[option.key]:
                label = f"✓ {label}"
            buttons.append(_button(label, Pick(draft=draft_id, act="o", val=f"{option.key}.{index}")))
        builder.row(*buttons, width=5)
    builder.row(_button(texts.generate_button(model.price_for(values)),
                        Pick(draft=draft_id, act="go")))
    last_row = [_button("✖ " + _("Cancel"), Pick(draft=draft_id, act="x"))]
    if can_go_back:
        last_row.insert(0, _button("← " + _("Models"), Pick(draft=draft_id, act="back")))
    builder.row(*last_row)
    return builder.as_markup()


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def again_keyboard(generation_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="🔁 " + _("Again"), callback_data=Again(generation=generation_id))
    return builder.as_markup()
