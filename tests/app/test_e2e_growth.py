"""End to end: invites and promo codes through the real bot. /invite's link and counts; a
newcomer through it gets REFERRAL_JOIN_BONUS once, nobody else does (a repeated /start, a
second one, one's own link, someone who had started before, an unknown code); the inviter earns
REFERRAL_PERCENT of each purchase once, however often its update comes, and gives it back with
the purchase's refund (and gets it again when Telegram refuses that refund). Promo codes: the
admins' add, off and list; a code redeemed once per person, never past its uses when twenty
redeem at once, never once withdrawn or expired; the promo_ link; hostile input answered with
the usage and nothing stored."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from bot.store import LedgerKind, Store
from testkit.bot import ADMIN_ID, RunningBot, make_settings
from testkit.chat import Person
from testkit.fakes.telegram import FakeTelegram
from testkit.timing import stays, until

Dict = dict[str, Any]
START = 100  # starting credits in the test settings
BONUS = 5
LINK = re.compile(r"https://t\.me/testbot\?start=(ref_[a-z0-9]+)")
GROUP = -1007200


@pytest.fixture
async def growing(tg, kie, tmp_path, start_bot) -> RunningBot:
    """The bot with a join bonus (the percent is the default, 10)."""
    return await start_bot(make_settings(tmp_path, tg, kie, referral_join_bonus=BONUS))


async def books_balance(store: Store, *user_ids: int) -> None:
    for user_id in user_ids:
        user = await store.get_user(user_id)
        assert user is not None
        assert user.balance == await store.ledger_sum(user_id), f"user {user_id}"


async def rows_of(store: Store, user_id: int, *kinds: str) -> list[Any]:
    return [r for r in await store.ledger(user_id, 100) if r.kind in kinds]


async def invite_payload(person: Person) -> str:
    """/invite: the `ref_<code>` of the person's link."""
    person.say("/invite")
    call = await person.told("https://t.me/testbot?start=ref_")  # in any language
    found = LINK.search(call.params["text"])
    assert found, call.params["text"]
    return found.group(1)


async def started(person: Person, payload: str = "") -> Dict:
    """`/start [payload]`: the greeting's params."""
    person.say(f"/start {payload}".strip())
    return (await person.told("Hi, ")).params


async def paid(tg: FakeTelegram, store: Store, person: Person, credits: int = 100,
               stars: int = 50) -> tuple[str, Dict]:
    """A package bought and confirmed: (its charge id, the payment message)."""
    charge_id, payment = tg.pay(person.user, currency="XTR", total_amount=stars,
                                invoice_payload=f"{credits}:{stars}")
    await person.told("Payment received")
    return charge_id, payment


def sent_to(tg: FakeTelegram, user_id: int, contains: str) -> list[str]:
    return [c.params["text"] for c in tg.calls_of("sendMessage")
            if c.ok and c.params["chat_id"] == user_id and contains in c.params["text"]]


# -- invites ----------------------------------------------------------------------------------

async def test_invite_gives_one_link_for_good_and_counts_who_joined_bought_and_earned(
        tg, growing, store):
    alice = Person(tg, 42, "Alice")
    payload = await invite_payload(alice)
    call = await alice.told("Joined through it: 0; of them bought credits: 0.")
    assert "You earned: 0 credits." in call.params["text"]
    assert "You get 10% of the credits that each person you invited buys." in call.params["text"]
    assert "Whoever starts the bot through your link gets 5 credits." in call.params["text"]
    assert str(alice.id) not in payload  # nothing in the link gives her id away
    assert await invite_payload(alice) == payload  # the same link ever after

    bob, carol = Person(tg, 43, "Bob"), Person(tg, 44, "Carol")
    await started(bob, payload)
    await started(carol, payload)
    await paid(tg, store, bob, credits=500, stars=200)
    alice.say("/invite")
    call = await alice.told("Joined through it: 2; of them bought credits: 1.")
    assert "You earned: 50 credits." in call.params["text"]
    await books_balance(store, 42, 43, 44)


async def test_a_newcomer_through_a_link_gets_the_bonus_once_and_no_more(tg, growing, store):
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    payload = await invite_payload(alice)
    request = bob.say(f"/start {payload}")
    greeting = (await bob.told("Hi, Bob!")).params["text"]
    assert greeting.startswith("🎁 You came through an invite: 5 credits added to your balance.")
    assert "Your balance: 105 credits." in greeting

    tg.redeliver(request)  # Telegram sends the same update again
    await started(bob, payload)  # and Bob follows the link once more
    assert "you had started it before" in sent_to(tg, 43, "Hi, Bob!")[-1]
    [bonus] = await rows_of(store, 43, LedgerKind.INVITE_BONUS)
    assert (bonus.amount, bonus.balance_after) == (BONUS, START + BONUS)
    assert (await store.get_user(43)).balance == START + BONUS
    assert len(sent_to(tg, 43, "Hi, Bob!")) == 2
    assert (await store.invites(42)).joined == 1
    await books_balance(store, 42, 43)


