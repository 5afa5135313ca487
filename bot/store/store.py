"""The store: accounts, the append-only ledger, generations and picker drafts, on SQLite or
PostgreSQL (store.database holds what differs between them).

Every operation that writes runs in its own transaction, so a crash leaves it either done or
not started. Where a decision depends on what a row says, the row is locked first
(`FOR UPDATE`; SQLite runs one transaction at a time), so a check and the write that depends
on it never interleave with another's.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.store import migrations
from bot.store.broadcasts import Broadcasts
from bot.store.database import Connection, Database, IntegrityError, Row, StoreError
from bot.store.models import (
    OPEN_STATES,
    SENDING,
    UNRECORDED_FAILURES,
    WITHOUT_RESULT,
    DeliveredFile,
    Draft,
    Generation,
    GenerationState,
    InviteOutcome,
    Invites,
    LedgerKind,
    LedgerRow,
    ModelOverride,
    PromoCode,
    Prompt,
    Purchase,
    StartLimits,
    Stats,
    User,
    row_to,
)
from bot.store.sqlite import SqliteDatabase

MINUTE = 60.0
# An instance not seen for this long is gone (killed, cut off): its generations pass to others.
# Every instance refreshes its row several times within it (services.presence.HEARTBEAT).
INSTANCE_TIMEOUT = 30.0
# Pickers a person may have open (or cancelled) at once; older ones are forgotten.
DRAFTS_PER_USER = 100
# What instances tell each other (NOTIFY: Database.notify).
WORK = "work"
INSTANCES = "instances"
# Invite codes: random (not the Telegram id, which a link passed around would give away, and
# from which anyone could make links in someone else's name), lower case, so a code typed in
# another case still works. 36**10 codes: a clash (refused by the unique index) is retried.
INVITE_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
INVITE_CODE_LENGTH = 10
INVITE_CODE_TRIES = 5


class InsufficientCredits(StoreError):
    def __init__(self, price: int, balance: int) -> None:
        super().__init__(f"price {price} > balance {balance}")
        self.price = price
        self.balance = balance


class AlreadyRefunded(StoreError):
    def __init__(self, purchase: Purchase) -> None:
        super().__init__(f"purchase {purchase.charge_id} was refunded")
        self.purchase = purchase


class CreditsSpent(StoreError):
    """A purchase's credits are no longer all on the balance (a refund then needs `force`)."""

    def __init__(self, purchase: Purchase, balance: int) -> None:
        super().__init__(f"balance {balance} < {purchase.credits}")
        self.purchase = purchase
        self.balance = balance


class CreditsReserved(CreditsSpent):
    """Part of the missing credits are held by open generations, whose refunds may return them."""

    def __init__(self, purchase: Purchase, balance: int, reserved: int) -> None:
        super().__init__(purchase, balance)
        self.reserved = reserved


class DraftClosed(StoreError):
    """The draft was already confirmed or cancelled (a second press, a repeated update)."""


class DraftChanged(StoreError):
    """The draft changed after the keyboard that was pressed was drawn: nothing is charged."""


class FollowUpOpen(StoreError):
    """The same follow-up of this result is already under way (a double tap): nothing charged."""


