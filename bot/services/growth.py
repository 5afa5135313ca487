"""Invites and promo codes: the links, what a /start payload asks for, what an admin's new code
says, and a redemption's refusals in words. What must hold however many act at once (once per
person, a code's uses, the inviter's share with its purchase) the store decides."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from aiogram import Bot

from bot import texts
from bot.errors import Refusal
from bot.i18n import N_
from bot.services.accounts import MAX_TOPUP, UsageError, ascii_number
from bot.store import LedgerRow, PromoCode, PromoRefused, Store

DAY = 24 * 3600.0
# Deep links: t.me/<bot>?start=<payload>, which Telegram sends as `/start <payload>`.
INVITE_PREFIX = "ref_"
PROMO_PREFIX = "promo_"
# A promo code: what a deep link's payload may carry after its prefix (Telegram allows
# A-Z a-z 0-9 _ - there, 64 in all); compared without case.
PROMO_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
INVITE_CODE = re.compile(r"[A-Za-z0-9]{1,32}\Z")
ADMIN_ACTIONS = ("add", "off", "list")  # the admins' /promo forms: no code may be named so
MAX_USES = 1_000_000
MAX_DAYS = 3650

PROMO_USAGE = N_("Usage: <code>/promo &lt;code&gt;</code>\nExample: <code>/promo SPRING</code>")
PROMO_ADMIN_USAGE = N_(
    "Usage: <code>/promo &lt;code&gt;</code> redeems a code; for admins: <code>/promo add "
    "&lt;code&gt; &lt;credits&gt; [uses] [days]</code> (uses: how many people in all, 0 or left "
    "out for no limit; days: how long it is valid, left out for no end), <code>/promo off "
    "&lt;code&gt;</code>, <code>/promo list</code>.\nExample: <code>/promo add SPRING 50 100 "
    "7</code>")


def usage(is_admin: bool) -> str:
    return PROMO_ADMIN_USAGE if is_admin else PROMO_USAGE


async def deep_link(bot: Bot, payload: str) -> str:
    me = await bot.me()  # getMe once; aiogram keeps the answer
    return f"https://t.me/{me.username}?start={payload}"


async def invite_link(bot: Bot, store: Store, user_id: int) -> str:
    return await deep_link(bot, INVITE_PREFIX + await store.invite_code(user_id))


async def promo_link(bot: Bot, code: str) -> str:
    return await deep_link(bot, PROMO_PREFIX + code)


@dataclass(frozen=True, slots=True)
class StartLink:
    """What a `/start` payload asks for: an invite ("invite") or a promo code ("promo")."""

    kind: str
    code: str


def parse_start(payload: str | None) -> StartLink | None:
    """`ref_<code>` or `promo_<code>`; None for anything else (a payload of another kind, or
    one that could not be a code: the greeting goes on as without one)."""
    payload = (payload or "").strip()
    for kind, prefix, shape in (("invite", INVITE_PREFIX, INVITE_CODE),
                                ("promo", PROMO_PREFIX, PROMO_CODE)):
        code = payload.removeprefix(prefix)
        if payload.startswith(prefix) and shape.match(code):
            return StartLink(kind, code)
    return None


def promo_code(token: str, *, is_admin: bool) -> str:
    """A promo code as typed: checked, in its one case (upper)."""
    if not PROMO_CODE.match(token):
        raise UsageError(N_("A promo code is 1 to 32 letters, digits, _ or -."),
                         usage=usage(is_admin))
    return token.upper()


@dataclass(frozen=True, slots=True)
class NewPromo:
    code: str
    credits: int
    uses: int | None       # None: no limit
    days: int | None       # None: no end

    def expires_at(self, now: float) -> float | None:
        return None if self.days is None else now + self.days * DAY


def parse_new_promo(tokens: list[str]) -> NewPromo:
    """What follows `/promo add`: `<code> <credits> [uses] [days]`."""
    if not 2 <= len(tokens) <= 4:
        raise UsageError(N_("Say the code and its credits, then the uses and days if they are "
                            "limited."), usage=PROMO_ADMIN_USAGE)
    code = promo_code(tokens[0], is_admin=True)
    if code.lower() in ADMIN_ACTIONS:
        raise UsageError(N_("A promo code cannot be named add, off or list."),
                         usage=PROMO_ADMIN_USAGE)
    credits = _number(tokens[1], 1, MAX_TOPUP, N_("The credits must be a whole number from 1 "
                                                  "to {max}."))
    uses = _number(tokens[2], 0, MAX_USES, N_("The uses must be a whole number from 0 (no "
                                              "limit) to {max}.")) if len(tokens) > 2 else 0
    days = _number(tokens[3], 1, MAX_DAYS, N_("The days must be a whole number from 1 to "
                                              "{max}.")) if len(tokens) > 3 else None
    return NewPromo(code, credits, uses or None, days)


def _number(token: str, low: int, high: int, message: str) -> int:
    value = ascii_number(token)
    if value is None or not low <= value <= high:
        raise UsageError(message, usage=PROMO_ADMIN_USAGE, max=high)
    return value


async def redeem(store: Store, user_id: int, code: str) -> tuple[PromoCode, LedgerRow]:
    """The code's credits for this person, or a Refusal that says why not."""
    try:
        return await store.redeem_promo(code, user_id)
    except PromoRefused as refused:
        raise _refusal(refused, code) from None


def _refusal(refused: PromoRefused, code: str) -> Refusal:
    promo = refused.promo
    if refused.reason == "redeemed":
        return Refusal(N_("You have already redeemed the promo code {code}."), code=code)
    if refused.reason == "off":
        return Refusal(N_("The promo code {code} has been withdrawn."), code=code)
    if refused.reason == "used_up":
        return Refusal(N_("The promo code {code} has been used up: all its uses are taken."),
                       code=code)
    if refused.reason == "expired" and promo is not None and promo.expires_at is not None:
        return Refusal(N_("The promo code {code} expired on {when} (UTC)."), code=code,
                       when=texts.when(promo.expires_at))
    return Refusal(N_("There is no promo code {code}. Check how it is spelled."), code=code)


def state(promo: PromoCode, now: float | None = None) -> str:
    """"active", "off", "expired" or "used_up" (what /promo list says of it)."""
    now = time.time() if now is None else now
    if promo.off_at is not None:
        return "off"
    if promo.uses is not None and promo.used >= promo.uses:
        return "used_up"
    if promo.expires_at is not None and promo.expires_at <= now:
        return "expired"
    return "active"