async def test_ones_own_link_brings_nothing(tg, growing, store):
    alice = Person(tg, 42, "Alice")
    payload = await invite_payload(alice)
    greeting = (await started(alice, payload))["text"]
    assert greeting.startswith("This is your own invite link: send it to others.")
    assert await rows_of(store, 42, LedgerKind.INVITE_BONUS) == []
    assert (await store.invites(42)).joined == 0
    await books_balance(store, 42)


async def test_someone_who_had_started_before_joins_nobody_through_a_link(tg, growing, store):
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    payload = await invite_payload(alice)
    await started(bob)
    greeting = (await started(bob, payload))["text"]
    assert greeting.startswith("Invite links are for people who start the bot for the first "
                               "time; you had started it before.")
    assert "Your balance: 100 credits." in greeting
    assert await rows_of(store, 43, LedgerKind.INVITE_BONUS) == []
    assert (await store.invites(42)).joined == 0

    await paid(tg, store, bob)  # and his purchases earn Alice nothing
    assert await rows_of(store, 42, LedgerKind.REFERRAL) == []
    await books_balance(store, 42, 43)


@pytest.mark.parametrize("payload", ["ref_nosuchcode", "ref_" + "x" * 33, "ref_<b>", "hello"])
async def test_an_unknown_or_strange_payload_is_ignored_politely(tg, growing, store, payload):
    bob = Person(tg, 43, "Bob")
    greeting = (await started(bob, payload))["text"]
    assert "Your balance: 100 credits." in greeting
    unknown = "I don't know this invite link, but you are welcome all the same."
    assert greeting.startswith(unknown) == (payload == "ref_nosuchcode")
    assert [r.kind for r in await store.ledger(43)] == [LedgerKind.GRANT]
    await books_balance(store, 43)


async def test_invite_in_a_group_answers_privately(tg, growing):
    alice = Person(tg, 42, "Alice")
    alice.say("/invite@testbot", chat=tg.group_chat(GROUP))
    await alice.told("Your invite link")
    line = await alice.told("I sent it to you in our private chat", chat_id=GROUP)
    assert "t.me/testbot?start" not in line.params["text"]


async def test_invite_in_russian(tg, growing):
    boris = Person(tg, 45, "Борис", language="ru")
    boris.say("/invite")
    call = await boris.told("Ваша ссылка-приглашение")
    assert "Вы заработали: 0 кредитов." in call.params["text"]


# -- the inviter's share of purchases -----------------------------------------------------------

async def test_a_purchase_by_an_invitee_pays_the_inviter_once_though_its_update_comes_again(
        tg, growing, store):
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    await started(bob, await invite_payload(alice))
    charge_id, payment = await paid(tg, store, bob, credits=500, stars=200)
    told = await alice.told("Someone you invited bought credits")
    assert "50 credits added to your balance. Balance: 150 credits." in told.params["text"]

    tg.redeliver(payment)
    bob.say("/balance")
    await bob.told("Your balance")
    await stays(lambda: len(sent_to(tg, 42, "Someone you invited")) == 1, 0.3)
    [share] = await rows_of(store, 42, LedgerKind.REFERRAL)
    assert (share.amount, share.source) == (50, f"referral:{charge_id}")
    assert len(await rows_of(store, 43, LedgerKind.PURCHASE)) == 1
    await books_balance(store, 42, 43)


async def test_the_inviter_is_told_in_their_language(tg, growing, store):
    boris, bob = Person(tg, 45, "Борис", language="ru"), Person(tg, 43, "Bob")
    await started(bob, await invite_payload(boris))
    await paid(tg, store, bob)
    told = await boris.told("Приглашённый вами человек купил кредиты")
    assert "10 кредитов" in told.params["text"]


async def test_a_refund_takes_the_share_back_and_a_refused_one_gives_it_back(tg, growing, store):
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    admin = Person(tg, ADMIN_ID, "Admin")
    await started(bob, await invite_payload(alice))
    charge_id, _ = await paid(tg, store, bob)
    assert (await store.get_user(42)).balance == START + 10

    tg.fail_next("refundStarPayment", error_code=400, description="Bad Request: CHARGE_NOT_FOUND")
    admin.say(f"/refund {charge_id}")
    await admin.told("Telegram refused the refund")
    assert [(r.kind, r.amount) for r in await store.ledger(42, 3)] == [
        (LedgerKind.REFERRAL_REFUND_UNDONE, 10), (LedgerKind.REFERRAL_REFUND, -10),
        (LedgerKind.REFERRAL, 10)]
    assert (await store.get_user(42)).balance == START + 10

    admin.say(f"/refund {charge_id}")
    await admin.told("Refunded 50 ⭐")
    assert (await store.get_user(42)).balance == START
    assert (await store.invites(42)).earned == 0
    alice.say("/invite")
    assert "of them bought credits: 0." in (await alice.told("Joined through it: 1")).params["text"]
    await books_balance(store, 42, 43)


