"""Telegram Stars: which package an invoice names, whether a checkout may go on, crediting a
paid package once per charge, and refunding one (Telegram first, then the ledger)."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Update
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import texts
from bot.config import CreditPackage
from bot.errors import BotError, Refusal
from bot.i18n import N_, locale_of
from bot.services.accounts import UsageError, ascii_number
from bot.services.telegram import with_retry
from bot.store import AlreadyRefunded, CreditsReserved, CreditsSpent, LedgerRow, Purchase, Store, User

log = logging.getLogger(__name__)

CURRENCY = "XTR"  # Telegram Stars: no payment provider, no provider token
# Telegram's answer to a second refund of one charge: the Stars are back with the buyer.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
# A flood-control wait is sat out once; a 5xx is not retried here (see `refund`).
REFUND_ATTEMPTS = 2

PACKAGE_GONE = N_("This package is no longer offered. Send /buy to see the current ones.")
CHECKOUT_BANNED = N_("You are banned from using this bot, so you cannot buy credits.")
CHECKOUT_MISMATCH = N_("This invoice does not match the package it names. Send /buy for a new one.")
REFUND_USAGE = N_("Usage: <code>/refund &lt;charge id&gt;</code>, or "
                  "<code>/refund &lt;charge id&gt; force</code> when the buyer has already spent "
                  "some of the credits.\nExample: <code>/refund stxAbC123 force</code>")
RESERVED = N_("The buyer's balance is {left} and {reserved} more are held by generations still "
              "running, whose refunds would bring them back after the purchase ({credits}) is "
              "refunded. Nothing was refunded; try again when they have finished.")
SPENT = N_("The buyer has already spent some of these credits: their balance is {left}, the "
           "purchase was {credits}. Nothing was refunded. To refund the {stars} ⭐ anyway and "
           "take back only what is left, send <code>/refund {charge_id} force</code>.")
FORCE = "force"
# Telegram's charge ids are short ASCII tokens; anything longer is not one.
MAX_CHARGE_ID = 256


def parse_key(payload: str) -> tuple[int, int] | None:
    """(credits, stars) from an invoice payload `credits:stars` (CreditPackage.key)."""
    first, _, second = payload.partition(":")
    credits, stars = ascii_number(first), ascii_number(second)
    if not credits or not stars:  # None (not a number) or 0
        return None
    return credits, stars


def find_package(packages: Iterable[CreditPackage], key: str) -> CreditPackage | None:
    return next((package for package in packages if package.key == key), None)


def checkout_refusal(packages: Iterable[CreditPackage], *, payload: str, currency: str,
                     total_amount: int, banned: bool) -> str | None:
    """Why a pre-checkout is refused (a message id), or None: let the payment go on. Only
    what is on offer now may be bought, at exactly its price."""
    if banned:
        return CHECKOUT_BANNED
    package = find_package(packages, payload)
    if package is None:
        return PACKAGE_GONE
    if currency != CURRENCY or total_amount != package.stars:
        return CHECKOUT_MISMATCH
    return None


class UnknownPayload(BotError):
    """A paid invoice whose payload names no package: nothing to credit automatically."""


async def credit_payment(store: Store, user_id: int, *, charge_id: str, payload: str,
                         total_amount: int, referral_percent: int) -> LedgerRow | None:
    """Credit a paid invoice once per charge id; None when it was credited before. The credits
    are the ones the payload names (the package as it was bought, even if the offer changed
    since) and the Stars what was paid. The buyer's inviter earns `referral_percent` % of
    them with it (REFERRAL_PERCENT; Store.record_purchase)."""
    parsed = parse_key(payload)
    if parsed is None:
        raise UnknownPayload(payload)
    return await store.record_purchase(user_id, charge_id=charge_id, package=payload,
                                       credits=parsed[0], stars=total_amount,
                                       referral_percent=referral_percent)


class CreditOnArrival:
    """Payments are credited the moment an update brings one, before Telegram is told the update
    arrived: a bot dying after that would lose a payment Telegram never sends again. The
    payment handler then only confirms (crediting is idempotent by the charge id).

    Long polling: as a session middleware (`bot.session.middleware`), as getUpdates returns a
    batch: the next getUpdates confirms it, and aiogram makes that call before the handlers
    have run. Webhook: `WebhookHandler` credits before answering Telegram's POST."""

    def __init__(self, store: Store, starting_credits: int, referral_percent: int) -> None:
        self.store = store
        self.starting_credits = starting_credits
        self.referral_percent = referral_percent

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        result = await make_request(bot, method)
        # (aiogram's typing says Response; what comes back through the chain is the result.)
        if isinstance(method, GetUpdates) and isinstance(result, list):
            for update in result:
                if isinstance(update, Update):
                    try:
                        await self.credit(update)
                    except Exception:  # the handler tries again, and says so if it cannot
                        log.exception("update %s: payment not credited at fetch", update.update_id)
        return result

    async def credit(self, update: Update) -> None:
        """Credit the payment `update` brings, if any (once per charge id). Raises when the
        store cannot take it; a payload that names no package is left to the handler."""
        message = update.message
        payment = message.successful_payment if message else None
        if message is None or payment is None or message.from_user is None:
            return
        buyer = message.from_user
        await self.store.upsert_user(
            buyer.id, username=buyer.username, first_name=buyer.first_name,
            last_name=buyer.last_name, tg_language=buyer.language_code,
            starting_credits=self.starting_credits)
        try:
            await credit_payment(self.store, buyer.id,
                                 charge_id=payment.telegram_payment_charge_id,
                                 payload=payment.invoice_payload, total_amount=payment.total_amount,
                                 referral_percent=self.referral_percent)
        except UnknownPayload:  # nothing to credit by itself: the handler tells the buyer
            log.warning("payment %s: payload %r names no package", payment.telegram_payment_charge_id,
                        payment.invoice_payload)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    charge_id: str
    force: bool


