"""Inline keyboards and their CallbackData factories; callback data holds ids, never prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from bot import texts
from bot.catalog import KINDS, Model
from bot.store.broadcasts import Audience

# Forged data outside these shapes fails the filter and reaches the "out of date" fallback
# instead of a handler: a row id past 2**63 would overflow SQLite, and a value is made of the
# bot's own ASCII ids and numbers (str.isdigit() would pass '²', which int() refuses).
RowId = Annotated[int, Field(ge=1, lt=2**63)]
Value = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]*$")]


class Pick(CallbackData, prefix="pk"):
    """A press in a picker: `act` is m (model), o (option), go (`val`: the draft revision and
    price the keyboard shows, see `promise`), back or x (cancel)."""

    draft: RowId
    act: Literal["m", "o", "go", "back", "x"]
    val: Value = ""


class Again(CallbackData, prefix="ag"):
    """🔁 under a result or a failure: the same request again at once, at `price` (what the
    button shows; a different price now opens the picker instead)."""

    generation: RowId
    price: Annotated[int, Field(ge=0, lt=10**9)] = 0


class Follow(CallbackData, prefix="fl"):
    """What comes after a result: `act` image (✏️ Edit it), video (🎬 Animate it), original
    (📎 the file as a document), or models (the same request, another model: after a
    failure)."""

    generation: RowId
    act: Literal["image", "video", "models", "original"]


class FollowUp(CallbackData, prefix="fu"):
    """⬆️ Upscale / ➕ Extend under a result: the catalog's follow-up of `role` run on file
    `file` of it at once, at `price` (what the button shows; another price now charges nothing)."""

    generation: RowId
    role: Literal["upscale", "extend"]
    file: Annotated[int, Field(ge=0, lt=100)] = 0
    price: Annotated[int, Field(ge=0, lt=10**9)] = 0


def follow_up_button(generation_id: int, role: Literal["upscale", "extend"], file: int,
                     price: int, *, numbered: bool) -> InlineKeyboardButton:
    """`⬆️ Upscale · N credits`; `➕ Extend 2 · N credits` where several files offer it."""
    return _button(texts.follow_up_button(role, price, file + 1 if numbered else None),
                   FollowUp(generation=generation_id, role=role, file=file, price=price))


class BuyMenu(CallbackData, prefix="bm"):
    """⭐ Buy credits: the /buy packages (its handler: handlers/payments.py)."""


def buy_credits_button() -> InlineKeyboardButton:
    return _button("⭐ " + _("Buy credits"), BuyMenu())


class Compose(CallbackData, prefix="cp"):
    """🖼 / 🎬 / 🎵 (✏️ / 🎬 under a photo): this kind for `prompt` (a stored text or photo,
    services: Store.create_prompt), or with none yet (0): ask for one."""

    kind: Literal["image", "video", "audio"]
    prompt: Annotated[int, Field(ge=0, lt=2**63)] = 0


class HistoryPage(CallbackData, prefix="hp"):
    """◀ ▶ under a /history list: `owner` asked for it, and only they may turn its pages."""

    owner: RowId
    page: Annotated[int, Field(ge=0, lt=10**6)]


class Resend(CallbackData, prefix="rs"):
    """📤 under a /history list: send this delivered result again (its owner only)."""

    generation: RowId


class Language(CallbackData, prefix="ln"):
    """A language button of /language: `owner` asked for the menu; `code` is a locale."""

    owner: RowId
    code: Value


# Buttons in a row of a picker's option, at most.
OPTION_ROW = 5
Rows = list[list[InlineKeyboardButton]]


def models_keyboard(draft_id: int, models: list[Model], *,
                    improve: InlineKeyboardButton | None = None) -> InlineKeyboardMarkup:
    """One model a row, then `improve` (improve_button), then Cancel."""
    rows = [[_button(texts.model_button(model), Pick(draft=draft_id, act="m", val=model.id))]
            for model in models]
    return _picker_markup(rows, improve, [_button("✖ " + _("Cancel"), Pick(draft=draft_id, act="x"))])


def options_keyboard(draft_id: int, revision: int, model: Model, values: dict[str, Any], *,
                     price: int, can_go_back: bool,
                     improve: InlineKeyboardButton | None = None) -> InlineKeyboardMarkup:
    """One row per option (the current choice ticked; `values` resolved), then Generate at
    `price`, then `improve` (improve_button), then Back / Cancel."""
    rows: Rows = []
    for option in model.options:
        priced = any(choice.priced for choice in option.choices)
        buttons = []
        for index, choice in enumerate(option.choices):
            label = _(choice.label)
            if priced:
                costs = model.price_for({**values, option.key: choice.value})
                label += f" · {texts.credits_short(costs)}"
            if choice.value == values[option.key]:
                label = f"✓ {label}"
            buttons.append(_button(label, Pick(draft=draft_id, act="o", val=f"{option.key}.{index}")))
        rows += [buttons[i:i + OPTION_ROW] for i in range(0, len(buttons), OPTION_ROW)]
    rows.append([_button(texts.generate_button(price),
                         Pick(draft=draft_id, act="go", val=promise(revision, price)))])
    last_row = [_button("✖ " + _("Cancel"), Pick(draft=draft_id, act="x"))]
    if can_go_back:
        last_row.insert(0, _button("← " + _("Models"), Pick(draft=draft_id, act="back")))
    return _picker_markup(rows, improve, last_row)


def _picker_markup(rows: Rows, improve: InlineKeyboardButton | None,
                   last_row: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    """A picker's keyboard, made once (each press draws one: no builder's copy of it, no
    second keyboard for ✨ Improve)."""
    return InlineKeyboardMarkup(inline_keyboard=[*rows, *([[improve]] if improve else []),
                                                 last_row])


def promise(revision: int, price: int) -> str:
    """What ✅ carries: the draft revision and the price it shows, both checked at the charge."""
    return f"{revision}-{price}"


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def compose_keyboard(prompt_id: int, kinds: Sequence[str], *,
                     picture: bool) -> InlineKeyboardMarkup:
    """The kinds a text or photo sent without a command can become."""
    return InlineKeyboardMarkup(inline_keyboard=[[
        _button(texts.kind_button(kind, picture=picture), Compose(kind=kind, prompt=prompt_id))
        for kind in kinds]])


def start_keyboard() -> InlineKeyboardMarkup:
    """Under /start: each kind (its question for a prompt comes next), and ⭐ Buy credits."""
    return InlineKeyboardMarkup(inline_keyboard=[
        [_button(texts.kind_button(kind), Compose(kind=kind)) for kind in KINDS],
        [buy_credits_button()]])


def result_keyboard(generation_id: int, kind: str, price: int, *, picture_in_hand: bool,
                    follow_ups: Sequence[InlineKeyboardButton] = (), again: bool = True,
                    original: bool = True) -> InlineKeyboardMarkup | None:
    """Under a result: 🔁 Again at `price` (what it costs now) and the `follow_ups` (⬆️ ➕,
    follow_up_button), then for a picture what it can become next and 📎 Original.
    `picture_in_hand`: the message carries the picture (not an album's line). An upscale's
    result has no 🔁 Again (the same upscale again) nor 📎 Original (it is the file already)."""
    rows = [[_button(texts.again_button(price), Again(generation=generation_id, price=price))]
            if again else [], list(follow_ups)]
    if kind == "image":
        rows.append([_button(texts.kind_button(next_kind, picture=True),
                             Follow(generation=generation_id, act=next_kind))
                     for next_kind in ("image", "video") if picture_in_hand])
        if original:
            rows[-1].append(_button("📎 " + _("Original"), Follow(generation=generation_id,
                                                                  act="original")))
    # [🔁 Again][⬆️ Upscale] side by side where they fit; ➕ per track on rows of their own.
    if len(rows[1]) == 1 and rows[0]:
        rows[0] += rows[1]
        rows[1] = []
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def short_keyboard(draft_id: int, cheaper: Model | None,
                   buy: InlineKeyboardButton) -> InlineKeyboardMarkup:
    """Beside a ✅ the balance could not pay: ⭐ Buy credits, and a model the balance pays
    (pressed, this message becomes the picker on it)."""
    rows = [[buy]]
    if cheaper is not None:
        rows.insert(0, [_button(texts.model_button(cheaper),
                                Pick(draft=draft_id, act="m", val=cheaper.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


class CancelGeneration(CallbackData, prefix="cg"):
    """✖ under a status line whose create still waits in the bot's own line."""

    generation: RowId


def cancel_keyboard(generation_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        _button("✖ " + _("Cancel"), CancelGeneration(generation=generation_id))]])


