"""`/stats [days]`'s figures per day: monospace tables a phone shows whole, within one message."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.i18n import N_, day_label
from bot.services.accounts import UsageError, ascii_number
from bot.store.daily import DayStats, total

DEFAULT_DAYS = 7
MAX_DAYS = 90
MESSAGE_LIMIT = 4096  # Telegram's, for a message's text after entities are parsed
STATS_USAGE = N_("Usage: <code>/stats [days]</code>: the figures per day for the last 1 to 90 "
                 "days (7 if not said).\nExample: <code>/stats 30</code>")


def parse_days(args: str | None) -> int:
    tokens = (args or "").split()
    if not tokens:
        return DEFAULT_DAYS
    days = ascii_number(tokens[0]) if len(tokens) == 1 else None
    if days is None or not 1 <= days <= MAX_DAYS:
        raise UsageError(N_("Say how many days: a whole number from 1 to {max}."),
                         usage=STATS_USAGE, max=MAX_DAYS)
    return days


def fit(head: str, days: Sequence[DayStats], *, state_name: Callable[[str], str],
        model_name: Callable[[str], str], kie_credit_usd: float, star_usd: float) -> str:
    """`head` and the per-day section, with as many of the latest days in its tables as keep
    the message within Telegram's limit (the period's totals always cover every day)."""
    shown = len(days)
    while True:
        section = _section(days, shown, state_name=state_name, model_name=model_name,
                           kie_credit_usd=kie_credit_usd, star_usd=star_usd)
        text = f"{head}\n\n{section}"
        if len(text) <= MESSAGE_LIMIT or shown == 1:
            return text
        shown -= 1


def _section(days: Sequence[DayStats], shown: int, *, state_name: Callable[[str], str],
             model_name: Callable[[str], str], kie_credit_usd: float, star_usd: float) -> str:
    period = total(days)
    rows = days[-shown:]
    people = _table(
        [_("day"), _("new"), _("act."), _("pay."), _("Stars"), "$"],
        [[_day(d), str(d.new_people), str(d.active_people), str(d.paying_people),
          str(d.stars), f"{d.margin_usd:.2f}"] for d in rows],
        [_("total"), str(period.new_people), "", "", str(period.stars),
         f"{period.margin_usd:.2f}"])
    credits = _table(
        [_("day"), _("bought"), _("granted"), _("charged"), _("refunded")],
        [[_day(d), str(d.bought), str(d.granted), str(d.charged), str(d.refunded)]
         for d in rows],
        [_("total"), str(period.bought), str(period.granted), str(period.charged),
         str(period.refunded)])
    kie = _table(
        [_("day"), _("gen."), "Kie", _("drop")],
        [[_day(d), str(d.generations), _number(d.kie_credits), _number(d.kie_drop)]
         for d in rows],
        [_("total"), str(period.generations), _number(period.kie_credits),
         _number(period.kie_drop)])
    lines = [
        "<b>" + _("Per day, last {days} days (UTC)").format(days=len(days)) + "</b>",
        _("People: new, act. (active: started the bot, a generation, a purchase or a promo "
          "code), pay. (paying). Stars net of refunds; $: the margin in US dollars, Stars × "
          "{star_usd:g} − Kie.ai credits × {kie_credit_usd:g}.").format(star_usd=star_usd,
                                                   kie_credit_usd=kie_credit_usd),
        people,
        _("Credits: bought (net of Stars refunds), granted (starting, admins, promo codes, "
          "invites), charged, refunded."),
        credits,
        _("Generations started, the Kie.ai credits they cost by the catalog, and the Kie.ai "
          "balance's drop as the bot read it (-: not read)."),
        kie,
    ]
    if shown < len(days):
        lines.append(_("The tables show the last {shown} days; the totals and the lines below "
                       "cover all {days}.").format(shown=shown, days=len(days)))
    lines += [
        _("Generations: {counts}").format(counts=_counts(
            period.by_kind, lambda kind: texts.KIND_ICONS.get(kind, kind))),
        _("By state: {counts}").format(counts=_counts(period.by_state, state_name)),
        _("Failed, by model: {counts}").format(counts=_counts(period.failures_by_model,
                                                             model_name)),
    ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], footer: list[str]) -> str:
    """A monospace table: the first column left-aligned, numbers right-aligned."""
    everything = [header, *rows, footer]
    widths = [max(len(row[column]) for row in everything) for column in range(len(header))]
    lines = [" ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                      for column, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in everything]
    return "<pre>" + html.escape("\n".join(line.rstrip() for line in lines)) + "</pre>"


def _day(day: DayStats) -> str:
    return day_label(day.day, get_i18n().current_locale)


def _number(value: float | None) -> str:
    """Kie credits: whole where they are, one decimal where not; None: "-"."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


def _counts(counts: dict[str, int], name: Callable[[str], str]) -> str:
    """"🖼 3; 🎵 1", the largest first ("-" when there are none)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{html.escape(name(key))} {count}" for key, count in ordered) or "-"