class PromoRefused(StoreError):
    """A promo code that gives nothing to this person: `reason` is "unknown", "redeemed" (by
    them before), "off", "expired" or "used_up"; `promo` the code's row (None if unknown)."""

    def __init__(self, reason: str, promo: PromoCode | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.promo = promo


class LimitReached(StoreError):
    """The user has `limit` generations open (`which` = "open") or started this minute ("rate")."""

    def __init__(self, which: str, limit: int) -> None:
        super().__init__(f"{which} limit {limit}")
        self.which = which
        self.limit = limit


class Store:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._tx = db.transaction
        self._rows = db.fetch
        # Who this process is among the instances sharing the database: the owner it writes
        # on the generations it works on (its pid first, for the operator who looks).
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # A generation this instance may work on: nobody's, or a gone instance's.
        self._free = f"(owner IS NULL OR owner NOT IN ({db.live_instances}))"
        self._on_work: list[Callable[[], None]] = []
        self.broadcasts = Broadcasts(db, self.instance, self._owning)
        # The overrides last read, with their version (model_overrides).
        self._overrides: tuple[str | None, dict[str, ModelOverride]] | None = None

    @classmethod
    async def open(cls, target: Path | str, *, pool_size: int = 10) -> Store:
        """`target`: a SQLite file, or a `postgresql://` URL (with a pool of `pool_size`
        connections)."""
        db: Database
        if str(target).startswith(("postgresql://", "postgres://")):
            from bot.store.postgres import PostgresDatabase  # noqa: PLC0415 -- only for PostgreSQL

            db = await PostgresDatabase.open(str(target), pool_size=pool_size)
            await db.migrate(migrations.POSTGRES)
        else:
            db = await SqliteDatabase.open(target)
            await db.migrate(migrations.SQLITE)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    @property
    def database(self) -> Database:
        """The engine, for the store's modules that keep their own tables (store/daily.py)."""
        return self._db

    # -- instances -------------------------------------------------------------

    def _owning(self, now: float) -> dict[str, Any]:
        """The parameters of _free."""
        return {"me": self.instance, "alive_after": now - INSTANCE_TIMEOUT}

    async def heartbeat(self, now: float) -> None:
        """This instance is alive. On SQLite it is the only one (the file is locked to one
        process): every other row is a past run's, and goes. The first beat is notified: the
        others recount at once (their part of Kie's budget) rather than at their next beat."""
        await self._db.open_session(self.instance)
        async with self._tx() as db:
            if not self._db.shared:
                await db.execute("DELETE FROM instances WHERE id != ?", (self.instance,))
            new = await db.execute(
                "INSERT INTO instances (id, started_at, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING", (self.instance, now, now)) == 1
            if not new:
                await db.execute("UPDATE instances SET seen_at = ? WHERE id = ?",
                                 (now, self.instance))
        if new:
            await self._db.notify(INSTANCES)

    async def advisory_lock(self, name: str) -> asyncio.Event:
        """Wait until this instance holds the advisory lock `name` among those sharing the
        database; the event is set if it loses it (see Database.advisory_lock)."""
        await self._db.open_session(self.instance)
        return await self._db.advisory_lock(name)

    def listen_for_work(self, callback: Callable[[], None]) -> None:
        """Call `callback` when an instance sharing the database notifies new work due (a task
        submitted, a callback heard), so that whoever has room takes it; and when this one
        makes work due that no other step of its own wakes it for (requeue_undeliverable)."""
        self._db.listen(WORK, callback)
        self._on_work.append(callback)

    def listen_for_instances(self, callback: Callable[[], None]) -> None:
        """Call `callback` when an instance sharing the database starts or stops."""
        self._db.listen(INSTANCES, callback)

    async def retire(self) -> None:
        """This instance stops: what it owns passes to the others at once."""
        async with self._tx() as db:
            await db.execute("DELETE FROM instances WHERE id = ?", (self.instance,))
        await self._db.notify(INSTANCES)

    async def live_instances(self, now: float) -> int:
        rows = await self._rows(f"SELECT count(*) FROM ({self._db.live_instances}) AS live",
                                self._owning(now))
        return int(rows[0][0])

    # -- users -----------------------------------------------------------------

    # A known user's row is rewritten only when what Telegram says of them changed, when they
    # come back after blocking the bot, or when it was last written this long ago: `updated_at`
    # is when they were last seen, to this precision (find_user prefers the holder of a
    # @username seen last). Every update reads its sender; few need a write.
    SEEN_PRECISION = 3600.0
    # With the parameters of _profile: the stored row says what this update says of the user.
    _USER_IS_CURRENT = (
        "(username IS NOT DISTINCT FROM :username AND first_name = :first_name"
        " AND last_name IS NOT DISTINCT FROM :last_name"
        " AND tg_language IS NOT DISTINCT FROM :tg_language AND blocked = 0"
        " AND updated_at > :seen_after)")
    _USER_REFRESH = (
        "UPDATE users SET username = :username, first_name = :first_name,"
        " last_name = :last_name, tg_language = :tg_language, blocked = 0, updated_at = :now"
        " WHERE id = :id RETURNING *")

    async def upsert_user(self, user_id: int, *, username: str | None, first_name: str,
                          last_name: str | None, tg_language: str | None,
                          starting_credits: int) -> tuple[User, bool]:
        """Register or refresh a user; a new one gets `starting_credits` once. True if new.
        Reads first: a known user whose row is current (SEEN_PRECISION) is not written."""
        profile = self._profile(user_id, username, first_name, last_name, tg_language)
        rows = await self._rows(
            f"SELECT *, {self._USER_IS_CURRENT} AS current FROM users WHERE id = :id", profile)
        return await self._refresh_user(rows[0] if rows else None, profile, starting_credits)

    @classmethod
    def _profile(cls, user_id: int, username: str | None, first_name: str,
                 last_name: str | None, tg_language: str | None, *,
                 update_id: int | None = None) -> dict[str, Any]:
        """`update_id`: the update that brings the user (recorded as their first if it
        registers them: see join_through_invite)."""
        now = time.time()
        return {"id": user_id, "username": username, "first_name": first_name,
                "last_name": last_name, "tg_language": tg_language, "now": now,
                "seen_after": now - cls.SEEN_PRECISION, "update": update_id}

    async def _refresh_user(self, stored: Row | None, profile: dict[str, Any],
                            starting_credits: int) -> tuple[User, bool]:
        """upsert_user once the user's row was read: `stored` (with its `current` flag), None
        when the user is unknown."""
        if stored is not None and stored["current"]:
            return row_to(User, stored), False
        if stored is not None:  # users are never deleted: one statement, its own transaction
            rows = await self._rows(self._USER_REFRESH, profile)
            if rows:
                return row_to(User, rows[0]), False
        async with self._tx() as db:
            created = await db.execute(
                "INSERT INTO users (id, first_name, created_at, updated_at, first_update)"
                " VALUES (:id, :first_name, :now, :now, :update) ON CONFLICT (id) DO NOTHING",
                profile) == 1  # else a registration that raced this one granted
            if created and starting_credits > 0:
                await _apply(db, profile["id"], starting_credits, LedgerKind.GRANT,
                             note="starting credits")
            refreshed = await db.fetch(self._USER_REFRESH, profile)
            return row_to(User, refreshed[0]), created

    async def get_user(self, user_id: int) -> User | None:
        rows = await self._rows("SELECT * FROM users WHERE id = ?", (user_id,))
        return row_to(User, rows[0]) if rows else None

    async def find_user(self, username: str) -> User | None:
        """By @username, case-insensitive; the most recently seen holder wins."""
        rows = await self._rows(
            "SELECT * FROM users WHERE lower(username) = lower(CAST(? AS TEXT))"
            " ORDER BY updated_at DESC LIMIT 1",
            (username.lstrip("@"),))
        return row_to(User, rows[0]) if rows else None

    async def set_blocked(self, user_id: int, blocked: bool = True) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE users SET blocked = ? WHERE id = ?", (int(blocked), user_id))

    async def set_banned(self, user_id: int, banned: bool = True) -> bool:
        """Ban or unban; False when the user was already so (or is unknown)."""
        async with self._tx() as db:
            return await db.execute("UPDATE users SET banned = ? WHERE id = ? AND banned != ?",
                                    (int(banned), user_id, int(banned))) == 1

    async def set_language(self, user_id: int, language: str | None) -> None:
        """The language the user chose in the bot; None follows Telegram's again."""
        async with self._tx() as db:
            await db.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))

    # -- chats and updates -----------------------------------------------------

    async def set_chat_unreachable(self, chat_id: int, unreachable: bool = True) -> None:
        """The bot was removed from this group (the people in it may still be reachable)."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO chats (id, unreachable, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET unreachable = excluded.unreachable,"
                " updated_at = excluded.updated_at", (chat_id, int(unreachable), time.time()))

    async def migrate_chat(self, old_id: int, new_id: int) -> int:
        """A group became a supergroup: what is still to be shown there moves to the new id.
        Returns how many generations moved."""
        now = time.time()
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO chats (id, migrated_to, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET migrated_to = excluded.migrated_to,"
                " updated_at = excluded.updated_at", (old_id, new_id, now))
            await db.execute("UPDATE drafts SET chat_id = ? WHERE chat_id = ? AND state = 'open'",
                             (new_id, old_id))
            return await db.execute(
                f"UPDATE generations SET chat_id = ? WHERE chat_id = ? AND state IN {_IN_OPEN}",
                (new_id, old_id, *OPEN_STATES))

    async def first_sight_of_update(self, update_id: int) -> bool:
        """Record a Telegram update id; False when it was handled before (a repeated update).
        One statement, its own transaction."""
        rows = await self._rows("INSERT INTO updates (id, seen_at) VALUES (?, ?)"
                                " ON CONFLICT (id) DO NOTHING RETURNING id", (update_id, time.time()))
        return bool(rows)

    # Records an update id and reads its sender's row (all NULL if unknown), with the `current`
    # flag of upsert_user, in one statement; no row when the update was seen before.
    _SEE_UPDATE = (
        "INSERT INTO updates (id, seen_at) VALUES (:update, :now) ON CONFLICT (id) DO NOTHING"
        " RETURNING " + ", ".join(f"(SELECT {column} FROM users WHERE id = :id) AS {column}"
                                  for column in User.__dataclass_fields__)
        + f", (SELECT {_USER_IS_CURRENT} FROM users WHERE id = :id) AS current")

    async def see_update(self, update_id: int | None, user_id: int, *, username: str | None,
                         first_name: str, last_name: str | None, tg_language: str | None,
                         starting_credits: int) -> User | None:
        """first_sight_of_update and upsert_user of its sender, for an update a person sent:
        None when the update was seen before, else the user, registered or refreshed. Usually
        one statement: it records the update and reads the user, and a known user whose row is
        current needs nothing more. `update_id` None: not recorded, only upsert_user."""
        if update_id is None:
            user, _ = await self.upsert_user(
                user_id, username=username, first_name=first_name, last_name=last_name,
                tg_language=tg_language, starting_credits=starting_credits)
            return user
        profile = self._profile(user_id, username, first_name, last_name, tg_language,
                                update_id=update_id)
        rows = await self._rows(self._SEE_UPDATE, profile)
        if not rows:
            return None
        stored = rows[0] if rows[0]["id"] is not None else None
        user, _ = await self._refresh_user(stored, profile, starting_credits)
        return user

    async def purge(self, *, drafts_before: float, updates_before: float,
                    readings_before: float | None = None) -> None:
        """Forget picker drafts, prompts, update ids and Kie balance readings (store/daily.py)
        too old to matter."""
        async with self._tx() as db:
            await db.execute("DELETE FROM drafts WHERE created_at < ?", (drafts_before,))
            await db.execute("DELETE FROM prompts WHERE created_at < ?", (drafts_before,))
            await db.execute("DELETE FROM updates WHERE seen_at < ?", (updates_before,))
            if readings_before is not None:
                await db.execute("DELETE FROM kie_readings WHERE read_at < ?", (readings_before,))

    # -- ledger ----------------------------------------------------------------

    async def topup(self, user_id: int, amount: int, *, admin_id: int, note: str | None = None,
                    source: str | None = None) -> LedgerRow | None:
        """An admin's credit (or debit). `source` names what asked for it (the command message):
        asked twice, it is applied once, and the second time returns None."""
        async with self._tx(durable=True) as db:
            # Two tries of one source wait for each other here: the second finds the first's row.
            await _user(db, user_id, lock=True)
            if source is not None and await db.fetch(
                    "SELECT 1 FROM ledger WHERE source = ?", (source,)):
                return None
            return await _apply(db, user_id, amount, LedgerKind.TOPUP, admin_id=admin_id,
                                note=note, source=source)

    async def ledger(self, user_id: int, limit: int = 10) -> list[LedgerRow]:
        rows = await self._rows(
            "SELECT * FROM ledger WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit))
        return [row_to(LedgerRow, row) for row in rows]

    async def ledger_sum(self, user_id: int) -> int:
        rows = await self._rows(
            "SELECT coalesce(sum(amount), 0) FROM ledger WHERE user_id = ?", (user_id,))
        return int(rows[0][0])

    # -- purchases (Telegram Stars) --------------------------------------------

    async def record_purchase(self, user_id: int, *, charge_id: str, package: str, credits: int,
                              stars: int, referral_percent: int = 0) -> LedgerRow | None:
        """Credit a paid package, once per Telegram charge id: None when it was already. The
        buyer's inviter, if any, earns `referral_percent` % of the credits (rounded down) in
        the same transaction: one `referral` row keyed by the charge, so once too.

        Locks: the buyer's row, then the inviter's. An inviter is always someone who had
        started before the person they invited (join_through_invite), so two purchases lock
        along that order and never wait for each other in a circle."""
        async with self._tx(durable=True) as db:
            if await db.execute(
                    "INSERT INTO purchases (charge_id, user_id, package, credits, stars,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (charge_id) DO NOTHING",
                    (charge_id, user_id, package, credits, stars, time.time())) != 1:
                return None
            row = await _apply(db, user_id, credits, LedgerKind.PURCHASE,
                               note=f"{stars} stars", source=f"purchase:{charge_id}")
            share = credits * referral_percent // 100
            inviter = await _scalar(db, "SELECT invited_by FROM users WHERE id = ?", (user_id,))
            if inviter and share > 0:
                await _apply(db, inviter, share, LedgerKind.REFERRAL,
                             note=f"{referral_percent}% of a purchase by {user_id}",
                             source=_referral_source(charge_id))
            return row

    async def referral_of(self, charge_id: str) -> LedgerRow | None:
        """The inviter's share of this purchase, if one was credited."""
        rows = await self._rows("SELECT * FROM ledger WHERE source = ?",
                                (_referral_source(charge_id),))
        return row_to(LedgerRow, rows[0]) if rows else None

    async def get_purchase(self, charge_id: str) -> Purchase | None:
        rows = await self._rows("SELECT * FROM purchases WHERE charge_id = ?", (charge_id,))
        return row_to(Purchase, rows[0]) if rows else None

    async def purchases_of(self, user_id: int, limit: int = 10) -> list[Purchase]:
        rows = await self._rows("SELECT * FROM purchases WHERE user_id = ?"
                                " ORDER BY created_at DESC LIMIT ?", (user_id, limit))
        return [row_to(Purchase, row) for row in rows]

    async def hold_purchase_refund(self, charge_id: str, *, admin_id: int,
                                   force: bool) -> Purchase:
        """First step of a Stars refund: take the purchase's credits back, in one locked
        transaction, before Telegram is asked (so nothing bought meanwhile spends them). Returns
        the purchase, now holding `taken_back`. Without `force` all of the credits must still
        be there (CreditsSpent); with it, what is left is taken, unless credits are reserved by
        open generations (CreditsReserved: their refunds would land after this one and stay).
        A refund already held (its Telegram answer never came) is returned as it is. Raises
        LookupError, AlreadyRefunded."""
        async with self._tx(durable=True) as db:
            purchase = await _purchase(db, charge_id)
            if purchase.refunded_at is not None:
                raise AlreadyRefunded(purchase)
            balance = (await _user(db, purchase.user_id, lock=True)).balance
            if purchase.taken_back is not None:
                return purchase
            if balance < purchase.credits:
                if not force:
                    raise CreditsSpent(purchase, balance)
                reserved = await _reserved(db, purchase.user_id)
                if reserved:
                    raise CreditsReserved(purchase, balance, reserved)
            taken = min(balance, purchase.credits)
            tries = purchase.refund_tries
            await db.execute("UPDATE purchases SET taken_back = ?, refund_tries = ? WHERE charge_id = ?",
                             (taken, tries + 1, charge_id))
            await _apply(db, purchase.user_id, -taken, LedgerKind.PURCHASE_REFUND,
                         admin_id=admin_id, note=f"{purchase.stars} stars",
                         source=_refund_source("purchase_refund", charge_id, tries))
            await _hold_referral(db, charge_id, tries, admin_id)
            return replace(purchase, taken_back=taken, refund_tries=tries + 1)

    async def confirm_purchase_refund(self, charge_id: str) -> Purchase | None:
        """Telegram says the Stars are back: the held refund is done. None if none was held
        (another command settled it meanwhile)."""
        rows = await self._rows(
            "UPDATE purchases SET refunded_at = ? WHERE charge_id = ? AND refunded_at IS NULL"
            " AND taken_back IS NOT NULL RETURNING *", (time.time(), charge_id))
        return row_to(Purchase, rows[0]) if rows else None

    async def release_purchase_refund(self, charge_id: str, *, admin_id: int) -> LedgerRow | None:
        """Telegram refused the refund: the held credits go back to the buyer, as a ledger row.
        None if nothing was held."""
        async with self._tx(durable=True) as db:
            purchase = await _purchase(db, charge_id)
            if purchase.refunded_at is not None or purchase.taken_back is None:
                return None
            await db.execute("UPDATE purchases SET taken_back = NULL WHERE charge_id = ?",
                             (charge_id,))
            attempt = purchase.refund_tries - 1
            row = await _apply(db, purchase.user_id, purchase.taken_back,
                               LedgerKind.PURCHASE_REFUND_UNDONE, admin_id=admin_id,
                               note="Telegram refused the refund",
                               source=_refund_source("purchase_refund_undone", charge_id,
                                                     attempt))
            await _release_referral(db, charge_id, attempt, admin_id)  # buyer, then inviter
            return row

    # -- invites ---------------------------------------------------------------

    async def invite_code(self, user_id: int) -> str:
        """The person's invite code: made at the first ask, the same ever after."""
        rows = await self._rows("SELECT invite_code FROM users WHERE id = ?", (user_id,))
        if rows and rows[0][0]:
            return str(rows[0][0])
        for _ in range(INVITE_CODE_TRIES):
            code = "".join(secrets.choice(INVITE_CODE_ALPHABET)
                           for _ in range(INVITE_CODE_LENGTH))
            try:
                rows = await self._rows(
                    "UPDATE users SET invite_code = coalesce(invite_code, ?) WHERE id = ?"
                    " RETURNING invite_code", (code, user_id))
            except IntegrityError:  # someone else's code already: draw again
                continue
            if not rows:
                raise LookupError(f"no user {user_id}")
            return str(rows[0][0])
        raise StoreError(f"no free invite code in {INVITE_CODE_TRIES} tries")

    async def join_through_invite(self, user_id: int, code: str, *, update_id: int,
                                  bonus: int) -> InviteOutcome:
        """`/start ref_<code>` in update `update_id`: the person is recorded as invited by the
        code's owner, and given `bonus` credits (an `invite_bonus` row, once per person), only
        if that very update registered them (see_update): someone who had started before is
        nobody's invitee, and a second /start changes nothing."""
        async with self._tx() as db:
            rows = await db.fetch("SELECT id FROM users WHERE invite_code = ?", (code.lower(),))
            if not rows:
                return InviteOutcome.UNKNOWN
            inviter = int(rows[0][0])
            if inviter == user_id:
                return InviteOutcome.OWN
            if await db.execute(
                    "UPDATE users SET invited_by = ? WHERE id = ? AND invited_by IS NULL"
                    " AND first_update = ?", (inviter, user_id, update_id)) != 1:
                return InviteOutcome.NOT_NEW
            if bonus > 0:
                await _apply(db, user_id, bonus, LedgerKind.INVITE_BONUS,
                             note=f"invited by {inviter}", source=f"invite_bonus:{user_id}")
            return InviteOutcome.JOINED

    async def invites(self, user_id: int) -> Invites:
        async with self._tx() as db:
            joined = await _scalar(db, "SELECT count(*) FROM users WHERE invited_by = ?",
                                   (user_id,))
            bought = await _scalar(
                db, "SELECT count(DISTINCT p.user_id) FROM purchases p JOIN users u"
                    " ON u.id = p.user_id WHERE u.invited_by = ? AND p.refunded_at IS NULL",
                (user_id,))
            earned = await _scalar(
                db, "SELECT coalesce(sum(amount), 0) FROM ledger WHERE user_id = ?"
                    " AND kind IN (?, ?, ?)",
                (user_id, LedgerKind.REFERRAL, LedgerKind.REFERRAL_REFUND,
                 LedgerKind.REFERRAL_REFUND_UNDONE))
        return Invites(joined=joined, bought=bought, earned=earned)

    # -- promo codes -----------------------------------------------------------

    async def add_promo(self, code: str, *, credits: int, uses: int | None,
                        expires_at: float | None, admin_id: int) -> PromoCode | None:
        """A new promo code; None when one of that name exists (turned off or not)."""
        rows = await self._rows(
            "INSERT INTO promo_codes (code, credits, uses, expires_at, admin_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING RETURNING *",
            (code.upper(), credits, uses, expires_at, admin_id, time.time()))
        return row_to(PromoCode, rows[0]) if rows else None

    async def turn_off_promo(self, code: str) -> PromoCode | None:
        """No more redemptions of this code; None when there is no such code. A code turned
        off before stays as it was."""
        rows = await self._rows(
            "UPDATE promo_codes SET off_at = coalesce(off_at, ?) WHERE code = ? RETURNING *",
            (time.time(), code.upper()))
        return row_to(PromoCode, rows[0]) if rows else None

    async def promo_codes(self, limit: int) -> list[PromoCode]:
        """The newest `limit` codes, newest first."""
        rows = await self._rows("SELECT * FROM promo_codes ORDER BY created_at DESC, code"
                                " LIMIT ?", (limit,))
        return [row_to(PromoCode, row) for row in rows]

    async def redeem_promo(self, code: str, user_id: int) -> tuple[PromoCode, LedgerRow]:
        """The code's credits for this person: once per person, while it is on, unexpired and
        not used up. One transaction takes a use (a conditional UPDATE: however many redeem at
        the same moment, the database lets through only what `uses` allows, and its CHECK
        would refuse one more), records the redemption (its key: once per person) and writes
        the `promo` row. Raises PromoRefused."""
        code, now = code.upper(), time.time()
        async with self._tx() as db:
            rows = await db.fetch(
                "UPDATE promo_codes SET used = used + 1 WHERE code = ? AND off_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > ?) AND (uses IS NULL OR used < uses)"
                " RETURNING *", (code, now))
            if not rows:
                raise await _promo_refusal(db, code, user_id)
            promo = row_to(PromoCode, rows[0])
            if await db.execute(
                    "INSERT INTO promo_redemptions (code, user_id, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (code, user_id) DO NOTHING", (code, user_id, now)) != 1:
                raise PromoRefused("redeemed", promo)  # the use taken above is rolled back
            row = await _apply(db, user_id, promo.credits, LedgerKind.PROMO,
                               admin_id=promo.admin_id, note=code,
                               source=f"promo:{code}:{user_id}")
            return promo, row

    # -- admins' catalog overrides and flags -----------------------------------

    # Every change of model_overrides writes a new one, in its transaction: what was read at one
    # version is what the table holds while the flag says that version (a statement that reads
    # it alongside what it reads anyway tells whether the overrides kept are current).
    OFFER_VERSION = "offer_version"
    _OFFER_VERSION = f"(SELECT value FROM flags WHERE name = '{OFFER_VERSION}')"

    async def model_overrides(self) -> dict[str, ModelOverride]:
        """The admins' overrides, read now (and kept, with their version)."""
        rows = await self._rows(
            f"SELECT {self._OFFER_VERSION} AS version, o.model, o.price, o.hidden_by"
            " FROM (SELECT 1) AS one LEFT JOIN model_overrides AS o ON TRUE")
        overrides = {row["model"]: row_to(ModelOverride, row) for row in rows if row["model"]}
        self._overrides = (rows[0]["version"], overrides)
        return overrides

    async def draft_and_overrides(self, draft_id: int) -> tuple[Draft | None,
                                                                dict[str, ModelOverride]]:
        """get_draft and model_overrides, in one statement as a rule: the draft is read with
        the overrides' version, and the overrides kept from the last read serve while it holds."""
        rows = await self._rows(f"SELECT *, {self._OFFER_VERSION} AS offer_version"
                                " FROM drafts WHERE id = ?", (draft_id,))
        kept = self._overrides
        if rows and kept is not None and kept[0] == rows[0]["offer_version"]:
            return row_to(Draft, rows[0]), kept[1]
        return (row_to(Draft, rows[0]) if rows else None), await self.model_overrides()

    async def set_model_price(self, model: str, price: int | None) -> None:
        """Override a model's base price; None restores the catalog's."""
        await self._override(model, "price", price)

    async def set_model_hidden(self, model: str, hidden_by: str | None) -> bool:
        """Hide a model ("admin", or "kie" when Kie said it is disabled) or show it again (None).
        False when nothing changed."""
        return await self._override(model, "hidden_by", hidden_by)

    async def _override(self, model: str, column: str, value: object) -> bool:
        async with self._tx() as db:
            changed = await db.execute(
                f"INSERT INTO model_overrides (model, {column}, updated_at) VALUES (?, ?, ?)"
                f" ON CONFLICT (model) DO UPDATE SET {column} = excluded.{column},"
                f" updated_at = excluded.updated_at"
                f" WHERE model_overrides.{column} IS DISTINCT FROM excluded.{column}",
                (model, value, time.time())) == 1
            if changed:
                await _set_flag(db, self.OFFER_VERSION, uuid.uuid4().hex)
            return changed

    async def get_flag(self, name: str) -> str | None:
        rows = await self._rows("SELECT value FROM flags WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    async def set_flag(self, name: str, value: str | None) -> None:
        async with self._tx() as db:
            if value is None:
                await db.execute("DELETE FROM flags WHERE name = ?", (name,))
            else:
                await _set_flag(db, name, value)

    # -- reports -----------------------------------------------------------------

    async def stats(self, *, active_since: float) -> Stats:
        async with self._tx() as db:
            users = await _scalar(db, "SELECT count(*) FROM users")
            active = await _scalar(db, "SELECT count(DISTINCT user_id) FROM generations"
                                       " WHERE created_at > ?", (active_since,))
            by_state = await _counts(db, "SELECT state, count(*) FROM generations GROUP BY state")
            by_model = await _counts(db, "SELECT model, count(*) FROM generations GROUP BY model")
            ledger = await _counts(db, "SELECT kind, sum(amount) FROM ledger GROUP BY kind")
            stars = await _scalar(db, "SELECT coalesce(sum(stars), 0) FROM purchases"
                                      " WHERE refunded_at IS NULL")
            purchases = await _scalar(db, "SELECT count(*) FROM purchases")
        return Stats(users=users, active_day=active, by_state=by_state, by_model=by_model,
                     ledger=ledger, stars=stars, purchases=purchases)

    # -- drafts ----------------------------------------------------------------

    async def create_draft(self, *, user_id: int, chat_id: int, request_message_id: int | None,
                           kind: str, prompt: str, model: str | None = None,
                           options: dict[str, str] | None = None,
                           picture: str | None = None) -> Draft:
        async with self._tx() as db:
            rows = await db.fetch(
                "INSERT INTO drafts (user_id, chat_id, request_message_id, kind, prompt, model,"
                " options, picture, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (user_id, chat_id, request_message_id, kind, prompt, model,
                 json.dumps(options or {}), picture, time.time()))
            # A person's pickers not confirmed are bounded: the oldest past the cap go (their
            # presses say the menu is out of date), not kept for DRAFT_LIFETIME each.
            await db.execute(
                "DELETE FROM drafts WHERE user_id = ? AND state != 'confirmed' AND id NOT IN"
                " (SELECT id FROM drafts WHERE user_id = ? AND state != 'confirmed'"
                " ORDER BY id DESC LIMIT ?)", (user_id, user_id, DRAFTS_PER_USER))
            return row_to(Draft, rows[0])

    async def get_draft(self, draft_id: int) -> Draft | None:
        rows = await self._rows("SELECT * FROM drafts WHERE id = ?", (draft_id,))
        return row_to(Draft, rows[0]) if rows else None

    async def update_draft(self, draft_id: int, *, model: str | None,
                           options: dict[str, str]) -> Draft:
        rows = await self._rows(
            "UPDATE drafts SET model = ?, options = ?, revision = revision + 1"
            " WHERE id = ? AND state = 'open' RETURNING *",
            (model, json.dumps(options), draft_id))
        if not rows:
            raise DraftClosed(draft_id)
        return row_to(Draft, rows[0])

    async def set_picker_message(self, draft_id: int, message_id: int) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE drafts SET picker_message_id = ? WHERE id = ?",
                             (message_id, draft_id))

    async def cancel_draft(self, draft_id: int) -> None:
        async with self._tx() as db:
            if await db.execute("UPDATE drafts SET state = 'cancelled'"
                                " WHERE id = ? AND state = 'open'", (draft_id,)) != 1:
                raise DraftClosed(draft_id)

    async def mark_short(self, draft_id: int) -> None:
        """The balance could not pay this draft's ✅: a purchase offers it again."""
        async with self._tx() as db:
            await db.execute("UPDATE drafts SET short_at = ? WHERE id = ?", (time.time(), draft_id))

    async def short_draft(self, user_id: int, *, since: float) -> Draft | None:
        """The person's newest open draft created after `since` whose ✅ found too few credits,
        taken (marked no longer short): one purchase offers it once."""
        async with self._tx() as db:
            rows = await db.fetch(
                "UPDATE drafts SET short_at = NULL WHERE id = (SELECT id FROM drafts"
                " WHERE user_id = ? AND state = 'open' AND short_at IS NOT NULL"
                " AND created_at > ? ORDER BY id DESC LIMIT 1) RETURNING *", (user_id, since))
            return row_to(Draft, rows[0]) if rows else None

    async def choice(self, user_id: int, kind: str) -> tuple[str, dict[str, str]] | None:
        """The model and options this person last paid for in this kind."""
        rows = await self._rows("SELECT model, options FROM choices WHERE user_id = ? AND kind = ?",
                                (user_id, kind))
        return (rows[0]["model"], json.loads(rows[0]["options"])) if rows else None

    # -- prompts ---------------------------------------------------------------

    async def create_prompt(self, *, user_id: int, chat_id: int, message_id: int | None,
                            text: str | None = None, picture: str | None = None,
                            kind: str | None = None) -> Prompt:
        async with self._tx() as db:
            rows = await db.fetch(
                "INSERT INTO prompts (user_id, chat_id, message_id, kind, text, picture,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (user_id, chat_id, message_id, kind, text, picture, time.time()))
            # Bounded like the drafts: a flood of texts keeps only the newest.
            await db.execute(
                "DELETE FROM prompts WHERE user_id = ? AND id NOT IN (SELECT id FROM prompts"
                " WHERE user_id = ? ORDER BY id DESC LIMIT ?)",
                (user_id, user_id, DRAFTS_PER_USER))
            return row_to(Prompt, rows[0])

    async def get_prompt(self, prompt_id: int) -> Prompt | None:
        rows = await self._rows("SELECT * FROM prompts WHERE id = ?", (prompt_id,))
        return row_to(Prompt, rows[0]) if rows else None

    async def set_question(self, prompt_id: int, *, kind: str, question_id: int) -> None:
        """The bot asked (ForceReply, message `question_id`) for this prompt's words."""
        async with self._tx() as db:
            await db.execute("UPDATE prompts SET kind = ?, question_id = ? WHERE id = ?",
                             (kind, question_id, prompt_id))

    async def answered_prompt(self, chat_id: int, question_id: int) -> Prompt | None:
        """The prompt whose question is message `question_id` of this chat, if any."""
        rows = await self._rows("SELECT * FROM prompts WHERE chat_id = ? AND question_id = ?"
                                " ORDER BY id DESC LIMIT 1", (chat_id, question_id))
        return row_to(Prompt, rows[0]) if rows else None

    # -- generations -----------------------------------------------------------

    async def start_generation(self, draft_id: int, *, revision: int, input: dict[str, Any],
                               price: int, deadline_at: float,
                               limits: StartLimits | None = None) -> Generation:
        """Close the draft, charge its owner and record the generation: all or nothing.
        `revision` is the draft's revision the confirm button was drawn from; `limits` (None:
        unlimited) are checked here, so concurrent presses cannot both pass them."""
        now = time.time()
        async with self._tx() as db:
            draft = await _draft(db, draft_id, lock=True)
            if draft.state == "open" and draft.revision != revision:
                raise DraftChanged(draft_id)
            if limits is not None:  # the owner's other starts wait here until this one ends
                await _user(db, draft.user_id, lock=True)
                await _check_limits(db, draft.user_id, limits, now)
            if await db.execute("UPDATE drafts SET state = 'confirmed'"
                                " WHERE id = ? AND state = 'open'", (draft_id,)) != 1 \
                    or draft.model is None:
                raise DraftClosed(draft_id)
            rows = await db.fetch(
                "INSERT INTO generations (user_id, chat_id, request_message_id, status_message_id,"
                " draft_id, kind, model, prompt, options, input, picture, price, state,"
                " deadline_at, created_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (draft.user_id, draft.chat_id, draft.request_message_id, draft.picker_message_id,
                 draft.id, draft.kind, draft.model, draft.prompt, json.dumps(draft.options),
                 json.dumps(input), draft.picture, price, GenerationState.PENDING, deadline_at,
                 now, self.instance))
            generation = row_to(Generation, rows[0])
            await _apply(db, draft.user_id, -price, LedgerKind.CHARGE, generation_id=generation.id)
            # What was paid for is what the next picker of this kind opens on.
            await db.execute(
                "INSERT INTO choices (user_id, kind, model, options, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, kind) DO UPDATE SET"
                " model = excluded.model, options = excluded.options,"
                " updated_at = excluded.updated_at",
                (draft.user_id, draft.kind, draft.model, json.dumps(draft.options), now))
            return generation

    async def start_follow_up(self, source: Generation, *, chat_id: int,
                              request_message_id: int | None, model: str, input: dict[str, Any],
                              price: int, deadline_at: float,
                              limits: StartLimits | None = None) -> Generation:
        """Charge the owner of `source` and record a generation made from its result (⬆️ Upscale,
        ➕ Extend): all or nothing, as start_generation, without a draft. The same follow-up of
        the same result (same model and input) runs once at a time: a second press while it is
        open raises FollowUpOpen, charging nothing (the owner's row is locked first, so two
        presses at once are decided one after the other)."""
        now = time.time()
        async with self._tx() as db:
            await _user(db, source.user_id, lock=True)
            if limits is not None:
                await _check_limits(db, source.user_id, limits, now)
            encoded = json.dumps(input)
            if await db.fetch(f"SELECT 1 FROM generations WHERE source_id = ? AND model = ?"
                              f" AND input = ? AND state IN {_IN_OPEN}",
                              (source.id, model, encoded, *OPEN_STATES)):
                raise FollowUpOpen(source.id)
            rows = await db.fetch(
                "INSERT INTO generations (user_id, chat_id, request_message_id, kind, model,"
                " prompt, options, input, price, state, deadline_at, created_at, owner,"
                " source_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (source.user_id, chat_id, request_message_id, source.kind, model, source.prompt,
                 "{}", encoded, price, GenerationState.PENDING, deadline_at, now, self.instance,
                 source.id))
            generation = row_to(Generation, rows[0])
            await _apply(db, source.user_id, -price, LedgerKind.CHARGE, generation_id=generation.id)
            return generation

    async def mark_submitted(self, generation_id: int, task_id: str, next_check_at: float, *,
                             key: str | None = None) -> bool:
        """Kie took the task, through `key` (None: KIE_API_KEY). False when the generation was
        settled meanwhile (refunded while this instance was away): the task is not its."""
        async with self._tx() as db:
            submitted = await db.execute(
                "UPDATE generations SET state = ?, task_id = ?, kie_key = ?, submitted_at = ?,"
                " owner = NULL, next_check_at = least(coalesce(next_check_at, ?), ?, deadline_at)"
                " WHERE id = ? AND state = ?",
                (GenerationState.RUNNING, task_id, key, time.time(), next_check_at, next_check_at,
                 generation_id, GenerationState.PENDING)) == 1
        if submitted:
            await self._db.notify(WORK)
        return submitted

    async def fail_generation(
            self, generation_id: int, failure: str, detail: str | None = None,
            states: Sequence[GenerationState] = WITHOUT_RESULT,
    ) -> Generation | None:
        """Close a generation that is in one of `states` as failed and refund it; None if it
        was not (a finished task is refunded only when its delivery is given up)."""
        async with self._tx() as db:
            rows = await db.fetch(
                f"UPDATE generations SET state = ?, failure = ?, failure_detail = ?,"
                f" finished_at = coalesce(finished_at, ?), next_check_at = NULL"
                f" WHERE id = ? AND state IN ({','.join('?' * len(states))}) RETURNING *",
                (GenerationState.FAILED, failure, detail, time.time(), generation_id, *states))
            if not rows:
                return None
            generation = row_to(Generation, rows[0])
            await _refund(db, generation, failure)
            return generation

    async def check_now(self, generation_id: int, task_id: str) -> bool:
        """A callback says this task ended: read it at once. False when the generation is not
        running that task (finished already, unknown, or another task). A generation still
        being submitted (the callback outran the commit of Kie's answer) is read at once too,
        as soon as its task id is stored (mark_submitted keeps the earlier time)."""
        async with self._tx() as db:
            woken = await db.execute(
                "UPDATE generations SET next_check_at = ? WHERE id = ? AND (state = ?"
                " OR (state = ? AND task_id = ?))",
                (time.time(), generation_id, GenerationState.PENDING, GenerationState.RUNNING,
                 task_id)) == 1
        if woken:
            await self._db.notify(WORK)
        return woken

    async def recover(self, generation_id: int, task_id: str, urls: list[str], *,
                      deliver_by: float, lease_until: float,
                      files: Sequence[dict[str, Any]] = (),
                      key: str | None = None) -> Generation | None:
        """A generation refunded with its Kie task unrecorded (UNRECORDED_FAILURES: the bot died
        between Kie's answer and storing the task id, or the answer never came) whose task Kie
        confirms finished: its result is delivered after all, free (the refund stands), recorded
        as recovered. None unless it is in exactly that state, and the task is no other
        generation's (a callback of another's, replayed to this path)."""
        rows = await self._rows(
            "UPDATE generations SET state = ?, task_id = ?, kie_state = 'success',"
            " result_urls = ?, result_files = ?, failure_detail = 'recovered by callback',"
            " deadline_at = ?, next_check_at = ?, owner = ?, kie_key = ? WHERE id = ?"
            f" AND state = ? AND failure IN {_IN_UNRECORDED} AND task_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM generations AS other WHERE other.task_id = ?)"
            " RETURNING *",
            (GenerationState.SUCCEEDED, task_id, json.dumps(urls), json.dumps(list(files)),
             deliver_by, lease_until, self.instance, key, generation_id, GenerationState.FAILED,
             *UNRECORDED_FAILURES, task_id))
        return row_to(Generation, rows[0]) if rows else None

    async def count_open(self) -> int:
        rows = await self._rows(f"SELECT count(*) FROM generations WHERE state IN {_IN_OPEN}",
                                OPEN_STATES)
        return int(rows[0][0])

    async def record_check(self, generation_id: int, kie_state: str | None,
                           next_check_at: float) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE generations SET kie_state = ?, checks = checks + 1, next_check_at = ?,"
                " owner = NULL"
                " WHERE id = ? AND state = ?",
                (kie_state, next_check_at, generation_id, GenerationState.RUNNING))

    async def mark_succeeded(self, generation_id: int, urls: list[str], *, deliver_by: float,
                             lease_until: float,
                             files: Sequence[dict[str, Any]] = ()) -> Generation | None:
        """running → succeeded, once: None if another path already finished it. The result must
        be delivered by `deliver_by` (the new deadline); the caller delivers it now and holds it
        until `lease_until`. `files`: what Kie said of each file, kept for every try."""
        rows = await self._rows(
            "UPDATE generations SET state = ?, kie_state = 'success', result_urls = ?,"
            " result_files = ?, finished_at = ?, deadline_at = ?, next_check_at = ?, owner = ?"
            " WHERE id = ? AND state = ? RETURNING *",
            (GenerationState.SUCCEEDED, json.dumps(urls), json.dumps(list(files)), time.time(),
             deliver_by, lease_until, self.instance, generation_id, GenerationState.RUNNING))
        return row_to(Generation, rows[0]) if rows else None

    async def claim_deliveries(self, now: float, lease_until: float,
                               limit: int) -> list[Generation]:
        """Finished results whose delivery is due, held until `lease_until` by the caller."""
        return await self._claim(GenerationState.SUCCEEDED, now, lease_until, limit)

    async def _claim(self, state: GenerationState, now: float, lease_until: float,
                     limit: int) -> list[Generation]:
        """Up to `limit` generations in `state` that are due, earliest first, this instance's
        or free (_free), each due again only at `lease_until` (the caller sets the time it
        really wants before then) and this instance's until it does (a read, a delivery
        retried, leaves it free: any instance may do the next step)."""
        rows = await self._rows(
            "UPDATE generations SET next_check_at = :lease_until, owner = :me WHERE id IN"
            " (SELECT id FROM generations WHERE state = :state AND next_check_at <= :now"
            f" AND (owner = :me OR {self._free}) ORDER BY next_check_at LIMIT :limit"
            " FOR UPDATE SKIP LOCKED) RETURNING *",
            {**self._owning(now), "lease_until": lease_until, "state": state, "now": now,
             "limit": limit})
        return [row_to(Generation, row) for row in rows]

    async def retry_delivery(self, generation_id: int, at: float) -> None:
        """A delivery this instance holds failed for a passing reason: try again at `at` (or at
        its deadline), by whoever has room then."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE generations SET deliveries = deliveries + 1, owner = NULL,"
                " next_check_at = least(?, deadline_at)"
                " WHERE id = ? AND state = ? AND owner = ?",
                (at, generation_id, GenerationState.SUCCEEDED, self.instance))

    async def release_leases(self, now: float) -> None:
        """What gone instances (a past run of this one too) were doing is due now and free:
        the status reads they had under way, and the deliveries of those whose process is gone.
        A delivery of one that is only frozen (its process still there, its heartbeat late)
        waits for its lease to run out: woken, it may still be sending it."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE generations SET next_check_at = :now, owner = NULL"
                f" WHERE state IN (:running, :succeeded) AND owner IS NOT NULL AND {self._free}"
                f" AND (state = :running OR owner NOT IN ({self._db.connected_instances}))",
                {**self._owning(now), "now": now, "succeeded": GenerationState.SUCCEEDED,
                 "running": GenerationState.RUNNING})

    async def refund_orphans(self, now: float) -> list[Generation]:
        """Refund, as interrupted, the charged generations whose create was under way in an
        instance whose process is gone: the task may never have reached Kie. One only frozen
        (its process still there, its heartbeat late) keeps them, since it may send them the
        moment it wakes; past their deadline they are refunded as timed out (overdue). One
        statement decides and closes them, so a create is fenced (fence_create) or refunded,
        never both."""
        async with self._tx() as db:
            rows = await db.fetch(
                "UPDATE generations SET state = :failed, failure = 'interrupted',"
                " finished_at = coalesce(finished_at, :now), next_check_at = NULL"
                " WHERE state = :pending AND (owner IS NULL OR owner NOT IN"
                f" ({self._db.connected_instances})) RETURNING *",
                {"now": now, "failed": GenerationState.FAILED,
                 "pending": GenerationState.PENDING})
            generations = sorted((row_to(Generation, row) for row in rows), key=lambda g: g.id)
            for generation in generations:
                await _refund(db, generation, "interrupted")
            return generations

    async def fence_create(self, generation_id: int) -> bool:
        """May this instance send the create of this generation to Kie now? Only while it is
        still pending and this instance's: not refunded meanwhile (its deadline passed while
        this instance was frozen, or it was counted gone). Asked just before the request goes
        out, after any wait for Kie's budget."""
        rows = await self._rows(
            "UPDATE generations SET kie_state = ? WHERE id = ? AND state = ? AND owner = ?"
            " RETURNING id", (SENDING, generation_id, GenerationState.PENDING, self.instance))
        return bool(rows)  # from here on ✖ Cancel cannot take it back (cancel_pending)

    async def cancel_pending(self, generation_id: int, user_id: int) -> Generation | None:
        """✖ Cancel: refund a generation of `user_id`'s whose create has not gone out yet
        (fence_create not passed); None when it has (or it is settled). One of the two wins."""
        async with self._tx() as db:
            rows = await db.fetch(
                "UPDATE generations SET state = ?, failure = 'cancelled', finished_at = ?,"
                " next_check_at = NULL WHERE id = ? AND user_id = ? AND state = ?"
                " AND kie_state IS NULL RETURNING *",
                (GenerationState.FAILED, time.time(), generation_id, user_id,
                 GenerationState.PENDING))
            if not rows:
                return None
            generation = row_to(Generation, rows[0])
            await _refund(db, generation, "cancelled")
            return generation

    async def line_position(self, generation: Generation) -> int | None:
        """Its place in the bot's own line: creates not yet sent to Kie, oldest first. None when
        it is no longer in that line (its create went out, or it was cancelled or refunded, by
        this instance or another): in the same count, so that a status line redrawn while it
        waits (Notifier.tick) learns that for nothing more."""
        rows = await self._rows(
            "SELECT count(*) AS n, count(CASE WHEN id = ? THEN 1 END) AS own FROM generations"
            " WHERE state = ? AND kie_state IS NULL AND id <= ?",
            (generation.id, GenerationState.PENDING, generation.id))
        return int(rows[0]["n"]) if rows[0]["own"] else None

    async def fence_delivery(self, generation_id: int, now: float, lease_until: float) -> bool:
        """May this instance send this result now? Only while its lease on the delivery still
        runs (renewed here until `lease_until`): another instance takes a delivery over only
        from one whose process is gone or whose lease ran out (release_leases, _claim), so a
        result is sent by one instance at a time, even by one frozen for a while."""
        rows = await self._rows(
            "UPDATE generations SET next_check_at = :lease_until WHERE id = :id AND state = :state"
            " AND owner = :me AND next_check_at > :now RETURNING id",
            {"id": generation_id, "state": GenerationState.SUCCEEDED, "me": self.instance,
             "now": now, "lease_until": lease_until})
        return bool(rows)

    async def mark_delivered(self, generation_id: int, state: GenerationState) -> None:
        """The delivery this instance holds ended (DELIVERED, or UNDELIVERABLE)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE generations SET state = ?, delivered_at = ?, next_check_at = NULL"
                " WHERE id = ? AND state = ? AND owner = ?",
                (state, time.time(), generation_id, GenerationState.SUCCEEDED, self.instance))

    async def requeue_undeliverable(self, user_id: int, *, finished_after: float,
                                    deliver_by: float, now: float) -> int:
        """The person can be reached again (they opened their private chat): their results
        finished since `finished_after` that could not be sent are due for delivery there now,
        by `deliver_by`. Returns how many."""
        async with self._tx() as db:
            count = await db.execute(
                "UPDATE generations SET state = :succeeded, chat_id = user_id,"
                " request_message_id = NULL, status_message_id = NULL, delivered_at = NULL,"
                " next_check_at = :now, deadline_at = :deliver_by, owner = NULL"
                " WHERE user_id = :user AND state = :undeliverable AND finished_at > :after",
                {"succeeded": GenerationState.SUCCEEDED, "now": now, "deliver_by": deliver_by,
                 "user": user_id, "undeliverable": GenerationState.UNDELIVERABLE,
                 "after": finished_after})
        if count:
            await self._db.notify(WORK)
            for callback in self._on_work:
                callback()
        return count

    async def mark_resent(self, generation_id: int) -> None:
        """A result that could not be delivered was sent after all (from /history)."""
        async with self._tx() as db:
            await db.execute("UPDATE generations SET state = ?, delivered_at = ? WHERE id = ?"
                             " AND state = ?", (GenerationState.DELIVERED, time.time(),
                                                generation_id, GenerationState.UNDELIVERABLE))

    async def save_delivered_files(self, generation_id: int,
                                   files: Sequence[DeliveredFile]) -> None:
        """The files Telegram holds of this result, in its order, in place of any stored before
        (a delivery retried or a re-send stores its own: never twice)."""
        async with self._tx() as db:
            # Two instances storing at once (two presses of 📤 behind a load balancer) take turns.
            await _one(db, "generations", generation_id, lock=True)
            await db.execute("DELETE FROM delivered_files WHERE generation_id = ?",
                             (generation_id,))
            await db.execute_many(
                "INSERT INTO delivered_files (generation_id, position, kind, file_id)"
                " VALUES (?, ?, ?, ?)",
                [(generation_id, n, f.kind, f.file_id) for n, f in enumerate(files)])

    async def delivered_files(self, generation_id: int) -> list[DeliveredFile]:
        rows = await self._rows("SELECT kind, file_id FROM delivered_files"
                                " WHERE generation_id = ? ORDER BY position", (generation_id,))
        return [row_to(DeliveredFile, row) for row in rows]

    async def with_delivered_files(self, generation_ids: Sequence[int]) -> set[int]:
        """Those of these generations whose files Telegram holds (one query for a page)."""
        if not generation_ids:
            return set()
        rows = await self._rows(
            "SELECT DISTINCT generation_id FROM delivered_files"
            f" WHERE generation_id IN ({','.join('?' * len(generation_ids))})", generation_ids)
        return {int(row[0]) for row in rows}

    async def set_status_message(self, generation_id: int, message_id: int) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE generations SET status_message_id = ? WHERE id = ?",
                             (message_id, generation_id))

    async def get_generation(self, generation_id: int) -> Generation | None:
        rows = await self._rows("SELECT * FROM generations WHERE id = ?", (generation_id,))
        return row_to(Generation, rows[0]) if rows else None

    async def generations_of(self, user_id: int, *, limit: int, offset: int = 0) -> list[Generation]:
        """A user's generations, newest first."""
        rows = await self._rows("SELECT * FROM generations WHERE user_id = ?"
                                " ORDER BY id DESC LIMIT ? OFFSET ?", (user_id, limit, offset))
        return [row_to(Generation, row) for row in rows]

    async def count_generations(self, user_id: int) -> int:
        rows = await self._rows("SELECT count(*) FROM generations WHERE user_id = ?", (user_id,))
        return int(rows[0][0])

    async def generations_in(self, states: Iterable[GenerationState]) -> list[Generation]:
        states = tuple(states)
        rows = await self._rows(
            f"SELECT * FROM generations WHERE state IN ({','.join('?' * len(states))}) ORDER BY id",
            states)
        return [row_to(Generation, row) for row in rows]

    async def claim_checks(self, now: float, lease_until: float, limit: int) -> list[Generation]:
        """Running tasks whose status read is due, held until `lease_until` by the caller (its
        read sets the next check time; a check that dies leaves them due again then)."""
        return await self._claim(GenerationState.RUNNING, now, lease_until, limit)

    async def recent_durations(self, per_model: int) -> list[tuple[str, float]]:
        """(model, seconds from submission until the bot saw the result) of each model's last
        `per_model` finished tasks, oldest first."""
        rows = await self._rows(
            "SELECT model, seconds FROM (SELECT id, model, finished_at - submitted_at AS seconds,"
            " row_number() OVER (PARTITION BY model ORDER BY id DESC) AS age FROM generations"
            " WHERE task_id IS NOT NULL AND result_urls IS NOT NULL AND submitted_at IS NOT NULL"
            " AND finished_at IS NOT NULL) AS recent WHERE age <= ? ORDER BY id", (per_model,))
        return [(str(row[0]), float(row[1])) for row in rows]

    async def overdue_generations(self, now: float) -> list[Generation]:
        """Past their deadline with no read or delivery to wait for: charged but never
        submitted, or finished and not delivered (and not being delivered). A running task's
        checks come no later than its deadline, and its check ends it."""
        rows = await self._rows(
            "SELECT * FROM generations WHERE deadline_at <= ? AND (state = ?"
            " OR (state = ? AND next_check_at <= ?))",
            (now, GenerationState.PENDING, GenerationState.SUCCEEDED, now))
        return [row_to(Generation, row) for row in rows]

    async def next_wakeup(self) -> float | None:
        """The earliest time the tracker has something to do: a check, a delivery or a
        deadline. (Checks and retries are never set past the deadline; a later time is a
        lease, and the deadline waits for it.)"""
        rows = await self._rows(
            f"SELECT min(CASE WHEN state = ? THEN deadline_at"
            f" ELSE coalesce(next_check_at, deadline_at) END)"
            f" FROM generations WHERE state IN {_IN_OPEN}", (GenerationState.PENDING, *OPEN_STATES))
        wakeup: float | None = rows[0][0]
        return wakeup