def failure_keyboard(generation_id: int, price: int, *,
                     change_model: bool = True) -> InlineKeyboardMarkup:
    """Under a refunded failure: the same request again, or the model list for it (not for a
    follow-up: its model is the catalog's for that result)."""
    row = [_button(texts.try_again_button(price), Again(generation=generation_id, price=price))]
    if change_model:
        row.append(_button("🔀 " + _("Change model"), Follow(generation=generation_id,
                                                           act="models")))
    return InlineKeyboardMarkup(inline_keyboard=[row])


def history_keyboard(owner: int, page: int, pages: int,
                     resendable: Sequence[tuple[int, int]]) -> InlineKeyboardMarkup | None:
    """📤 for each result on the page that can be sent again (`resendable`: its number in the
    list, its generation id), then ◀ ▶ where there is a page to go to."""
    builder = InlineKeyboardBuilder()
    for number, generation_id in resendable:
        builder.row(_button("📤 " + _("Send #{n} again").format(n=number),
                            Resend(generation=generation_id)))
    turns = []
    if page > 0:
        turns.append(_button("◀", HistoryPage(owner=owner, page=page - 1)))
    if page < pages - 1:
        turns.append(_button("▶", HistoryPage(owner=owner, page=page + 1)))
    if turns:
        builder.row(*turns)
    return builder.as_markup() if resendable or turns else None


