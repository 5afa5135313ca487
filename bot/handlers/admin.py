"""Admin commands (ADMIN_IDS): /topup, /user, /ban, /unban, /stats, /kie, /price, /model."""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, TelegramObject
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.catalog import MODELS, get_model, models_of_entry
from bot.config import BotSettings
from bot.errors import Refusal
from bot.handlers.history import STATES
from bot.handlers.stats import fit, parse_days
from bot.i18n import N_
from bot.kie import KieClient
from bot.kie.errors import KieError
from bot.services.accounts import (
    MAX_TOPUP,
    UsageError,
    ascii_number,
    find_target,
    parse_topup,
    tell_topped_up,
)
from bot.services.offers import current_offer, set_price, set_shown
from bot.services.stats import daily
from bot.store import GenerationState, Store, User

DAY = 24 * 3600.0
USER_ROWS = 10
FAILED = N_("failed, refunded")  # a failed generation's state (every failure is refunded)

USER_USAGE = N_("Usage: <code>/user &lt;user&gt;</code> (a Telegram id or @username), or reply "
                "to their message with <code>/user</code>.\nExample: <code>/user 123456789</code>")
BAN_USAGE = N_("Usage: <code>/ban &lt;user&gt;</code> or <code>/unban &lt;user&gt;</code> (a "
               "Telegram id or @username), or reply to their message.\n"
               "Example: <code>/ban @someone</code>")
PRICE_USAGE = N_("Usage: <code>/price &lt;model&gt; &lt;credits&gt;</code>, or "
                 "<code>/price &lt;model&gt; reset</code>.\nExample: <code>/price imagen4 50</code>")
MODEL_USAGE = N_("Usage: <code>/model &lt;model&gt; off</code> or <code>/model &lt;model&gt; on"
                 "</code>.\nExample: <code>/model sora2 off</code>")


class AdminsOnly(BaseMiddleware):
    """Every command of this router is for ADMIN_IDS; anyone else gets one short refusal."""

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        if not data.get("is_admin"):
            raise Refusal(N_("This command is for admins only."))
        return await handler(event, data)


async def topup(message: Message, *, command: CommandObject, account: User,
                store: Store, bot_settings: BotSettings, bot: Bot, i18n: I18n) -> None:
    target, amount = await parse_topup(store, bot_settings.starting_credits, command.args, _replied(message))
    row = await store.topup(target.id, amount, admin_id=account.id,
                            source=f"topup:{message.chat.id}:{message.message_id}")
    if row is None:  # Telegram sent this command again: it was applied and answered the first time
        return
    await message.answer(_("Added {credits} to {user}. Their balance: {balance}.").format(
        credits=texts.credits(amount), user=html.escape(target.display_name),
        balance=texts.credits(row.balance_after)))
    await tell_topped_up(bot, i18n, target, row)


async def user(message: Message, *, command: CommandObject, store: Store,
               bot_settings: BotSettings) -> None:
    target = await find_target(store, bot_settings.starting_credits, _one_arg(command, USER_USAGE),
                               _replied(message), usage=USER_USAGE)
    flags = [_("banned")] if target.banned else []
    if target.blocked:
        flags.append(_("blocked the bot"))
    lines = [f"<b>{html.escape(target.display_name)}</b> · <code>{target.id}</code>"
             + (f" · {', '.join(flags)}" if flags else ""),
             texts.balance_line(target.balance), "", "<b>" + _("Ledger") + "</b>"]
    lines += [f"{texts.when(row.created_at)} · {row.amount:+d} · {html.escape(texts.ledger_kind(row.kind))}"
              + (f" #{row.generation_id}" if row.generation_id else "")
              for row in await store.ledger(target.id, USER_ROWS)] or ["—"]
    purchases = await store.purchases_of(target.id, USER_ROWS)
    if purchases:  # the charge ids /refund takes
        lines += ["", "<b>" + _("Purchases") + "</b>"]
        lines += [f"{texts.when(p.created_at)} · <code>{html.escape(p.charge_id)}</code> · {p.stars} ⭐"
                  f" · {texts.credits(p.credits)}" + (" · " + _("refunded") if p.refunded_at else "")
                  for p in purchases]
    lines += ["", "<b>" + _("Generations") + "</b>"]
    lines += [f"#{g.id} {texts.when(g.created_at)} · {html.escape(_model_name(g.model))} · "
              f"{state_name(g.state)} · {texts.credits(g.price)}"
              for g in await store.generations_of(target.id, limit=USER_ROWS)] or ["—"]
    lines += ["", "<i>" + _("Times in UTC.") + "</i>"]
    await message.answer("\n".join(lines))


async def ban(message: Message, *, command: CommandObject, store: Store,
              bot_settings: BotSettings) -> None:
    await _set_banned(message, command, store, bot_settings, banned=True)


async def unban(message: Message, *, command: CommandObject, store: Store,
                bot_settings: BotSettings) -> None:
    await _set_banned(message, command, store, bot_settings, banned=False)


async def _set_banned(message: Message, command: CommandObject, store: Store,
                      bot_settings: BotSettings, *, banned: bool) -> None:
    target = await find_target(store, bot_settings.starting_credits, _one_arg(command, BAN_USAGE),
                               _replied(message), usage=BAN_USAGE)
    if banned and target.id in bot_settings.admin_ids:
        raise Refusal(N_("An admin cannot be banned."))
    changed = await store.set_banned(target.id, banned)
    name = html.escape(target.display_name)
    if banned:
        text = _("{user} is banned.") if changed else _("{user} was already banned.")
    else:
        text = _("{user} is no longer banned.") if changed else _("{user} was not banned.")
    await message.answer(text.format(user=name))


