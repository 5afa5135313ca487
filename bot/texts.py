"""Texts shared by handlers and services. Each reads the current locale (I18n context)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from aiogram.utils.i18n import get_i18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_datetime

from bot.catalog import KINDS, Model, Offer, Option
from bot.i18n import N_, babel_locale
from bot.kie import constants as kie_constants

# Failure reasons stored on a generation, and what the user is told about each.
FAILURES = {
    "kie_failed": N_("Kie.ai could not generate it"),
    "rejected": N_("the request was rejected"),
    "unavailable": N_("the generator is temporarily unavailable"),
    "timeout": N_("it took too long"),
    "interrupted": N_("the bot restarted before the task was sent"),
    "unanswered": N_("Kie.ai did not answer in time"),
    "lost": N_("the task was lost"),
    "undelivered": N_("Telegram did not take the result in time"),
    "picture_unreadable": N_("the photo could not be read as a JPEG, PNG or WebP picture"),
    "picture_too_large": N_("the photo is too large (at most 10 MB)"),
    "picture_unavailable": N_("the photo could not be fetched from Telegram"),
    "cancelled": N_("you cancelled it"),
    "kie_timeout": N_("the model gave Kie.ai no result for over 10 minutes"),
    "queue_full": N_("the model's queue at Kie.ai is full; try again later"),
}

PROMPT_PREVIEW = 200

# A person sending faster than the bot serves, or Telegram's flood control in their chat.
SLOW_DOWN = N_("Too many requests at once. Wait a few seconds and try again.")
# A press on someone else's menu, or on one the bot no longer knows.
NOT_YOURS = N_("This menu belongs to someone else. Send your own command.")
OUTDATED = N_("This menu is out of date.")


def credits(amount: int) -> str:
    return ngettext("{n} credit", "{n} credits", abs(amount)).format(n=amount)


def when(timestamp: float) -> str:
    """A moment for people, in their language and in UTC: "7 Dec, 14:05" ("7 дек., 14:05"),
    with the year when it is not this one. Where several are listed, say once that they are UTC."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    pattern = "d MMM, HH:mm" if moment.year == datetime.now(UTC).year else "d MMM y, HH:mm"
    return format_datetime(moment, pattern, tzinfo=UTC, locale=babel_locale(get_i18n().current_locale))


def credits_short(amount: int) -> str:
    """A price on a small button (an option in a row of five): "40 cr."."""
    return _("{n} cr.").format(n=amount)


def elapsed(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def quote(text: str, limit: int = PROMPT_PREVIEW) -> str:
    """User text made safe for HTML, cut to `limit` characters."""
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=False)


def _from(model: Model, price: str) -> str:
    """The model's price as shown: "from N" when its options change it."""
    return _("from {price}").format(price=price) if model.varies_in_price else price


def model_title(model: Model) -> str:
    """The model's name as shown (a name made of words, "ElevenLabs speech", is translated)."""
    return _(model.name)


def model_button(model: Model) -> str:
    """`Imagen 4 · 40 credits`: what is read after the `·` is the price."""
    return f"{model_title(model)} · {model_price(model)}"


def model_price(model: Model) -> str:
    return _from(model, credits(model.lowest_price))


def option_title(option: Option) -> str:
    return _(option.title)


def generate_button(price: int) -> str:
    return "✅ " + _("Generate · {credits}").format(credits=credits(price))


def not_enough(price: int, balance: int) -> str:
    return _("Not enough credits: this costs {price}, your balance is {balance}.").format(
        price=credits(price), balance=credits(balance))


# Words in Kie's failure text that mean the content itself was refused.
CONTENT_REFUSED = re.compile(r"nsfw|sensitive|polic|safety|moderat|prohibit|inappropriate|violat",
                             re.IGNORECASE)


def failure(reason: str, detail: str | None) -> str:
    """Our own words for why: Kie's text stays in the log (it may quote anything, even the
    request's headers), and only tells which of our reasons fits."""
    if reason in ("kie_failed", "rejected") and detail and CONTENT_REFUSED.search(detail):
        return _("the content of the request was refused")
    return _(FAILURES.get(reason, FAILURES["kie_failed"]))


def refunded(model_name: str, reason: str, detail: str | None, price: int) -> str:
    return "❌ " + _("{model}: {reason}. {credits} returned to your balance.").format(
        model=html.escape(model_name), reason=failure(reason, detail), credits=credits(price))


