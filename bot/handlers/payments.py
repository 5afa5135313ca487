"""Telegram Stars: /buy and its invoices, the checkout, the payment; /paysupport; the admins'
/refund. The rules live in services/payments.py."""

from __future__ import annotations

import html
import logging
from contextlib import suppress
from typing import Annotated

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    SuccessfulPayment,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from bot import texts
from bot.config import CreditPackage, GrowthSettings, PaymentSettings
from bot.errors import Refusal
from bot.handlers.filters import on_loop
from bot.handlers.growth import tell_inviter
from bot.handlers.picker import render
from bot.i18n import N_
from bot.keyboards import BuyMenu
from bot.services import payments
from bot.services.generation import Generations
from bot.services.private import send_privately
from bot.services.telegram import with_retry
from bot.store import Store, User

log = logging.getLogger(__name__)


class Buy(CallbackData, prefix="by"):
    """A package button: the package itself (its key's ':' is the data separator)."""

    credits: Annotated[int, Field(ge=1, le=1_000_000)]
    stars: Annotated[int, Field(ge=1, le=100_000)]


def package_button(package: CreditPackage) -> str:
    return f"{texts.credits(package.credits)} · {package.stars} ⭐"


async def buy(message: Message, account: User, payment_settings: PaymentSettings,
              bot: Bot) -> None:
    await send_privately(bot, account, message, *packages(account, payment_settings))


async def buy_menu(query: CallbackQuery, account: User, payment_settings: PaymentSettings,
                   bot: Bot) -> None:
    """⭐ Buy credits (under /start, beside a ✅ the balance could not pay): what /buy sends."""
    if not isinstance(query.message, Message):  # too old for Telegram to include it
        raise Refusal(texts.OUTDATED)
    await send_privately(bot, account, query.message, *packages(account, payment_settings))


def packages(account: User, payment_settings: PaymentSettings,
             ) -> tuple[str, InlineKeyboardMarkup | None]:
    """The packages on sale, a button each, and the balance (for the private chat only)."""
    if not payment_settings.packages:
        return _("Nothing is on sale at the moment. To get credits, ask an admin of this "
                 "bot."), None
    builder = InlineKeyboardBuilder()
    for package in payment_settings.packages:
        builder.button(text=package_button(package),
                       callback_data=Buy(credits=package.credits, stars=package.stars))
    builder.adjust(1)
    return (_("Buy credits with Telegram Stars ⭐. Your balance: {credits}.").format(
        credits=texts.credits(account.balance)) + "\n\n" + _("Choose a package:"),
        builder.as_markup())


async def choose(query: CallbackQuery, callback_data: Buy, payment_settings: PaymentSettings,
                 bot: Bot) -> None:
    """A package pressed: its invoice, into the chat the button is in."""
    package = payments.find_package(payment_settings.packages,
                                    CreditPackage(callback_data.credits, callback_data.stars).key)
    if package is None:  # a keyboard from before CREDIT_PACKAGES changed
        raise Refusal(payments.PACKAGE_GONE)
    amount = texts.credits(package.credits)
    await bot.send_invoice(
        query.message.chat.id if query.message else query.from_user.id,
        title=amount,
        description=_("{credits} for pictures, videos and music in this bot. Questions about "
                      "a payment: /paysupport.").format(credits=amount),
        payload=package.key, currency=payments.CURRENCY,
        prices=[LabeledPrice(label=amount, amount=package.stars)])


async def pre_checkout(query: PreCheckoutQuery, account: User, is_admin: bool,
                       payment_settings: PaymentSettings) -> None:
    """Answered at once (Telegram waits 10 s at most): the payment goes on only for a package
    on offer now, at its price, and for someone not banned."""
    reason = payments.checkout_refusal(
        payment_settings.packages, payload=query.invoice_payload, currency=query.currency,
        total_amount=query.total_amount, banned=account.banned and not is_admin)
    if reason is not None:
        log.info("checkout %s of user %s refused: %s", query.invoice_payload, account.id, reason)
    try:
        await query.answer(ok=reason is None,
                           error_message=_(reason) if reason is not None else None)
    except TelegramBadRequest as error:
        # Too late, or answered before: a repeated update (payments skip the repeat filter).
        log.warning("checkout %s: answer refused: %s", query.id, error.message)