async def stats(message: Message, *, command: CommandObject, store: Store,
                kie: KieClient) -> None:
    """The all-time summary and the Kie.ai balance, then the last `days` days day by day."""
    days = parse_days(command.args)
    now = time.time()
    report = await store.stats(active_since=now - DAY)
    ledger = report.ledger
    lines = [
        "<b>" + _("Statistics") + "</b>",
        _("Users: {users}, active in 24 h: {active}").format(users=report.users,
                                                           active=report.active_day),
        "",
        "<b>" + _("Generations by state") + "</b>",
        *(f"{state_name(state)}: {count}" for state, count in sorted(report.by_state.items())),
        "",
        "<b>" + _("Generations by model") + "</b>",
        *(f"{html.escape(_model_name(model))}: {count}"
          for model, count in sorted(report.by_model.items(), key=lambda item: -item[1])),
        "",
        "<b>" + _("Credits") + "</b>",
        _("charged {charged}, refunded {refunded}, bought {bought}, granted {granted}, "
          "added by admins {topups}").format(
            charged=-ledger.get("charge", 0), refunded=ledger.get("refund", 0),
            bought=sum(ledger.get(kind, 0) for kind in (
                "purchase", "purchase_refund", "purchase_refund_undone")),
            granted=ledger.get("grant", 0), topups=ledger.get("topup", 0)),
        ngettext("Stars received: {stars} in {purchases} purchase (refunds deducted)",
                 "Stars received: {stars} in {purchases} purchases (refunds deducted)",
                 report.purchases).format(stars=report.stars, purchases=report.purchases),
        await _kie_credits_line(kie),
    ]
    await message.answer(fit("\n".join(lines), await daily(store, days=days, now=now),
                             state_name=state_name, model_name=_model_name,
                             kie_credit_usd=MODELS.money.kie_credit_usd,
                             star_usd=MODELS.money.star_usd))


async def kie_balance(message: Message, *, kie: KieClient) -> None:
    await message.answer(await _kie_credits_line(kie))


async def _kie_credits_line(kie: KieClient) -> str:
    try:
        remaining = await kie.get_credits()
    except KieError as error:
        return _("Kie.ai did not say its credits: {error}").format(
            error=html.escape(str(error)))
    return _("Kie.ai credits: {credits:g}").format(credits=remaining)


async def price(message: Message, *, command: CommandObject, store: Store) -> None:
    tokens = (command.args or "").split()
    if len(tokens) != 2:
        raise UsageError(N_("Say which model and what price."), usage=PRICE_USAGE)
    entry, value = tokens[0].lower(), tokens[1].lower()
    amount = None if value == "reset" else ascii_number(value)
    if value != "reset" and (amount is None or amount > MAX_TOPUP):
        raise UsageError(N_("The price must be a whole number of credits from 0 to {max}, or "
                            "reset."), usage=PRICE_USAGE, max=MAX_TOPUP)
    if not await set_price(store, entry, amount):
        raise _unknown_model(entry, PRICE_USAGE)
    offered = (await current_offer(store)).model(entry)
    shown = texts.model_price(offered) if offered else _("hidden")
    await message.answer(_("{model} now costs {price}.").format(
        model=html.escape(_model_name(entry)), price=shown))


async def model(message: Message, *, command: CommandObject, store: Store) -> None:
    tokens = (command.args or "").lower().split()
    if len(tokens) != 2 or tokens[1] not in ("on", "off"):
        raise UsageError(N_("Say which model, and on or off."), usage=MODEL_USAGE)
    entry, shown = tokens[0], tokens[1] == "on"
    if not await set_shown(store, entry, shown):
        raise _unknown_model(entry, MODEL_USAGE)
    text = _("{model} is offered again.") if shown else _("{model} is hidden.")
    await message.answer(text.format(model=html.escape(_model_name(entry))))


def _unknown_model(entry: str, usage: str) -> UsageError:
    return UsageError(N_("There is no model {model}. The models: {ids}."), usage=usage,
                      model=entry, ids=", ".join(sorted({m.entry for m in MODELS})))


def _model_name(model_id: str) -> str:
    found = get_model(model_id) or next(iter(models_of_entry(model_id)), None)
    return texts.model_title(found) if found else model_id


def _replied(message: Message) -> Any:
    return message.reply_to_message.from_user if message.reply_to_message else None


def _one_arg(command: CommandObject, usage: str) -> str | None:
    tokens = (command.args or "").split()
    if len(tokens) > 1:
        raise UsageError(N_("Name one user."), usage=usage)
    return tokens[0] if tokens else None


def state_name(state: str) -> str:
    """A generation's state in /history's words (a failure there comes with its reason)."""
    if state == GenerationState.FAILED:
        return _(FAILED)
    return _(STATES[GenerationState(state)]) if state in STATES else state


def make_router() -> Router:
    router = Router(name="admin")
    router.message.middleware(AdminsOnly())
    for handler, name in ((topup, "topup"), (user, "user"), (ban, "ban"), (unban, "unban"),
                          (stats, "stats"), (kie_balance, "kie"), (price, "price"),
                          (model, "model")):
        router.message.register(handler, Command(name))
    return router