def parse_refund(args: str | None) -> RefundRequest:
    """`<charge id>` or `<charge id> force`."""
    tokens = (args or "").split()
    if not tokens:
        raise UsageError(N_("Say which payment to refund."), usage=REFUND_USAGE)
    if len(tokens) > 2 or (len(tokens) == 2 and tokens[1].lower() != FORCE):
        raise UsageError(N_("Only the word force may follow the charge id."), usage=REFUND_USAGE)
    if len(tokens[0]) > MAX_CHARGE_ID or not tokens[0].isascii():
        raise UsageError(N_("That is not a Telegram charge id."), usage=REFUND_USAGE)
    return RefundRequest(tokens[0], force=len(tokens) == 2)


@dataclass(frozen=True, slots=True)
class Refunded:
    purchase: Purchase
    buyer: User
    taken: int     # credits taken back (all of the purchase, or what was left of them)
    balance: int   # the buyer's balance after it


async def refund(bot: Bot, store: Store, request: RefundRequest, *, admin_id: int) -> Refunded:
    """Refund a purchase's Stars and take its credits back: at most once per charge. The
    buyer's inviter gives back their share of it alongside (Store.hold_purchase_refund).

    The credits are held first (one locked transaction: nothing bought meanwhile can spend
    them), then Telegram is asked. Telegram's refusal gives them back; its "already refunded"
    (an earlier call whose answer was lost, a refund made elsewhere) confirms as a success
    does. A 5xx or a timeout may or may not have refunded: the credits stay held and the admin
    repeats the command, which asks Telegram again without taking anything twice."""
    try:
        purchase = await store.hold_purchase_refund(
            request.charge_id, admin_id=admin_id, force=request.force)
    except LookupError:
        raise Refusal(N_("I know no purchase with the charge id {charge_id}."),
                      charge_id=request.charge_id) from None
    except AlreadyRefunded as done:
        raise Refusal(N_("This purchase was already refunded. Taken back then: {taken} "
                         "(bought: {credits})."),
                      taken=texts.credits(done.purchase.taken_back or 0),
                      credits=texts.credits(done.purchase.credits)) from None
    except CreditsReserved as held:
        raise Refusal(RESERVED, left=texts.credits(held.balance),
                      reserved=texts.credits(held.reserved),
                      credits=texts.credits(held.purchase.credits)) from None
    except CreditsSpent as spent:
        raise Refusal(SPENT, left=texts.credits(spent.balance),
                      credits=texts.credits(spent.purchase.credits), stars=spent.purchase.stars,
                      charge_id=spent.purchase.charge_id) from None
    try:
        await _refund_at_telegram(bot, purchase)
    except _Refused as refused:
        await store.release_purchase_refund(purchase.charge_id, admin_id=admin_id)
        raise Refusal(N_("Telegram refused the refund: {reason}. The credits stay with the "
                         "buyer; nothing was changed."), reason=refused.reason) from None
    if await store.confirm_purchase_refund(purchase.charge_id) is None:
        raise Refusal(N_("This purchase was refunded meanwhile by another command."))
    taken = purchase.taken_back or 0
    log.info("purchase %s of user %s refunded by %s: %s stars, %s credits taken back",
             purchase.charge_id, purchase.user_id, admin_id, purchase.stars, taken)
    buyer = await _buyer(store, purchase)
    return Refunded(purchase=purchase, buyer=buyer, taken=taken, balance=buyer.balance)