# -- promo codes ------------------------------------------------------------------------------

async def test_an_admin_adds_lists_and_withdraws_a_code(tg, bot, store):
    admin, alice = Person(tg, ADMIN_ID, "Admin"), Person(tg, 42, "Alice")
    admin.say("/promo add Spring 50 100 7")
    text = (await admin.told("Promo code <code>SPRING</code> added")).params["text"]
    assert "50 credits per person, 100 people in all, until " in text
    assert "Its link: https://t.me/testbot?start=promo_SPRING" in text
    admin.say("/promo add spring 10")
    await admin.told("The promo code SPRING exists already")
    admin.say("/promo add free 5")
    await admin.told("Promo code <code>FREE</code> added: 5 credits per person, any number of "
                     "people, no end date.")

    alice.say("/promo spring")
    await alice.told("🎁 Promo code SPRING: 50 credits added. Your balance: 150 credits.")
    admin.say("/promo list")
    listed = (await admin.told("<b>Promo codes</b>")).params["text"]
    assert "<code>FREE</code> · 5 credits · redeemed 0 of ∞ · no end date · active" in listed
    assert "<code>SPRING</code> · 50 credits · redeemed 1 of 100 · until " in listed

    admin.say("/promo off SPRING")
    await admin.told("Promo code <code>SPRING</code> is withdrawn; it was redeemed 1 time.")
    bob = Person(tg, 43, "Bob")
    bob.say("/promo SPRING")
    await bob.told("The promo code SPRING has been withdrawn.")
    admin.say("/promo list")
    assert "redeemed 1 of 100 · until " in (await admin.told("withdrawn")).params["text"]
    [row] = await rows_of(store, 42, LedgerKind.PROMO)
    assert (row.amount, row.admin_id, row.source) == (50, ADMIN_ID, "promo:SPRING:42")
    assert await rows_of(store, 43, LedgerKind.PROMO) == []
    await books_balance(store, 42, 43)


async def test_a_code_is_redeemed_once_per_person(tg, bot, store):
    await store.add_promo("GIFT", credits=20, uses=None, expires_at=None, admin_id=ADMIN_ID)
    alice = Person(tg, 42, "Alice")
    alice.say("/promo gift")
    await alice.told("20 credits added")
    alice.say("/promo GIFT")
    await alice.told("You have already redeemed the promo code GIFT.")
    assert len(await rows_of(store, 42, LedgerKind.PROMO)) == 1
    assert (await store.get_user(42)).balance == START + 20
    await books_balance(store, 42)


async def test_twenty_people_at_once_redeem_a_five_use_code_five_times(tg, bot, store):
    await store.add_promo("FIVE", credits=30, uses=5, expires_at=None, admin_id=ADMIN_ID)
    people = [Person(tg, 100 + n, f"P{n}") for n in range(20)]
    for person in people:
        person.say("/promo FIVE")
    answers = await asyncio.gather(*(person.told("FIVE") for person in people))
    texts = [call.params["text"] for call in answers]
    assert sum("30 credits added" in text for text in texts) == 5
    assert sum("has been used up" in text for text in texts) == 15
    [code] = await store.promo_codes(10)
    assert code.used == 5
    credited = [p.id for p in people if await rows_of(store, p.id, LedgerKind.PROMO)]
    assert len(credited) == 5
    await books_balance(store, *(p.id for p in people))


async def test_expired_and_used_up_codes_are_refused_each_with_its_reason(tg, bot, store):
    await store.add_promo("OLD", credits=10, uses=None, expires_at=time.time() - 60,
                          admin_id=ADMIN_ID)
    await store.add_promo("ONE", credits=10, uses=1, expires_at=None, admin_id=ADMIN_ID)
    alice, bob = Person(tg, 42, "Alice"), Person(tg, 43, "Bob")
    alice.say("/promo old")
    await alice.told("The promo code OLD expired on ")
    alice.say("/promo one")
    await alice.told("10 credits added")
    bob.say("/promo one")
    await bob.told("The promo code ONE has been used up")
    bob.say("/promo nothing")
    await bob.told("There is no promo code NOTHING. Check how it is spelled.")
    assert await rows_of(store, 43, LedgerKind.PROMO) == []
    assert len(await rows_of(store, 42, LedgerKind.PROMO)) == 1
    await books_balance(store, 42, 43)


