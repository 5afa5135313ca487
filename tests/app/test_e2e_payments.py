"""End to end: Telegram Stars through the real bot: /buy → invoice → pre-checkout → payment
credited once; the admins' /refund; /paysupport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.store import LedgerKind, Store
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person, button, buttons
from testkit.e2e import generate
from testkit.fakes.kie import TaskPlan
from testkit.fakes.telegram import ALREADY_REFUNDED, Call, FakeTelegram

Dict = dict[str, Any]
START = 100  # starting credits in the test settings


async def books_balance(store: Store, *user_ids: int) -> None:
    """For every user: the balance is the sum of the ledger."""
    for user_id in user_ids:
        user = await store.get_user(user_id)
        assert user is not None
        assert user.balance == await store.ledger_sum(user_id), f"user {user_id}"


async def buy(tg: FakeTelegram, person: Person, package: str = "100 credits") -> tuple[Dict, Dict]:
    """/buy, press a package: (the package menu, the invoice message the bot sent)."""
    person.say("/buy")
    call = await person.told("")
    menu = person.message(person.id, call.response["message_id"])
    await person.press(menu, package)
    [invoice] = await tg.wait_for("sendInvoice", lambda c: c.params["chat_id"] == person.id)
    return menu, invoice.response


async def checkout(tg: FakeTelegram, person: Person, invoice: Dict | None = None,
                   **fields: Any) -> Dict:
    """Press Pay: the pre-checkout query and the bot's answer (its params)."""
    query = tg.pre_checkout(person.user, invoice, **fields)
    await tg.wait_for("answerPreCheckoutQuery",
                      lambda c: c.params["pre_checkout_query_id"] == query["id"])
    return tg.checkout_answers[query["id"]]


async def settled(person: Person) -> None:
    """Everything queued before now was handled: a command queued after it was answered (and
    a moment for a handler of the same batch)."""
    person.say("/balance")
    await person.told("Your balance")
    await asyncio.sleep(0.3)


def purchase_rows(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r.kind in (LedgerKind.PURCHASE, LedgerKind.PURCHASE_REFUND)]


def refund_calls(tg: FakeTelegram) -> list[Call]:
    return tg.calls_of("refundStarPayment")


async def paid(tg: FakeTelegram, store: Store, person: Person, credits: int = 100,
               stars: int = 50) -> str:
    """A bought package, credited: its charge id."""
    charge_id, _ = tg.pay(person.user, currency="XTR", total_amount=stars,
                          invoice_payload=f"{credits}:{stars}")
    await person.told("✅")  # the confirmation, in any language
    assert await store.get_purchase(charge_id) is not None
    return charge_id


# -- /buy, the invoice, the checkout, the payment -----------------------------------------------