async def tell_buyer(bot: Bot, i18n: I18n, done: Refunded) -> None:
    """The buyer told of a refund, in their language (/refund's and the dashboard's)."""
    purchase = done.purchase
    with i18n.use_locale(locale_of(done.buyer, i18n)):
        notice = "↩️ " + _(
            "Your payment of {stars} ⭐ (<code>{charge_id}</code>) was refunded. Taken back "
            "from your balance: {taken}. Balance: {balance}.").format(
            stars=purchase.stars, charge_id=html.escape(purchase.charge_id),
            taken=texts.credits(done.taken), balance=texts.credits(done.balance))
    # Never started a private chat, or blocked the bot: the refund stands anyway.
    with suppress(TelegramAPIError):
        await bot.send_message(done.buyer.id, notice)


async def _buyer(store: Store, purchase: Purchase) -> User:
    buyer = await store.get_user(purchase.user_id)
    if buyer is None:  # the purchases table refers to users; a missing one is a broken store
        raise LookupError(f"purchase {purchase.charge_id}: no user {purchase.user_id}")
    return buyer


class _Refused(BotError):
    """Telegram surely did not refund: the held credits go back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _refund_at_telegram(bot: Bot, purchase: Purchase) -> None:
    """refundStarPayment; returns when the Stars are back with the buyer (now or before).
    Raises _Refused, or Refusal when the outcome is unknown (the credits stay held)."""
    try:
        await with_retry(lambda: bot.refund_star_payment(purchase.user_id, purchase.charge_id),
                         REFUND_ATTEMPTS, retry_server_errors=False)
    except (TelegramServerError, TelegramNetworkError) as error:
        log.warning("refund of %s: Telegram did not answer (%s)", purchase.charge_id, error)
        raise Refusal(N_("Telegram did not confirm the refund ({reason}). The {taken} stay held "
                         "back from the buyer until it does: send the same command again in a "
                         "minute. If the Stars went back, the repeat records it; if Telegram "
                         "refuses, the credits are given back."),
                      reason=type(error).__name__,
                      taken=texts.credits(purchase.taken_back or 0)) from error
    except TelegramAPIError as error:
        if ALREADY_REFUNDED in error.message:
            log.info("refund of %s: Telegram had refunded it already", purchase.charge_id)
            return
        log.warning("refund of %s refused by Telegram: %s", purchase.charge_id, error.message)
        raise _Refused(error.message) from error