async def paid(message: Message, account: User, store: Store, bot: Bot, *,
               generations: Generations, growth_settings: GrowthSettings, i18n: I18n) -> None:
    """The Stars were paid: the package goes on the balance, once per charge id (and the
    buyer's inviter their share, told to them)."""
    payment = message.successful_payment
    assert payment is not None  # the filter
    try:
        row = await payments.credit_payment(
            store, account.id, charge_id=payment.telegram_payment_charge_id,
            payload=payment.invoice_payload, total_amount=payment.total_amount,
            referral_percent=growth_settings.referral_percent)
    except payments.UnknownPayload:
        log.error("payment %s of user %s: payload %r names no package; NOT credited",
                  payment.telegram_payment_charge_id, account.id, payment.invoice_payload)
        await _tell(bot, account, message, _(
            "Your payment arrived, but I cannot tell which package it was for. Send /paysupport "
            "to reach the operator, with this payment id: <code>{charge_id}</code>.").format(
                charge_id=html.escape(payment.telegram_payment_charge_id)))
        return
    except Exception:
        # Telegram will not send this payment again: the log is what an operator credits from.
        log.exception("payment %s of user %s (%s, %s stars) NOT credited",
                      payment.telegram_payment_charge_id, account.id, payment.invoice_payload,
                      payment.total_amount)
        raise
    if row is None:  # credited on arrival (payments.CreditOnArrival): confirm it now
        purchase = await store.get_purchase(payment.telegram_payment_charge_id)
        buyer = await store.get_user(account.id)
        if purchase is None or buyer is None:
            raise LookupError(f"payment {payment.telegram_payment_charge_id} not recorded")
        await _tell(bot, account, message, confirmation(payment, purchase.credits,
                                                        buyer.balance))
    else:
        await _tell(bot, account, message, confirmation(payment, row.amount, row.balance_after))
    await tell_inviter(bot, store, i18n, payment.telegram_payment_charge_id)
    await offer_again(bot, account, generations, store)


async def offer_again(bot: Bot, buyer: User, generations: Generations, store: Store) -> None:
    """The ✅ that found too few credits, while its picker lives: offered once more, privately
    (a picker in a group would show the balance to all)."""
    picker = await generations.short_picker(buyer.id)
    fresh = await store.get_user(buyer.id)
    if picker is None or picker.model is None or fresh is None:
        return
    text, markup = render(picker)
    with suppress(TelegramAPIError):  # a courtesy: the purchase itself is confirmed above
        sent = await with_retry(lambda: bot.send_message(
            buyer.id, f"{texts.offer_again(fresh.balance)}\n\n{text}", reply_markup=markup))
        await store.set_picker_message(picker.draft.id, sent.message_id)


def confirmation(payment: SuccessfulPayment, credits: int, balance: int) -> str:
    return "✅ " + _("Payment received: {credits} added. Your balance: {balance}.").format(
        credits=texts.credits(credits), balance=texts.credits(balance)) + "\n" + _(
        "Payment id: <code>{charge_id}</code> (for /paysupport, if anything is wrong).").format(
        charge_id=html.escape(payment.telegram_payment_charge_id))


async def _tell(bot: Bot, buyer: User, message: Message, text: str) -> None:
    # Privately: an invoice paid in a group (one sent there before /buy answered privately).
    # A courtesy: the credits are on the balance even if the buyer blocked the bot since.
    with suppress(TelegramAPIError):
        await send_privately(bot, buyer, message, text)


async def paysupport(message: Message, payment_settings: PaymentSettings) -> None:
    contact = (html.escape(payment_settings.support_contact) if payment_settings.support_contact
               else _("an admin of this bot"))
    await message.answer("\n".join([
        _("<b>Help with payments</b>"),
        _("For anything about a payment (credits that did not arrive, a refund), write to "
          "{contact}.").format(contact=contact),
        _("Add the payment id from the confirmation message. A refund gives the Stars back "
          "and takes the purchase's credits off your balance."),
    ]))


async def refund(message: Message, *, command: CommandObject, is_admin: bool, account: User,
                 store: Store, bot: Bot, i18n: I18n) -> None:
    if not is_admin:
        raise Refusal(N_("This command is for admins only."))
    done = await payments.refund(bot, store, payments.parse_refund(command.args),
                                 admin_id=account.id)
    purchase = done.purchase
    await message.answer(_(
        "Refunded {stars} ⭐ to {user} (payment <code>{charge_id}</code>). Taken back: {taken} "
        "(bought: {credits}). Their balance: {balance}.").format(
        stars=purchase.stars, user=html.escape(done.buyer.display_name),
        charge_id=html.escape(purchase.charge_id), taken=texts.credits(done.taken),
        credits=texts.credits(purchase.credits), balance=texts.credits(done.balance)))
    await payments.tell_buyer(bot, i18n, done)


def make_router() -> Router:
    router = Router(name="payments")
    router.message.register(buy, Command("buy"))
    router.message.register(paysupport, Command("paysupport"))
    router.message.register(refund, Command("refund"))
    router.message.register(paid, on_loop(F.successful_payment))
    router.callback_query.register(choose, Buy.filter())
    router.callback_query.register(buy_menu, BuyMenu.filter())
    router.pre_checkout_query.register(pre_checkout)
    return router