# Kie's state names; unknown ones are shown as "working".
KIE_STATES = {
    None: N_("queued"),
    "sending": N_("starting"),  # ours: the create is on its way to Kie
    "waiting": N_("waiting"),
    "wait": N_("waiting"),  # Runway's spellings
    "queuing": N_("in queue"),
    "queueing": N_("in queue"),
    "generating": N_("generating"),
    kie_constants.FLAG_RUNNING: N_("generating"),  # Veo, Flux Kontext, 4o Image (flag 0)
    kie_constants.VEO_1080P_PENDING_STATE: N_("making the 1080p version"),
}


UNKNOWN_STATE = N_("working")


# Past this share of the usual duration, the status line says it is taking longer.
LATE_FACTOR = 1.5


def status_line(model_name: str, kie_state: str | None, seconds: float, *,
                usual: float | None = None, position: int | None = None) -> str:
    """`usual`: the model's usual duration (learned); `position`: the place in the bot's own
    line while the create waits for Kie's budget."""
    state = _(KIE_STATES.get(kie_state, UNKNOWN_STATE))
    line = f"⏳ {html.escape(model_name)} — {state}… {elapsed(seconds)}"
    if position is not None:
        line += " · " + _("in line: {n}").format(n=position)
    if usual is not None:
        line += " · " + (_("taking longer than usual") if seconds > LATE_FACTOR * usual
                         else _("usually ~{time}").format(time=duration(usual)))
    return line


def duration(seconds: float) -> str:
    """A rough duration: "40 s", "2 min"."""
    if seconds < 90:
        return _("{n} s").format(n=max(round(seconds), 1))
    return _("{n} min").format(n=round(seconds / 60))


def done_line(model_name: str, seconds: float) -> str:
    return "✅ " + _("{model} — done in {time}").format(
        model=html.escape(model_name), time=elapsed(seconds))


def result_caption(model_name: str, prompt: str) -> str:
    return f"<b>{html.escape(model_name)}</b>\n<i>{quote(prompt)}</i>"


def balance_line(balance: int) -> str:
    return _("Balance: {credits}").format(credits=credits(balance))


KIND_TITLES = {"image": N_("Images"), "video": N_("Videos"), "audio": N_("Music and speech")}
LEDGER_KINDS = {
    "grant": N_("welcome credits"),
    "topup": N_("top-up"),
    "charge": N_("generation"),
    "refund": N_("refund"),
    "purchase": N_("bought with Stars"),
    "purchase_refund": N_("Stars refunded"),
    "purchase_refund_undone": N_("Stars refund refused, credits back"),
    "invite_bonus": N_("bonus for joining by invite"),
    "referral": N_("invite reward"),
    "referral_refund": N_("invite reward taken back (refund)"),
    "referral_refund_undone": N_("refund refused, invite reward back"),
    "promo": N_("promo code"),
    "improve": N_("✨ prompt improved"),
    "improve_refund": N_("✨ prompt improvement refunded"),
}


def price_list(offer: Offer) -> str:
    """Every menu entry offered now, by kind: one line with its current price and what it is
    good for; 📎 where it takes a photo (its picture variant is the same entry)."""
    lines = []
    for kind in KINDS:
        lines.append(f"<b>{_(KIND_TITLES[kind])}</b>")
        entries: dict[str, list[Model]] = {}
        for model in offer.models_of(kind) + offer.models_of(kind, picture=True):
            entries.setdefault(model.entry, []).append(model)
        for first, *variants in entries.values():
            mark = " 📎" if any(m.image is not None for m in (first, *variants)) else ""
            lines.append(f"• {html.escape(model_title(first))}{mark} — "
                         f"{model_price(first)} · "
                         f"{first.good_for.in_language(get_i18n().current_locale)}")
        for follow_up in offer.follow_ups(kind):  # run on a result: its button's emoji
            lines.append(f"• {FOLLOW_UP_WORDS[follow_up.role or ''][0]} "
                         f"{html.escape(model_title(follow_up))} — {model_price(follow_up)} · "
                         f"{follow_up.good_for.in_language(get_i18n().current_locale)}")
    lines.append("")
    lines.append("📎 " + _("From a photo: send the command as the photo's caption, "
                          "or as a reply to it."))
    return "\n".join(lines)


def ledger_kind(kind: str) -> str:
    return _(LEDGER_KINDS[kind]) if kind in LEDGER_KINDS else kind


KIND_ICONS = {"image": "🖼", "video": "🎬", "audio": "🎵"}


def _request(prompt: str, picture: bool) -> str:
    line = f"<i>{quote(prompt)}</i>"
    return line + "\n📎 " + _("From your photo") if picture else line


def picker_models(kind: str, prompt: str, *, picture: bool = False) -> str:
    return f"{KIND_ICONS[kind]} {_request(prompt, picture)}\n\n" + _("Choose a model:")


