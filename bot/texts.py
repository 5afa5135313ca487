"""Texts shared by handlers and services. Each reads the current locale (I18n context)."""

from __future__ import annotations

import html
import re
from typing import Any

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.catalog import KINDS, Model, Offer, Option
from bot.i18n import N_

# Failure reasons stored on a generation, and what the user is told about each.
FAILURES = {
    "kie_failed": N_("Kie.ai could not generate it"),
    "rejected": N_("the request was rejected"),
    "unavailable": N_("the generator is temporarily unavailable"),
    "timeout": N_("it took too long"),
    "interrupted": N_("the bot restarted before the task was sent"),
    "lost": N_("the task was lost"),
    "undelivered": N_("Telegram did not take the result in time"),
    "picture_unreadable": N_("the photo could not be read as a JPEG, PNG or WebP picture"),
    "picture_too_large": N_("the photo is too large (at most 10 MB)"),
    "picture_unavailable": N_("the photo could not be fetched from Telegram"),
}

PROMPT_PREVIEW = 200

# A person sending faster than the bot serves, or Telegram's flood control in their chat.
SLOW_DOWN = N_("Too many requests at once. Wait a few seconds and try again.")


def credits(amount: int) -> str:
    return ngettext("{n} credit", "{n} credits", abs(amount)).format(n=amount)


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


def model_button(model: Model) -> str:
    return f"{model.name} · {_from(model, str(model.lowest_price))}"


def model_price(model: Model) -> str:
    return _from(model, credits(model.lowest_price))


def option_title(option: Option) -> str:
    return _(option.title)


def generate_button(price: int) -> str:
    return "✅ " + _("Generate · {credits}").format(credits=credits(price))


def not_enough(price: int, balance: int) -> str:
    return _("Not enough credits: this costs {price}, your balance is {balance}. "
             "Ask an admin to top you up.").format(price=credits(price), balance=credits(balance))


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
    "waiting": N_("waiting"),
    "queuing": N_("in queue"),
    "generating": N_("generating"),
}


UNKNOWN_STATE = N_("working")


def status_line(model_name: str, kie_state: str | None, seconds: float) -> str:
    state = _(KIE_STATES.get(kie_state, UNKNOWN_STATE))
    return f"⏳ {html.escape(model_name)} — {state}… {elapsed(seconds)}"


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
}


def price_list(offer: Offer) -> str:
    """Every model offered now, by kind, at its current price."""
    lines = []
    for kind in KINDS:
        lines.append(f"<b>{_(KIND_TITLES[kind])}</b>")
        for picture in (False, True):
            mark = " 📎" if picture else ""
            lines.extend(f"• {html.escape(m.name)}{mark} — {model_price(m)}"
                         for m in offer.models_of(kind, picture=picture))
    lines.append("")
    lines.append("📎 " + _("From a photo: send the command as the photo's caption, "
                          "or as a reply to it."))
    return "\n".join(lines)


def ledger_kind(kind: str) -> str:
    return _(LEDGER_KINDS[kind]) if kind in LEDGER_KINDS else kind


KIND_ICONS = {"image": "🖼", "video": "🎬", "audio": "🎵"}


def generate_usage(command: str) -> str:
    return _("Add a description after the command, for example:\n"
             "<code>{command} a red fox in snow</code>").format(command=command)


def _request(prompt: str, picture: bool) -> str:
    line = f"<i>{quote(prompt)}</i>"
    return line + "\n📎 " + _("From your photo") if picture else line


def picker_models(kind: str, prompt: str, *, picture: bool = False) -> str:
    return f"{KIND_ICONS[kind]} {_request(prompt, picture)}\n\n" + _("Choose a model:")


def picker_options(model: Model, prompt: str, values: dict[str, Any], price: int, *,
                   picture: bool = False) -> str:
    """`values`: the options resolved (Model.resolve); `price`: theirs."""
    lines = [f"{KIND_ICONS[model.kind]} <b>{html.escape(model.name)}</b>",
             _request(prompt, picture), ""]
    for option in model.options:
        label = _(option.choice(values[option.key]).label)
        lines.append(f"{option_title(option)}: {html.escape(label)}")
    lines.append(_("Price: {credits}").format(credits=credits(price)))
    return "\n".join(lines)


def too_large_line() -> str:
    """Above the links to a result too large for Telegram to take from the bot."""
    return "⬇️ " + _("Too large to send through Telegram; download it here:")
