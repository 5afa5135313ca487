"""The store's side of invites and promo codes, on both engines (real databases, as in
test_store.py): a code's uses and once-per-person decided by the database however many redeem
at once, from several connections; an invite only through the update that registered the
person; the inviter's share with its purchase, once, and held, released or kept with its
refund; the ledger invariant through all of it; migrate-to carrying it over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import IntegrityError, InviteOutcome, Invites, LedgerKind, PromoRefused, Store
from bot.store.transfer import migrate_to
from testkit.databases import ENGINES, database, open_store, postgres_url
from tests.app.test_store import add_user, assert_ledger_invariant, balance

INVITER, INVITEE = 41, 42
ADMIN = 9


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


async def newcomer(store: Store, user_id: int, update_id: int, credits: int = 0) -> None:
    """A person registered by update `update_id` (as the bot's middleware registers them)."""
    assert await store.see_update(update_id, user_id, username=None, first_name="N",
                                  last_name=None, tg_language="en",
                                  starting_credits=credits) is not None


async def invited(store: Store) -> None:
    """INVITEE registered by update 1 through INVITER's link."""
    await add_user(store, INVITER)
    code = await store.invite_code(INVITER)
    await newcomer(store, INVITEE, 1)
    assert await store.join_through_invite(INVITEE, code, update_id=1,
                                           bonus=0) == InviteOutcome.JOINED


async def kinds(store: Store, user_id: int, kind: str) -> list[int]:
    return [row.amount for row in await store.ledger(user_id, 100) if row.kind == kind]


# -- promo codes ------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
async def test_twenty_redemptions_at_once_of_a_five_use_code_credit_five(engine: str,
                                                                         tmp_path: Path) -> None:
    """Twenty people redeem through four connections to one database (four bot instances) at
    the same moment: five are credited, fifteen told it is used up; the count, the redemptions
    and the ledger agree."""
    async with database(engine, tmp_path) as target:
        stores = [await Store.open(target) for _ in range(4)]
        try:
            people = range(100, 120)
            for person in people:
                await add_user(stores[0], person)
            await stores[0].add_promo("FIVE", credits=30, uses=5, expires_at=None,
                                      admin_id=ADMIN)
            results = await asyncio.gather(
                *(stores[n % 4].redeem_promo("five", person) for n, person in enumerate(people)),
                return_exceptions=True)
            refused = [r for r in results if isinstance(r, PromoRefused)]
            assert len(refused) == 15 and {r.reason for r in refused} == {"used_up"}
            assert sum(isinstance(r, tuple) for r in results) == 5
            store = stores[1]
            [code] = await store.promo_codes(10)
            assert code.used == 5
            rows = await store._rows("SELECT count(*) FROM promo_redemptions")
            assert rows[0][0] == 5
            assert sorted([await balance(store, p) for p in people]) == [0] * 15 + [30] * 5
            for person in people:
                await assert_ledger_invariant(store, person)
        finally:
            for opened in stores:
                await opened.close()


async def test_one_person_redeeming_at_once_many_times_gets_it_once(store: Store) -> None:
    await add_user(store, INVITEE)
    await store.add_promo("GIFT", credits=20, uses=3, expires_at=None, admin_id=ADMIN)
    results = await asyncio.gather(*(store.redeem_promo("gift", INVITEE) for _ in range(10)),
                                   return_exceptions=True)
    assert sum(isinstance(r, tuple) for r in results) == 1
    assert {r.reason for r in results if isinstance(r, PromoRefused)} == {"redeemed"}
    assert (await store.promo_codes(1))[0].used == 1  # the refused ones took no use
    assert await kinds(store, INVITEE, LedgerKind.PROMO) == [20]
    await assert_ledger_invariant(store, INVITEE)


async def test_a_code_gives_nothing_withdrawn_expired_used_up_or_unknown(store: Store) -> None:
    await add_user(store, INVITER)
    await add_user(store, INVITEE)
    await store.add_promo("OFF", credits=5, uses=None, expires_at=None, admin_id=ADMIN)
    await store.add_promo("OLD", credits=5, uses=None, expires_at=time.time() - 1,
                          admin_id=ADMIN)
    await store.add_promo("ONE", credits=5, uses=1, expires_at=time.time() + 60, admin_id=ADMIN)
    assert (await store.turn_off_promo("off")).off_at is not None
    off_at = (await store.turn_off_promo("OFF")).off_at
    assert (await store.turn_off_promo("OFF")).off_at == off_at  # off once, when first
    assert await store.turn_off_promo("NONE") is None
    assert await store.add_promo("one", credits=9, uses=None, expires_at=None,
                                 admin_id=ADMIN) is None  # names are case-insensitive
    await store.redeem_promo("ONE", INVITER)
    for code, reason in (("OFF", "off"), ("OLD", "expired"), ("ONE", "used_up"),
                         ("NONE", "unknown")):
        with pytest.raises(PromoRefused) as refused:
            await store.redeem_promo(code, INVITEE)
        assert refused.value.reason == reason
    with pytest.raises(PromoRefused, match="redeemed"):  # theirs before it ran out
        await store.redeem_promo("ONE", INVITER)
    assert [p.used for p in await store.promo_codes(10)] == [1, 0, 0]
    assert await kinds(store, INVITEE, LedgerKind.PROMO) == []
    await assert_ledger_invariant(store, INVITEE)


async def test_the_database_refuses_more_uses_than_a_code_has(store: Store) -> None:
    """The CHECK behind the conditional UPDATE: a write that skipped it is refused too."""
    await store.add_promo("TWO", credits=5, uses=2, expires_at=None, admin_id=ADMIN)
    with pytest.raises(IntegrityError, match=r"(?i)check"):
        async with store._tx() as db:
            await db.execute("UPDATE promo_codes SET used = 3 WHERE code = 'TWO'")


# -- invites ----------------------------------------------------------------------------------

async def test_invite_codes_are_random_stable_and_unique(store: Store) -> None:
    for person in range(10):
        await add_user(store, person)
    codes = [await store.invite_code(person) for person in range(10)]
    assert len(set(codes)) == 10
    assert all(len(code) == 10 and code.isalnum() and code.islower() for code in codes)
    assert [await store.invite_code(person) for person in range(10)] == codes
    assert all(str(person) != code for person, code in enumerate(codes))


async def test_only_the_update_that_registered_a_person_brings_their_inviter(
        store: Store) -> None:
    await add_user(store, INVITER)
    code = await store.invite_code(INVITER)
    await newcomer(store, INVITEE, 10, credits=100)
    await newcomer(store, 43, 12)
    await add_user(store, 44)  # registered by no update of theirs (an admin's reply, a payment)

    assert await store.join_through_invite(INVITEE, "nosuch", update_id=10,
                                           bonus=5) == InviteOutcome.UNKNOWN
    assert await store.join_through_invite(INVITER, code, update_id=10,
                                           bonus=5) == InviteOutcome.OWN
    assert await store.join_through_invite(INVITEE, code, update_id=11,
                                           bonus=5) == InviteOutcome.NOT_NEW
    assert await store.join_through_invite(44, code, update_id=13,
                                           bonus=5) == InviteOutcome.NOT_NEW
    assert await store.join_through_invite(INVITEE, code.upper(), update_id=10,
                                           bonus=5) == InviteOutcome.JOINED
    assert await store.join_through_invite(INVITEE, code, update_id=10,
                                           bonus=5) == InviteOutcome.NOT_NEW  # once
    assert await store.join_through_invite(43, code, update_id=12,
                                           bonus=0) == InviteOutcome.JOINED  # no bonus: no row
    assert await kinds(store, INVITEE, LedgerKind.INVITE_BONUS) == [5]
    assert await kinds(store, 43, LedgerKind.INVITE_BONUS) == []
    assert await balance(store, INVITEE) == 105
    assert (await store.invites(INVITER)).joined == 2
    for person in (INVITER, INVITEE, 43, 44):
        await assert_ledger_invariant(store, person)


# -- the inviter's share ----------------------------------------------------------------------

async def test_the_share_comes_with_the_purchase_once_rounded_down(store: Store) -> None:
    await invited(store)
    await add_user(store, 43)
    assert await store.record_purchase(INVITEE, charge_id="c1", package="99:50", credits=99,
                                       stars=50, referral_percent=15) is not None
    assert await store.record_purchase(INVITEE, charge_id="c1", package="99:50", credits=99,
                                       stars=50, referral_percent=15) is None
    await store.record_purchase(INVITEE, charge_id="c2", package="5:5", credits=5, stars=5,
                                referral_percent=10)  # 0.5: nothing
    await store.record_purchase(INVITEE, charge_id="c3", package="100:50", credits=100,
                                stars=50, referral_percent=0)
    await store.record_purchase(43, charge_id="c4", package="100:50", credits=100, stars=50,
                                referral_percent=50)  # invited by nobody
    assert await kinds(store, INVITER, LedgerKind.REFERRAL) == [14]
    share = await store.referral_of("c1")
    assert share is not None and (share.user_id, share.source) == (INVITER, "referral:c1")
    assert await store.referral_of("c2") is None
    assert await store.invites(INVITER) == Invites(joined=1, bought=1, earned=14)
    for person in (INVITER, INVITEE, 43):
        await assert_ledger_invariant(store, person)


async def test_a_refund_holds_the_share_a_refusal_gives_it_back_a_confirmation_keeps_it(
        store: Store) -> None:
    await invited(store)
    await store.record_purchase(INVITEE, charge_id="c1", package="100:50", credits=100,
                                stars=50, referral_percent=10)
    await store.hold_purchase_refund("c1", admin_id=ADMIN, force=False)
    assert await balance(store, INVITER) == 0
    await store.release_purchase_refund("c1", admin_id=ADMIN)
    assert await balance(store, INVITER) == 10
    await store.hold_purchase_refund("c1", admin_id=ADMIN, force=False)
    await store.hold_purchase_refund("c1", admin_id=ADMIN, force=False)  # held: as it is
    await store.confirm_purchase_refund("c1")
    rows = [(r.kind, r.amount, r.admin_id) for r in await store.ledger(INVITER, 10)]
    assert rows == [(LedgerKind.REFERRAL_REFUND, -10, ADMIN),
                    (LedgerKind.REFERRAL_REFUND_UNDONE, 10, ADMIN),
                    (LedgerKind.REFERRAL_REFUND, -10, ADMIN), (LedgerKind.REFERRAL, 10, None)]
    assert await store.invites(INVITER) == Invites(joined=1, bought=0, earned=0)
    for person in (INVITER, INVITEE):
        await assert_ledger_invariant(store, person)


async def test_a_share_already_spent_is_taken_back_only_as_far_as_the_balance_goes(
        store: Store) -> None:
    """A balance never goes below zero: what the inviter spent of it stays spent (the
    operator's loss), and a refused refund gives back exactly what was taken."""
    await invited(store)
    await store.record_purchase(INVITEE, charge_id="c1", package="500:200", credits=500,
                                stars=200, referral_percent=10)
    await store.topup(INVITER, -46, admin_id=ADMIN, note="spent")  # 4 of the 50 left
    await store.hold_purchase_refund("c1", admin_id=ADMIN, force=False)
    assert await balance(store, INVITER) == 0
    assert await kinds(store, INVITER, LedgerKind.REFERRAL_REFUND) == [-4]
    await store.release_purchase_refund("c1", admin_id=ADMIN)
    assert await balance(store, INVITER) == 4
    await store.topup(INVITER, -4, admin_id=ADMIN, note="spent")
    await store.hold_purchase_refund("c1", admin_id=ADMIN, force=False)  # nothing left to take
    await store.confirm_purchase_refund("c1")
    assert await kinds(store, INVITER, LedgerKind.REFERRAL_REFUND) == [0, -4]
    assert await balance(store, INVITEE) == 0
    for person in (INVITER, INVITEE):
        await assert_ledger_invariant(store, person)


# -- migrate-to ---------------------------------------------------------------------------------

async def test_migrate_to_carries_invites_and_promo_codes_over(tmp_path: Path) -> None:
    source = await Store.open(tmp_path / "bot.sqlite3")
    try:
        await invited(source)
        await source.add_promo("GIFT", credits=20, uses=3, expires_at=None, admin_id=ADMIN)
        await source.redeem_promo("GIFT", INVITEE)
        code = await source.invite_code(INVITER)
    finally:
        await source.close()
    async with postgres_url() as url:
        await migrate_to(tmp_path / "bot.sqlite3", url)
        target = await Store.open(url)
        try:
            assert await target.invite_code(INVITER) == code
            assert (await target.invites(INVITER)).joined == 1
            with pytest.raises(PromoRefused, match="redeemed"):
                await target.redeem_promo("GIFT", INVITEE)
            await target.redeem_promo("GIFT", INVITER)
            assert (await target.promo_codes(1))[0].used == 2
        finally:
            await target.close()