_IN_OPEN = f"({','.join('?' * len(OPEN_STATES))})"
_IN_UNRECORDED = f"({','.join('?' * len(UNRECORDED_FAILURES))})"


async def _check_limits(db: Connection, user_id: int, limits: StartLimits,
                        now: float) -> None:
    rows = await db.fetch(
        f"SELECT count(*) FILTER (WHERE state IN {_IN_OPEN}), count(*) FILTER (WHERE created_at > ?)"
        " FROM generations WHERE user_id = ?", (*OPEN_STATES, now - MINUTE, user_id))
    open_now, this_minute = rows[0][0], rows[0][1]
    if open_now >= limits.max_open:
        raise LimitReached("open", limits.max_open)
    if this_minute >= limits.max_per_minute:
        raise LimitReached("rate", limits.max_per_minute)


async def _set_flag(db: Connection, name: str, value: str) -> None:
    await db.execute(
        "INSERT INTO flags (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT"
        " (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, value, time.time()))


async def _apply(db: Connection, user_id: int, amount: int, kind: LedgerKind, *,
                 generation_id: int | None = None, admin_id: int | None = None,
                 note: str | None = None, source: str | None = None) -> LedgerRow:
    """The one way a balance changes: the new balance and its ledger row, together."""
    rows = await db.fetch(
        "UPDATE users SET balance = balance + ? WHERE id = ? AND balance + ? >= 0 RETURNING balance",
        (amount, user_id, amount))
    if not rows:
        user = await _user(db, user_id)
        raise InsufficientCredits(-amount, user.balance)
    added = await db.fetch(
        "INSERT INTO ledger (user_id, amount, balance_after, kind, generation_id, admin_id, note,"
        " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        (user_id, amount, rows[0][0], kind, generation_id, admin_id, note, source, time.time()))
    return row_to(LedgerRow, added[0])


async def _refund(db: Connection, generation: Generation, failure: str) -> None:
    """Give back a closed generation's price, once: one recovered after its refund (see
    recover) and closed again is not refunded twice."""
    refunded = await db.fetch("SELECT 1 FROM ledger WHERE generation_id = ? AND kind = ?",
                              (generation.id, LedgerKind.REFUND))
    if generation.price and not refunded:
        await _apply(db, generation.user_id, generation.price, LedgerKind.REFUND,
                     generation_id=generation.id, note=failure)


async def _purchase(db: Connection, charge_id: str) -> Purchase:
    """A purchase, locked until the transaction ends."""
    rows = await db.fetch("SELECT * FROM purchases WHERE charge_id = ? FOR UPDATE", (charge_id,))
    if not rows:
        raise LookupError(f"no purchase {charge_id}")
    return row_to(Purchase, rows[0])


async def _reserved(db: Connection, user_id: int) -> int:
    """Credits charged for a user's generations that are still open (refunded if they fail)."""
    return await _scalar(db, f"SELECT coalesce(sum(price), 0) FROM generations"
                             f" WHERE user_id = ? AND state IN {_IN_OPEN}", (user_id, *OPEN_STATES))


def _referral_source(charge_id: str) -> str:
    """The ledger source of the inviter's share of a purchase."""
    return f"referral:{charge_id}"


async def _hold_referral(db: Connection, charge_id: str, attempt: int, admin_id: int) -> None:
    """A purchase's refund is held: so is the inviter's share of it, as far as their balance
    still holds it. What they have spent already is not recovered (a balance never goes below
    zero): the operator's loss, at most REFERRAL_PERCENT of the purchase. The row is written
    even when it takes nothing, so that the release gives back exactly what it says."""
    rows = await db.fetch("SELECT user_id, amount FROM ledger WHERE source = ?",
                          (_referral_source(charge_id),))
    if not rows:
        return
    inviter, earned = int(rows[0][0]), int(rows[0][1])
    balance = (await _user(db, inviter, lock=True)).balance
    await _apply(db, inviter, -min(balance, earned), LedgerKind.REFERRAL_REFUND,
                 admin_id=admin_id, note=f"of {earned} earned from {charge_id}",
                 source=_refund_source("referral_refund", charge_id, attempt))


async def _release_referral(db: Connection, charge_id: str, attempt: int, admin_id: int) -> None:
    """Telegram refused the refund held as `attempt`: the inviter gets back what it took."""
    rows = await db.fetch("SELECT user_id, amount FROM ledger WHERE source = ?",
                          (_refund_source("referral_refund", charge_id, attempt),))
    if rows:
        await _apply(db, int(rows[0][0]), -int(rows[0][1]), LedgerKind.REFERRAL_REFUND_UNDONE,
                     admin_id=admin_id, note="Telegram refused the refund",
                     source=_refund_source("referral_refund_undone", charge_id, attempt))


async def _promo_refusal(db: Connection, code: str, user_id: int) -> PromoRefused:
    """Why a code gave nothing: the most useful of the reasons that hold."""
    rows = await db.fetch("SELECT * FROM promo_codes WHERE code = ?", (code,))
    if not rows:
        return PromoRefused("unknown", None)
    promo = row_to(PromoCode, rows[0])
    if await db.fetch("SELECT 1 FROM promo_redemptions WHERE code = ? AND user_id = ?",
                      (code, user_id)):
        return PromoRefused("redeemed", promo)
    if promo.off_at is not None:
        return PromoRefused("off", promo)
    if promo.uses is not None and promo.used >= promo.uses:
        return PromoRefused("used_up", promo)
    return PromoRefused("expired", promo)


def _refund_source(kind: str, charge_id: str, attempt: int) -> str:
    """The ledger source of a refund's row: the first attempt's names only the charge."""
    return f"{kind}:{charge_id}" + (f"#{attempt}" if attempt else "")


async def _scalar(db: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    return int((await db.fetch(sql, params))[0][0] or 0)


async def _counts(db: Connection, sql: str) -> dict[str, int]:
    return {str(row[0]): int(row[1] or 0) for row in await db.fetch(sql)}


async def _one(db: Connection, table: str, row_id: int, *, lock: bool = False) -> Row:
    """A row by id; `lock`: held until the transaction ends."""
    rows = await db.fetch(f"SELECT * FROM {table} WHERE id = ?{' FOR UPDATE' if lock else ''}",
                          (row_id,))
    if not rows:
        raise LookupError(f"no {table} row {row_id}")
    return rows[0]


async def _user(db: Connection, user_id: int, *, lock: bool = False) -> User:
    return row_to(User, await _one(db, "users", user_id, lock=lock))


async def _draft(db: Connection, draft_id: int, *, lock: bool = False) -> Draft:
    return row_to(Draft, await _one(db, "drafts", draft_id, lock=lock))
