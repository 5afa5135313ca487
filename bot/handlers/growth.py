"""Invites and promo codes: /invite, /promo (everyone's, and the admins' add, off and list),
what a /start link brings, and the inviter's notice of a share earned. The rules live in
services/growth.py and the store."""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import GrowthSettings
from bot.errors import Refusal
from bot.i18n import N_, locale_of
from bot.services import growth
from bot.services.accounts import UsageError
from bot.services.private import send_privately
from bot.services.telegram import with_retry
from bot.store import InviteOutcome, PromoCode, Store, User

PROMO_ROWS = 30  # /promo list: the newest codes, within one message

INVITE_NOTES = {
    InviteOutcome.UNKNOWN: N_("I don't know this invite link, but you are welcome all the same."),
    InviteOutcome.OWN: N_("This is your own invite link: send it to others."),
    InviteOutcome.NOT_NEW: N_("Invite links are for people who start the bot for the first "
                              "time; you had started it before."),
}
PROMO_STATES = {"active": N_("active"), "off": N_("withdrawn"), "expired": N_("expired"),
                "used_up": N_("used up")}


async def invite(message: Message, account: User, store: Store, bot: Bot,
                 growth_settings: GrowthSettings) -> None:
    """The person's link and what it brought: privately (the credits earned are money)."""
    link = await growth.invite_link(bot, store, account.id)
    counts = await store.invites(account.id)
    lines = ["🤝 <b>" + _("Your invite link") + "</b>", link, "",
             _("Joined through it: {joined}; of them bought credits: {bought}.").format(
                 joined=counts.joined, bought=counts.bought),
             _("You earned: {credits}.").format(credits=texts.credits(counts.earned))]
    if growth_settings.referral_percent:
        lines.append(_("You get {percent}% of the credits that each person you invited "
                       "buys.").format(percent=growth_settings.referral_percent))
    if growth_settings.join_bonus:
        lines.append(_("Whoever starts the bot through your link gets {credits}.").format(
            credits=texts.credits(growth_settings.join_bonus)))
    await send_privately(bot, account, message, "\n".join(lines))


async def promo(message: Message, *, command: CommandObject, account: User, is_admin: bool,
                store: Store, bot: Bot) -> None:
    """`/promo <code>` redeems; `/promo add|off|list ...` are the admins'."""
    tokens = (command.args or "").split()
    if not tokens:
        raise UsageError(N_("Say which promo code."), usage=growth.usage(is_admin))
    action = tokens[0].lower()
    if action in growth.ADMIN_ACTIONS:
        if not is_admin:
            raise Refusal(N_("This command is for admins only."))
        await ADMIN_FORMS[action](message, tokens[1:], account, store, bot)
        return
    if len(tokens) > 1:
        raise UsageError(N_("Send one promo code."), usage=growth.usage(is_admin))
    code = growth.promo_code(tokens[0], is_admin=is_admin)
    await send_privately(bot, account, message, await redeemed(store, account, code))


async def redeemed(store: Store, account: User, code: str) -> str:
    """Redeem `code` for `account`: what to tell them (raises Refusal)."""
    promo_code, row = await growth.redeem(store, account.id, code)
    return "🎁 " + _("Promo code {code}: {credits} added. Your balance: {balance}.").format(
        code=html.escape(promo_code.code), credits=texts.credits(row.amount),
        balance=texts.credits(row.balance_after))


async def start_link(account: User, store: Store, payload: str, *, update_id: int,
                     growth_settings: GrowthSettings) -> tuple[str | None, User]:
    """What a `/start <payload>` link brought, said in one line (None: nothing to say), and
    the person as they are now."""
    link = growth.parse_start(payload)
    if link is None:
        return None, account
    if link.kind == "promo":
        try:
            note = await redeemed(store, account, link.code.upper())
        except Refusal as refusal:
            note = refusal.text(_)
    else:
        outcome = await store.join_through_invite(account.id, link.code, update_id=update_id,
                                                  bonus=growth_settings.join_bonus)
        if outcome != InviteOutcome.JOINED:
            note = _(INVITE_NOTES[outcome])
        elif growth_settings.join_bonus:
            note = "🎁 " + _("You came through an invite: {credits} added to your balance.").format(
                credits=texts.credits(growth_settings.join_bonus))
        else:
            note = None
    return note, await store.get_user(account.id) or account