async def test_buy_lists_the_packages_and_a_press_sends_a_stars_invoice(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    alice.say("/buy")
    await alice.told("Choose a package")
    menu = tg.last_bot_message(42)
    assert [b["text"] for b in buttons(menu)] == [
        "100 credits · 50 ⭐", "500 credits · 200 ⭐", "2000 credits · 700 ⭐"]
    await alice.press(menu, "500 credits")
    [call] = await tg.wait_for("sendInvoice")
    params = call.params
    assert (params["currency"], params["payload"], params["title"]) == ("XTR", "500:200",
                                                                        "500 credits")
    assert [p["amount"] for p in params["prices"]] == [200]
    assert not params.get("provider_token")
    assert "/paysupport" in params["description"]
    assert call.response["invoice"]["total_amount"] == 200
    await books_balance(store, 42)


async def test_the_invoice_speaks_the_buyers_language(tg, bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/buy")
    await boris.told("Выберите пакет")
    menu = tg.last_bot_message(43)
    assert button(menu, "100 кредитов · 50 ⭐")
    _, invoice = await buy(tg, boris, "2000 кредитов")
    assert tg.invoice(invoice)["title"] == "2000 кредитов"
    await books_balance(store, 43)


async def test_a_payment_is_credited_once_though_its_update_comes_again(tg, settings, start_bot,
                                                                       store):
    alice = Person(tg, 42, "Alice")
    first = await start_bot(settings)
    _, invoice = await buy(tg, alice)
    answer = await checkout(tg, alice, invoice)
    assert answer["ok"] is True and "error_message" not in answer
    charge_id, payment = tg.pay(alice.user, invoice)
    call = await alice.told("Payment received: 100 credits added")
    assert "Your balance: 200 credits" in call.params["text"]
    assert charge_id in call.params["text"]

    tg.redeliver(payment)  # a poller died before confirming the offset
    await settled(alice)
    await first.stop()
    tg.redeliver(payment)  # and once more, to the restarted bot
    await start_bot(settings)
    await settled(alice)

    [row] = purchase_rows(await store.ledger(42))
    assert (row.kind, row.amount, row.balance_after, row.source) == (
        LedgerKind.PURCHASE, 100, 200, f"purchase:{charge_id}")
    purchase = await store.get_purchase(charge_id)
    assert (purchase.user_id, purchase.package, purchase.credits, purchase.stars) == (
        42, "100:50", 100, 50)
    assert len([c for c in tg.calls_of("sendMessage") if "Payment received" in c.params["text"]]) == 1
    assert (await store.get_user(42)).balance == 200
    await books_balance(store, 42)


async def test_a_payment_is_credited_when_fetched_whether_or_not_a_handler_runs(tg, bot, store):
    """aiogram asks for the next batch (which confirms this one to Telegram) before handlers
    run: a payment is credited as getUpdates brings it. Here its handler never runs (the
    update counts as handled by an earlier, crashed run), and the money is there anyway."""
    alice = Person(tg, 42, "Alice")
    assert await store.first_sight_of_update(tg.next_update_id)  # the crashed run saw it
    charge_id, _ = tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    for _ in range(200):
        if await store.get_purchase(charge_id) is not None:
            break
        await asyncio.sleep(0.02)
    assert (await store.get_user(42)).balance == START + 100
    await books_balance(store, 42)


async def test_a_payment_after_a_flood_of_messages_is_credited(tg, bot, store):
    """Throttling drops what a person types, never the payment that follows."""
    alice = Person(tg, 42, "Alice")
    for _ in range(15):
        alice.say("hello")
    charge_id, _ = tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="100:50")
    await alice.told("Payment received")
    assert await store.get_purchase(charge_id) is not None
    await books_balance(store, 42)


async def test_russian_buyer_is_thanked_in_russian(tg, bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    tg.pay(boris.user, currency="XTR", total_amount=200, invoice_payload="500:200")
    call = await boris.told("Оплата получена")
    assert "500 кредитов" in call.params["text"] and "600 кредитов" in call.params["text"]
    await books_balance(store, 43)


# -- the checkout refused -------------------------------------------------------------------------

@pytest.mark.parametrize("fields, reason", [
    ({"invoice_payload": "500:200", "total_amount": 200}, "no longer offered"),
    ({"invoice_payload": "nonsense", "total_amount": 50}, "no longer offered"),
    ({"invoice_payload": "100:50", "total_amount": 5}, "does not match"),
    ({"invoice_payload": "100:50", "currency": "USD"}, "does not match"),
])
async def test_a_checkout_for_what_is_not_on_offer_is_refused(tg, tmp_path, kie, start_bot, store,
                                                              fields, reason):
    await start_bot(make_settings(tmp_path, tg, kie, credit_packages="100:50,1000:400"))
    alice = Person(tg, 42, "Alice")
    answer = await checkout(tg, alice, **{"currency": "XTR", "total_amount": 50, **fields})
    assert answer["ok"] is False
    assert reason in answer["error_message"]
    assert "/buy" in answer["error_message"]
    assert (await store.get_user(42)).balance == START
    await books_balance(store, 42)


async def test_a_package_that_vanished_is_refused_in_russian_and_the_old_button_too(
        tg, tmp_path, kie, start_bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    first = await start_bot(make_settings(tmp_path, tg, kie))
    menu, invoice = await buy(tg, boris, "500 кредитов")
    await first.stop()
    await start_bot(make_settings(tmp_path, tg, kie, credit_packages="100:50"))

    answer = await checkout(tg, boris, invoice)
    assert answer["ok"] is False and "больше не продаётся" in answer["error_message"]
    pressed = await boris.press(menu, "500 кредитов")
    assert pressed["show_alert"] and "больше не продаётся" in pressed["text"]
    assert len(tg.calls_of("sendInvoice")) == 1
    await books_balance(store, 43)


async def test_a_package_bought_before_the_offer_changed_is_credited_as_bought(
        tg, tmp_path, kie, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, credit_packages="100:50"))
    alice = Person(tg, 42, "Alice")
    charge_id = await paid(tg, store, alice, credits=500, stars=200)
    purchase = await store.get_purchase(charge_id)
    assert (purchase.credits, purchase.stars, purchase.package) == (500, 200, "500:200")
    assert (await store.get_user(42)).balance == START + 500
    await books_balance(store, 42)


async def test_a_banned_user_is_refused_at_checkout_but_a_payment_made_is_credited(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")
    _, invoice = await buy(tg, alice)
    assert await store.set_banned(42)

    answer = await checkout(tg, alice, invoice)
    assert answer["ok"] is False and "banned" in answer["error_message"]
    # Paid before the ban took effect: the money is theirs to spend (or to have refunded).
    charge_id, _ = tg.pay(alice.user, invoice)
    await alice.told("Payment received: 100 credits added")
    assert (await store.get_purchase(charge_id)).credits == 100
    assert (await store.get_user(42)).balance == START + 100
    alice.say("/balance")
    await alice.told("You are banned")
    await books_balance(store, 42)


async def test_an_admin_is_never_refused_as_banned(tg, bot, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/start")
    await admin.told("Hi")
    await store.set_banned(ADMIN_ID)
    answer = await checkout(tg, admin, currency="XTR", total_amount=50, invoice_payload="100:50")
    assert answer["ok"] is True
    await books_balance(store, ADMIN_ID)


async def test_nothing_on_sale(tg, tmp_path, kie, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, credit_packages=""))
    alice = Person(tg, 42, "Alice")
    alice.say("/buy")
    await alice.told("Nothing is on sale")
    await books_balance(store, 42)


# -- /paysupport ----------------------------------------------------------------------------------

async def test_paysupport_names_the_configured_contact(tg, tmp_path, kie, start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, support_contact="@shop_help <24/7>"))
    alice = Person(tg, 42, "Alice")
    alice.say("/paysupport")
    call = await alice.told("write to @shop_help &lt;24/7&gt;")
    assert call.ok
    await books_balance(store, 42)


async def test_paysupport_without_a_contact_points_to_an_admin(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    alice.say("/paysupport")
    await alice.told("write to an admin of this bot")
    boris = Person(tg, 43, "Борис", language="ru")
    boris.say("/paysupport")
    await boris.told("администратору этого бота")
    await books_balance(store, 42, 43)


async def test_buy_and_paysupport_are_in_the_command_menu(tg, bot):
    menus = {c.params.get("language_code"): c.params["commands"] for c in tg.calls_of("setMyCommands")}
    for commands in menus.values():
        assert {"buy", "paysupport"} <= {c["command"] for c in commands}


async def test_a_payment_for_no_known_package_is_told_not_credited_and_logged_in_one_line(
        tg, bot, store, caplog):
    alice = Person(tg, 42, "Alice")
    charge_id, _ = tg.pay(alice.user, currency="XTR", total_amount=50, invoice_payload="nonsense")
    call = await alice.told("cannot tell which package")
    assert charge_id in call.params["text"]
    assert await store.get_purchase(charge_id) is None
    assert (await store.get_user(42)).balance == START
    assert not [r for r in caplog.records if r.exc_info]  # no traceback for a known case
    assert [r.levelname for r in caplog.records if charge_id in r.getMessage()
            and r.name.startswith("bot.")] == ["WARNING", "ERROR"]  # fetched, then handled


# -- /refund --------------------------------------------------------------------------------------

async def test_admin_refund_gives_the_stars_back_and_takes_the_credits_once(tg, bot, store):
    boris = Person(tg, 43, "Борис", language="ru")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, boris)
    admin.say(f"/refund {charge_id}")
    call = await admin.told("Refunded 50 ⭐")
    assert "Taken back: 100 credits" in call.params["text"]
    assert "Their balance: 100 credits" in call.params["text"]
    [refund] = refund_calls(tg)
    assert refund.params == {"user_id": 43, "telegram_payment_charge_id": charge_id}
    assert tg.charges[charge_id].refunded
    notice = await boris.told("Возврат")
    assert "100 кредитов" in notice.params["text"]

    rows = purchase_rows(await store.ledger(43))
    assert [(r.kind, r.amount, r.admin_id) for r in rows] == [
        (LedgerKind.PURCHASE_REFUND, -100, ADMIN_ID), (LedgerKind.PURCHASE, 100, None)]
    assert (await store.get_user(43)).balance == START

    admin.say(f"/refund {charge_id}")
    await admin.told("already refunded")
    assert len(refund_calls(tg)) == 1
    assert len(purchase_rows(await store.ledger(43))) == 2
    await books_balance(store, 43, ADMIN_ID)


async def test_a_refund_of_partly_spent_credits_needs_force_and_takes_only_what_is_left(
        tg, bot, store):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice, credits=500, stars=200)
    await store.topup(42, -(START + 470), admin_id=ADMIN_ID, note="spent")  # 30 left

    admin.say(f"/refund {charge_id}")
    call = await admin.told("already spent some of these credits")
    assert "their balance is 30 credits" in call.params["text"]
    assert f"<code>/refund {charge_id} force</code>" in call.params["text"]
    assert refund_calls(tg) == []
    assert (await store.get_purchase(charge_id)).refunded_at is None

    admin.say(f"/refund {charge_id} force")
    call = await admin.told("Refunded 200 ⭐")
    assert "Taken back: 30 credits (bought: 500 credits)" in call.params["text"]
    assert "Their balance: 0 credits" in call.params["text"]
    await alice.told("Taken back from your balance: 30 credits. Balance: 0 credits")
    assert len(refund_calls(tg)) == 1
    assert (await store.get_user(42)).balance == 0
    assert (await store.get_purchase(charge_id)).taken_back == 30
    await books_balance(store, 42)


async def test_a_refund_with_nothing_left_takes_nothing(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    await store.topup(42, -(START + 100), admin_id=ADMIN_ID)
    admin.say(f"/refund {charge_id} FORCE")
    call = await admin.told("Refunded 50 ⭐")
    assert "Taken back: 0 credits" in call.params["text"]
    assert (await store.get_user(42)).balance == 0
    await books_balance(store, 42)


async def test_a_non_admin_refund_is_refused(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    charge_id = await paid(tg, store, alice)
    alice.say(f"/refund {charge_id}")
    await alice.told("for admins only")
    assert refund_calls(tg) == []
    assert (await store.get_user(42)).balance == START + 100
    await books_balance(store, 42)


@pytest.mark.parametrize("args, reason", [
    ("", "Say which payment to refund"),
    ("stx1 now", "Only the word force"),
    ("stx1 force please", "Only the word force"),
    ("stxЖ", "not a Telegram charge id"),
])
async def test_bad_refund_gets_reason_and_usage(tg, bot, store, args, reason):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say(f"/refund {args}".strip())
    call = await admin.told("Usage:")
    assert reason in call.params["text"]
    assert "Example: <code>/refund stxAbC123 force</code>" in call.params["text"]
    assert refund_calls(tg) == []
    await books_balance(store, ADMIN_ID)


async def test_refund_of_an_unknown_charge_is_refused(tg, bot, store):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/refund stx<unknown>")
    await admin.told("I know no purchase with the charge id stx&lt;unknown&gt;")
    assert refund_calls(tg) == []
    await books_balance(store, ADMIN_ID)


@pytest.mark.parametrize("error_code, description, told", [
    (400, "Bad Request: CHARGE_NOT_FOUND", "Telegram refused the refund: Bad Request: CHARGE_NOT_FOUND"),
    (403, "Forbidden: bot was blocked by the user", "Telegram refused the refund"),
])
async def test_a_refund_telegram_refuses_gives_the_credits_back(tg, bot, store, error_code,
                                                                description, told):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    tg.fail_next("refundStarPayment", error_code=error_code, description=description)
    admin.say(f"/refund {charge_id}")
    await admin.told(told)
    assert len(refund_calls(tg)) == 1
    purchase = await store.get_purchase(charge_id)
    assert purchase.refunded_at is None and purchase.taken_back is None
    assert (await store.get_user(42)).balance == START + 100
    assert [r.amount for r in await store.ledger(42, 2)] == [100, -100]  # held, given back
    assert not tg.charges[charge_id].refunded

    admin.say(f"/refund {charge_id}")  # the repeat goes through, with sources of its own
    await admin.told("Refunded 50 ⭐")
    assert (await store.get_user(42)).balance == START
    assert (await store.get_purchase(charge_id)).taken_back == 100
    await books_balance(store, 42)


@pytest.mark.parametrize("error_code", [500, 502])
async def test_a_refund_telegram_does_not_confirm_stays_held_until_repeated(tg, bot, store,
                                                                           error_code):
    """A 5xx may or may not have refunded: the credits stay held (nobody can spend them) and
    the repeat asks Telegram again, taking nothing twice."""
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    tg.fail_next("refundStarPayment", error_code=error_code)
    admin.say(f"/refund {charge_id}")
    call = await admin.told("Telegram did not confirm the refund")
    assert "100 credits stay held" in call.params["text"]
    assert len(refund_calls(tg)) == 1  # a 5xx is not retried: the admin repeats the command
    purchase = await store.get_purchase(charge_id)
    assert purchase.refunded_at is None and purchase.taken_back == 100
    assert (await store.get_user(42)).balance == START
    assert not tg.charges[charge_id].refunded

    admin.say(f"/refund {charge_id}")
    await admin.told("Refunded 50 ⭐")
    assert tg.charges[charge_id].refunded
    assert (await store.get_user(42)).balance == START
    assert [r.amount for r in purchase_rows(await store.ledger(42))] == [-100, 100]
    await books_balance(store, 42)


async def test_credits_spent_while_telegram_refunds_are_never_the_refunded_ones(tg, kie, bot,
                                                                              store):
    """A ✅ pressed while Telegram is answering the refund: the credits were held first, so the
    press cannot spend them (it finds the balance without them), and nothing needs force."""
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    await store.topup(42, -START, admin_id=ADMIN_ID)  # the purchase is all she has
    _, picker = await alice.ask("/image a fox")
    await alice.press(picker, "Imagen 4")
    tg.slow("refundStarPayment", 1.5)
    admin.say(f"/refund {charge_id}")
    await tg.wait_for("refundStarPayment")  # asked, not yet answered
    answer = await alice.press(alice.refreshed(picker), "✅")
    assert "credits" in answer["text"].lower()  # not enough: the price and the balance
    await admin.told("Refunded 50 ⭐")
    assert [r.kind for r in await store.ledger(42, 100)
            if r.kind == LedgerKind.CHARGE] == [] and kie.creates == []
    assert (await store.get_purchase(charge_id)).taken_back == 100
    assert (await store.get_user(42)).balance == 0
    await books_balance(store, 42)


async def test_a_forced_refund_waits_for_running_generations(tg, kie, bot, store):
    """Credits held by a running generation would come back by its refund after the purchase's
    refund took what was left: refused until it is settled."""
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    await store.topup(42, -START, admin_id=ADMIN_ID)
    kie.default_plan = TaskPlan(outcome="never")
    await generate(alice, "a fox")  # Imagen 4: 40 credits, running
    await tg.wait_for("editMessageText", lambda c: "generating" in str(c.params.get("text")))
    admin.say(f"/refund {charge_id} force")
    call = await admin.told("held by generations still running")
    assert "The buyer's balance is 60 credits and 40 credits more" in call.params["text"]
    assert refund_calls(tg) == []
    assert (await store.get_purchase(charge_id)).taken_back is None
    assert (await store.get_user(42)).balance == 60
    await books_balance(store, 42)


async def test_a_refund_telegram_already_made_is_recorded(tg, bot, store):
    """A 5xx whose refund went through after all (or a refund made elsewhere): Telegram says
    CHARGE_ALREADY_REFUNDED, and the ledger catches up, once."""
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    tg.charges[charge_id].refunded = True
    admin.say(f"/refund {charge_id}")
    await admin.told("Refunded 50 ⭐")
    [call] = refund_calls(tg)
    assert call.description == ALREADY_REFUNDED
    assert (await store.get_user(42)).balance == START
    assert [r.amount for r in purchase_rows(await store.ledger(42))] == [-100, 100]
    await books_balance(store, 42)


async def test_a_refund_waits_out_flood_control(tg, bot, store):
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    charge_id = await paid(tg, store, alice)
    tg.fail_next("refundStarPayment", error_code=429, retry_after=1)
    admin.say(f"/refund {charge_id}")
    await admin.told("Refunded 50 ⭐")
    assert len(refund_calls(tg)) == 2
    assert (await store.get_user(42)).balance == START
    await books_balance(store, 42)


async def test_a_refund_of_a_charge_telegram_does_not_know_records_nothing(tg, bot, store):
    """The store has a purchase whose charge Telegram has no record of (the fake's own refusal,
    not an injected one)."""
    alice = Person(tg, 42, "Alice")
    admin = Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Hi")
    await store.record_purchase(42, charge_id="stxUnknownToTelegram", package="100:50",
                                credits=100, stars=50)
    admin.say("/refund stxUnknownToTelegram")
    await admin.told("Telegram refused the refund: Bad Request: CHARGE_NOT_FOUND")
    [call] = refund_calls(tg)
    assert not call.injected
    assert (await store.get_purchase("stxUnknownToTelegram")).refunded_at is None
    assert (await store.get_user(42)).balance == START + 100
    await books_balance(store, 42)