def picker_options(model: Model, prompt: str, values: dict[str, Any], price: int, *,
                   picture: bool = False) -> str:
    """`values`: the options resolved (Model.resolve); `price`: theirs."""
    lines = [f"{KIND_ICONS[model.kind]} <b>{html.escape(model_title(model))}</b>",
             _request(prompt, picture), ""]
    for option in model.options:
        label = _(option.choice(values[option.key]).label)
        lines.append(f"{option_title(option)}: {html.escape(label)}")
    lines.append(_("Price: {credits}").format(credits=credits(price)))
    return "\n".join(lines)


def too_large_line() -> str:
    """Above the links to a result too large for Telegram to take from the bot."""
    return "⬇️ " + _("Too large to send through Telegram; download it here:")


# -- the conversation: prompt first, questions, out of credits, after the result -------------

KIND_WORDS = {"image": N_("Picture"), "video": N_("Video"), "audio": N_("Music")}
# What a photo can become: its kind's button under a photo says what is done to it.
PICTURE_WORDS = {"image": ("✏️", N_("Edit")), "video": ("🎬", N_("Animate"))}


def kind_button(kind: str, *, picture: bool = False) -> str:
    if picture and kind in PICTURE_WORDS:
        icon, word = PICTURE_WORDS[kind]
        return f"{icon} {_(word)}"
    return f"{KIND_ICONS[kind]} {_(KIND_WORDS[kind])}"


def compose_question(prompt: str | None, *, picture: bool) -> str:
    """Above the kinds offered for a text or photo sent without a command."""
    if prompt is None:
        return _("What should I do with this picture?")
    return f"«{quote(prompt)}»\n\n" + (_("What should I make of this picture and these words?")
                                       if picture else _("What should I make of it?"))


ASK_PROMPT = {
    "image": N_("What should the picture show? Reply with a description."),
    "video": N_("What should happen in the video? Reply with a description."),
    "audio": N_("What should the song be about? Reply with a description (style, mood, words)."),
}
ASK_INSTRUCTION = {
    "image": N_("What should change in the picture? Reply with the instruction."),
    "video": N_("How should the picture move? Reply with a description."),
}


def ask_for_prompt(kind: str, *, picture: bool, mention: tuple[int, str] | None) -> str:
    """The ForceReply question; `mention` (id, name) names the person in a group."""
    text = _(ASK_INSTRUCTION[kind] if picture and kind in ASK_INSTRUCTION else ASK_PROMPT[kind])
    if mention is None:
        return text
    user_id, name = mention
    return f'<a href="tg://user?id={user_id}">{html.escape(name)}</a>, {text}'


def prompt_placeholder(kind: str) -> str:
    return {"image": _("a red fox in the snow"), "video": _("waves rolling onto a beach at dusk"),
            "audio": _("a cheerful folk song about autumn")}[kind]


def too_long_line(models: list[Model], length: int) -> str:
    """Under a picker: the models left out because the prompt is longer than they take."""
    names = ", ".join(f"{html.escape(model_title(m))} (≤ {m.max_prompt})" for m in models)
    return "✂️ " + ngettext("Not offered for a prompt of {n} character: {models}.",
                            "Not offered for a prompt of {n} characters: {models}.",
                            length).format(n=length, models=names)


def short_of_credits(price: int, balance: int, cheaper: Model | None) -> str:
    """The message beside a ✅ the balance could not pay."""
    text = "💳 " + _("This costs {price}; your balance is {balance}.").format(
        price=credits(price), balance=credits(balance))
    if cheaper is not None:
        text += "\n" + _("{model} fits your balance: {price}.").format(
            model=html.escape(model_title(cheaper)), price=credits(cheaper.price_for({})))
    return text + "\n" + _("Buy credits with Telegram Stars, and I will offer this request again.")


def offer_again(balance: int) -> str:
    """After a purchase, above the ✅ of the request the balance could not pay."""
    return "✅ " + _("Your balance is now {balance}. Your request is still here:").format(
        balance=credits(balance))


def again_button(price: int) -> str:
    return "🔁 " + _("Again · {credits}").format(credits=credits(price))


# A follow-up's button (keyboards.follow_up_button), by role: its emoji and word.
FOLLOW_UP_WORDS = {"upscale": ("⬆️", N_("Upscale")), "extend": ("➕", N_("Extend"))}


def follow_up_button(role: str, price: int, number: int | None) -> str:
    """`⬆️ Upscale · 15 credits`; `➕ Extend 2 · 60 credits` for the second of several files."""
    icon, word = FOLLOW_UP_WORDS[role]
    name = _(word) if number is None else f"{_(word)} {number}"
    return f"{icon} {name} · {credits(price)}"


def try_again_button(price: int) -> str:
    return "🔁 " + _("Try again · {credits}").format(credits=credits(price))