async def tell_inviter(bot: Bot, store: Store, i18n: I18n, charge_id: str) -> None:
    """The inviter's share of this purchase, told to them in their language. A courtesy: the
    credits are theirs whether or not the message arrives."""
    row = await store.referral_of(charge_id)
    inviter = await store.get_user(row.user_id) if row is not None else None
    if row is None or inviter is None:
        return
    with i18n.use_locale(locale_of(inviter, i18n)):
        text = "🎁 " + _("Someone you invited bought credits: {credits} added to your balance. "
                         "Balance: {balance}.").format(credits=texts.credits(row.amount),
                                                       balance=texts.credits(row.balance_after))
    with suppress(TelegramAPIError):  # never opened a private chat, or blocked the bot
        await with_retry(lambda: bot.send_message(inviter.id, text))


# -- the admins' forms ------------------------------------------------------------------------

async def promo_add(message: Message, tokens: list[str], account: User, store: Store,
                    bot: Bot) -> None:
    new = growth.parse_new_promo(tokens)
    added = await store.add_promo(new.code, credits=new.credits, uses=new.uses,
                                  expires_at=new.expires_at(time.time()), admin_id=account.id)
    if added is None:
        raise UsageError(N_("The promo code {code} exists already (turned off or not): choose "
                            "another name."), usage=growth.PROMO_ADMIN_USAGE, code=new.code)
    await message.answer("\n".join([
        _("Promo code {code} added: {credits} per person, {uses}, {until}.").format(
            code=_code(added), credits=texts.credits(added.credits),
            uses=_uses(added), until=_until(added)),
        _("Its link: {link}").format(link=await growth.promo_link(bot, added.code))]))


async def promo_off(message: Message, tokens: list[str], account: User, store: Store,
                    bot: Bot) -> None:
    if len(tokens) != 1:
        raise UsageError(N_("Name one promo code."), usage=growth.PROMO_ADMIN_USAGE)
    code = growth.promo_code(tokens[0], is_admin=True)
    before = await store.turn_off_promo(code)
    if before is None:
        raise UsageError(N_("There is no promo code {code}."), usage=growth.PROMO_ADMIN_USAGE,
                         code=code)
    await message.answer(ngettext(
        "Promo code {code} is withdrawn; it was redeemed {n} time.",
        "Promo code {code} is withdrawn; it was redeemed {n} times.", before.used).format(
        code=_code(before), n=before.used))


async def promo_list(message: Message, tokens: list[str], account: User, store: Store,
                     bot: Bot) -> None:
    if tokens:
        raise UsageError(N_("/promo list takes nothing more."), usage=growth.PROMO_ADMIN_USAGE)
    codes = await store.promo_codes(PROMO_ROWS)
    lines = ["<b>" + _("Promo codes") + "</b> " + _("(newest first, times in UTC)")]
    lines += [f"{_code(p)} · {texts.credits(p.credits)} · "
              + _("redeemed {used} of {uses}").format(used=p.used, uses=p.uses or "∞")
              + f" · {_until(p)} · {_(PROMO_STATES[growth.state(p)])}" for p in codes] or [
        _("None yet. Add one: <code>/promo add SPRING 50 100 7</code>")]
    await message.answer("\n".join(lines))


def _code(promo: PromoCode) -> str:
    return f"<code>{html.escape(promo.code)}</code>"


def _uses(promo: PromoCode) -> str:
    if promo.uses is None:
        return _("any number of people")
    return ngettext("{n} person in all", "{n} people in all", promo.uses).format(n=promo.uses)


def _until(promo: PromoCode) -> str:
    if promo.expires_at is None:
        return _("no end date")
    return _("until {when}").format(when=texts.when(promo.expires_at))


AdminForm = Callable[[Message, list[str], User, Store, Bot], Awaitable[None]]
ADMIN_FORMS: dict[str, AdminForm] = {"add": promo_add, "off": promo_off, "list": promo_list}


def make_router() -> Router:
    router = Router(name="growth")
    router.message.register(invite, Command("invite"))
    router.message.register(promo, Command("promo"))
    return router