async def test_a_promo_link_redeems_at_start(tg, bot, store):
    await store.add_promo("WELCOME", credits=25, uses=None, expires_at=None, admin_id=ADMIN_ID)
    bob = Person(tg, 43, "Bob")
    greeting = (await started(bob, "promo_welcome"))["text"]
    assert greeting.startswith("🎁 Promo code WELCOME: 25 credits added. Your balance: 125 "
                               "credits.")
    assert "Hi, Bob! Your balance: 125 credits." in greeting
    greeting = (await started(bob, "promo_WELCOME"))["text"]
    assert greeting.startswith("You have already redeemed the promo code WELCOME.")
    greeting = (await started(bob, "promo_NOPE"))["text"]
    assert greeting.startswith("There is no promo code NOPE.")
    assert len(await rows_of(store, 43, LedgerKind.PROMO)) == 1
    await books_balance(store, 43)


async def test_a_code_redeemed_in_a_group_is_answered_privately(tg, bot, store):
    await store.add_promo("GROUPY", credits=5, uses=None, expires_at=None, admin_id=ADMIN_ID)
    alice = Person(tg, 42, "Alice")
    alice.say("/promo@testbot GROUPY", chat=tg.group_chat(GROUP))
    await alice.told("Your balance: 105 credits.")
    line = await alice.told("I sent it to you", chat_id=GROUP)
    assert "credit" not in line.params["text"]


@pytest.mark.parametrize("args, reason", [
    ("", "Say which promo code."),
    ("A" * 5000, "A promo code is 1 to 32 letters, digits, _ or -."),
    ("<b>x</b>", "A promo code is 1 to 32 letters, digits, _ or -."),
    ("one two", "Send one promo code."),
])
async def test_hostile_or_wrong_codes_get_the_usage_and_store_nothing(tg, bot, store, args,
                                                                      reason):
    alice = Person(tg, 42, "Alice")
    alice.say(f"/promo {args}".strip())
    text = (await alice.told("Usage:")).params["text"]
    assert text.startswith(reason)
    assert "Example: <code>/promo SPRING</code>" in text
    assert "<b>x</b>" not in text
    assert await store.promo_codes(10) == []
    assert [r.kind for r in await store.ledger(42)] == [LedgerKind.GRANT]


@pytest.mark.parametrize("args, reason", [
    ("add", "Say the code and its credits"),
    ("add SPRING", "Say the code and its credits"),
    ("add " + "S" * 5000 + " 10", "A promo code is 1 to 32 letters, digits, _ or -."),
    ("add <script>alert(1)</script> 10", "A promo code is 1 to 32 letters, digits, _ or -."),
    ("add list 10", "A promo code cannot be named add, off or list."),
    ("add SPRING 0", "The credits must be a whole number from 1 to 1000000."),
    ("add SPRING 10 -1", "The uses must be a whole number from 0 (no limit) to 1000000."),
    ("add SPRING 10 5 0", "The days must be a whole number from 1 to 3650."),
    ("add SPRING 10 5 ٧", "The days must be a whole number from 1 to 3650."),
    ("add SPRING 10 5 7 9", "Say the code and its credits"),
    ("off", "Name one promo code."),
    ("off NOPE", "There is no promo code NOPE."),
    ("list all", "/promo list takes nothing more."),
])
async def test_admin_forms_used_wrongly_get_the_usage_and_store_nothing(tg, bot, store, args,
                                                                        reason):
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say(f"/promo {args}")
    text = (await admin.told("Usage:")).params["text"]
    assert text.startswith(reason)
    assert "Example: <code>/promo add SPRING 50 100 7</code>" in text
    assert "<script>" not in text
    assert await store.promo_codes(10) == []


@pytest.mark.parametrize("args", ["add SPRING 50", "off SPRING", "list"])
async def test_the_admin_forms_are_for_admins_only(tg, bot, store, args):
    alice = Person(tg, 42, "Alice")
    alice.say(f"/promo {args}")
    await alice.told("This command is for admins only.")
    assert await store.promo_codes(10) == []


async def test_help_and_the_menu_name_invite_and_promo(tg, bot):
    alice, admin = Person(tg, 42, "Alice"), Person(tg, ADMIN_ID, "Admin")
    alice.say("/help")
    text = (await alice.told("What I can do")).params["text"]
    assert "/invite — Your invite link" in text and "/promo — Redeem a promo code" in text
    admin.say("/help")
    text = (await admin.told("For admins")).params["text"]
    assert "/promo — Promo codes: add, off, list" in text
    await until(lambda: bool(tg.calls_of("setMyCommands")))
    everyones = tg.calls_of("setMyCommands")[0].params["commands"]
    assert {"invite", "promo"} <= {c["command"] for c in everyones}