def language_keyboard(owner: int, current: str,
                      languages: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button per (code, own name), the current one ticked."""
    builder = InlineKeyboardBuilder()
    for code, name in languages:
        builder.button(text=f"✓ {name}" if code == current else name,
                       callback_data=Language(owner=owner, code=code))
    builder.adjust(2)
    return builder.as_markup()


class BroadcastPress(CallbackData, prefix="bc"):
    """Under a broadcast's preview: ✅ send (`act` go) the message `message` of this chat to
    `audience`, or ✖ (x). The preview's own message is the broadcast's key (a second ✅ finds it)."""

    act: Literal["go", "x"]
    audience: Audience
    message: RowId


def broadcast_keyboard(audience: Audience, message_id: int, count: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        _button("✅ " + _("Send to {n}").format(n=count),
                BroadcastPress(act="go", audience=audience, message=message_id)),
        _button("✖ " + _("Cancel"), BroadcastPress(act="x", audience=audience, message=message_id))]])


class Improve(CallbackData, prefix="im"):
    """✨ Improve on a picker (`act` go: `attempt` is the draft revision the keyboard was drawn
    at), and Use it / Keep mine under its answer (`attempt`: that improvement's)."""

    draft: RowId
    attempt: Annotated[int, Field(ge=0, lt=2**31)]
    act: Literal["go", "use", "keep"]


def improve_button(draft_id: int, revision: int, price: int) -> InlineKeyboardButton:
    """A picker's `✨ Improve · N` (free: without a price), above its last row."""
    label = "✨ " + (_("Improve · {credits}").format(credits=texts.credits(price)) if price
                    else _("Improve"))
    return _button(label, Improve(draft=draft_id, attempt=revision, act="go"))


def improved_keyboard(draft_id: int, attempt: int) -> InlineKeyboardMarkup:
    """Under an improved prompt: take it, or keep the person's own (neither spends)."""
    return InlineKeyboardMarkup(inline_keyboard=[[
        _button(_("Use it"), Improve(draft=draft_id, attempt=attempt, act="use")),
        _button(_("Keep mine"), Improve(draft=draft_id, attempt=attempt, act="keep"))]])
