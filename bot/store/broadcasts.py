"""Broadcasts in the store: who an audience is, a broadcast and its recipients made in one
transaction, and each copy's state, so that nobody ever gets two.

A broadcast is sent by one instance at a time, its `owner` (as a generation's: an owner whose
instance is gone passes it on), and broadcasts go one after another, oldest first, so that all
of them together stay within BROADCAST_RATE. A recipient is `sending` before its copy goes out
(`claim`) and `sent`, `blocked` or `failed` after (`record`): a copy cut off by a crash leaves
its recipient `sending`, which the next owner counts `unknown`, never sends again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bot.store.database import Connection, Database
from bot.store.models import row_to

# `active`: someone the bot heard from this recently (users.updated_at: when they were last
# seen, to Store.SEEN_PRECISION).
ACTIVE_DAYS = 30
DAY = 24 * 3600.0


class Audience(StrEnum):
    ALL = "all"          # everyone who has neither blocked the bot nor been banned
    PAYING = "paying"    # of them, who has a purchase not refunded
    ACTIVE = "active"    # of them, who sent the bot anything in the last ACTIVE_DAYS
    EN = "en"            # of them, whom the bot speaks English to
    RU = "ru"            # ... Russian


class BroadcastState(StrEnum):
    SENDING = "sending"  # under way, or waiting for the one before it
    DONE = "done"        # every recipient's copy went out (or could not)
    STOPPED = "stopped"  # /broadcast stop: the recipients still pending stay unsent


class RecipientState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # its copy is on its way (or was, when the sender died)
    SENT = "sent"
    BLOCKED = "blocked"  # 403: blocked the bot or deleted their account (users.blocked set)
    FAILED = "failed"    # refused (chat not found, ...) or Telegram down past the retries
    UNKNOWN = "unknown"  # the sender died with its copy on the way: maybe delivered, never resent


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: int
    admin_id: int
    chat_id: int
    message_id: int
    status_message_id: int
    audience: str
    state: str
    owner: str | None
    created_at: float
    finished_at: float | None
    reported_at: float | None


@dataclass(frozen=True, slots=True)
class Tally:
    """How many recipients of a broadcast are in each state."""

    counts: dict[str, int]

    def __getitem__(self, state: RecipientState) -> int:
        return self.counts.get(state, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Recipients settled: neither waiting nor on the way."""
        return self.total - self[RecipientState.PENDING] - self[RecipientState.SENDING]


@dataclass(frozen=True, slots=True)
class Languages:
    """The languages the bot speaks (i18n.available_locales) and its default: what decides
    whom `en` and `ru` mean, as bot.i18n.locale_of decides it for one person."""

    available: Sequence[str]
    default: str


def _speaks(column: str, code: str, params: dict[str, Any]) -> str:
    """`column` (a language tag, e.g. `pt-br`) names the language `code`."""
    name = f"lang{len(params)}"
    params[name], params[f"{name}_tag"] = code, f"{code}-%"
    return (f"({column} IS NOT NULL AND (lower({column}) = :{name}"
            f" OR lower({column}) LIKE :{name}_tag))")


def _known(column: str, languages: Languages, params: dict[str, Any]) -> str:
    """`column` names a language the bot speaks."""
    return "(" + " OR ".join(_speaks(column, code, params) for code in languages.available) + ")"


def audience_filter(audience: Audience, languages: Languages, now: float,
                    params: dict[str, Any]) -> str:
    """The condition on `users u` that picks `audience` (its parameters added to `params`)."""
    condition = "u.banned = 0 AND u.blocked = 0"
    if audience is Audience.PAYING:
        condition += (" AND EXISTS (SELECT 1 FROM purchases p WHERE p.user_id = u.id"
                      " AND p.refunded_at IS NULL)")
    elif audience is Audience.ACTIVE:
        params["active_after"] = now - ACTIVE_DAYS * DAY
        condition += " AND u.updated_at > :active_after"
    elif audience in (Audience.EN, Audience.RU):
        # As locale_of: the language chosen in the bot, else Telegram's, else the default.
        chosen, telegram = (_known("u.language", languages, params),
                            _known("u.tg_language", languages, params))
        speaks = [f"{_speaks('u.language', audience, params)}",
                  f"(NOT {chosen} AND {_speaks('u.tg_language', audience, params)})"]
        if audience == languages.default:
            speaks.append(f"(NOT {chosen} AND NOT {telegram})")
        condition += " AND (" + " OR ".join(speaks) + ")"
    return condition


class Broadcasts:
    """The broadcasts of the database `db`, as the instance `instance` sees them (Store.instance,
    whose heartbeat says it is alive)."""

    def __init__(self, db: Database, instance: str,
                 owning: Callable[[float], dict[str, Any]]) -> None:
        """`owning`: the parameters of `db.live_instances` at a given time (Store._owning)."""
        self._db = db
        self._tx = db.transaction
        self.instance = instance
        self._owning = owning

    async def count(self, audience: Audience, languages: Languages, now: float) -> int:
        """How many people `audience` is now (the preview's count)."""
        params: dict[str, Any] = {}
        where = audience_filter(audience, languages, now, params)
        rows = await self._db.fetch(f"SELECT count(*) FROM users u WHERE {where}", params)
        return int(rows[0][0])

    async def create(self, *, admin_id: int, chat_id: int, message_id: int,
                     status_message_id: int, audience: Audience, languages: Languages,
                     now: float) -> tuple[Broadcast, bool]:
        """The broadcast of the preview `status_message_id` and its recipients, who `audience`
        is at this moment, in one transaction; True if made now, False when that preview's ✅
        made it before (a second press, a repeated update)."""
        async with self._tx() as db:
            rows = await db.fetch(
                "INSERT INTO broadcasts (admin_id, chat_id, message_id, status_message_id,"
                " audience, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (chat_id, status_message_id) DO NOTHING RETURNING *",
                (admin_id, chat_id, message_id, status_message_id, audience,
                 BroadcastState.SENDING, now))
            if not rows:
                rows = await db.fetch("SELECT * FROM broadcasts WHERE chat_id = ?"
                                      " AND status_message_id = ?", (chat_id, status_message_id))
                return row_to(Broadcast, rows[0]), False
            broadcast = row_to(Broadcast, rows[0])
            params: dict[str, Any] = {"id": broadcast.id}
            where = audience_filter(audience, languages, now, params)
            await db.execute("INSERT INTO broadcast_recipients (broadcast_id, user_id)"
                             f" SELECT :id, u.id FROM users u WHERE {where}", params)
            return broadcast, True

    async def get(self, broadcast_id: int) -> Broadcast | None:
        rows = await self._db.fetch("SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,))
        return row_to(Broadcast, rows[0]) if rows else None

    async def take(self, now: float) -> Broadcast | None:
        """The oldest broadcast not yet reported, once this instance owns it: None when there
        is none, or when a live instance owns it. Taken over from a gone one (a past run of
        this one too), its recipients left `sending` become `unknown`: their copies may have
        gone out."""
        async with self._tx() as db:
            rows = await db.fetch("SELECT * FROM broadcasts WHERE reported_at IS NULL"
                                  " ORDER BY id LIMIT 1 FOR UPDATE")
            if not rows:
                return None
            broadcast = row_to(Broadcast, rows[0])
            if broadcast.owner == self.instance:
                return broadcast
            if broadcast.owner is not None and await db.fetch(
                    f"SELECT 1 FROM ({self._db.live_instances}) AS live WHERE id = :owner",
                    {**self._owning(now), "owner": broadcast.owner}):
                return None
            await db.execute("UPDATE broadcasts SET owner = ? WHERE id = ?",
                             (self.instance, broadcast.id))
            await db.execute("UPDATE broadcast_recipients SET state = ?, updated_at = ?"
                             " WHERE broadcast_id = ? AND state = ?",
                             (RecipientState.UNKNOWN, now, broadcast.id, RecipientState.SENDING))
            return replace(broadcast, owner=self.instance)

    async def claim(self, broadcast_id: int, now: float) -> int | None:
        """The next recipient, now `sending` (committed before its copy goes out); None when
        none is left, the broadcast was stopped, or this instance no longer owns it."""
        rows = await self._db.fetch(
            "UPDATE broadcast_recipients SET state = :sending, updated_at = :now"
            " WHERE broadcast_id = :id AND state = :pending AND user_id ="
            " (SELECT user_id FROM broadcast_recipients WHERE broadcast_id = :id"
            " AND state = :pending ORDER BY user_id LIMIT 1)"
            " AND EXISTS (SELECT 1 FROM broadcasts WHERE id = :id AND state = :running"
            " AND owner = :me) RETURNING user_id",
            {"id": broadcast_id, "now": now, "me": self.instance,
             "sending": RecipientState.SENDING, "pending": RecipientState.PENDING,
             "running": BroadcastState.SENDING})
        return int(rows[0][0]) if rows else None

    async def record(self, broadcast_id: int, user_id: int, state: RecipientState,
                     now: float) -> None:
        """What became of a claimed recipient's copy; `blocked` also marks the person as having
        blocked the bot (later broadcasts skip them until they write again)."""
        async with self._tx() as db:
            changed = await self._settle(db, broadcast_id, user_id, state, now)
            if changed and state is RecipientState.BLOCKED:
                await db.execute("UPDATE users SET blocked = 1 WHERE id = ?", (user_id,))

    async def release(self, broadcast_id: int, user_id: int, now: float) -> None:
        """A claimed recipient's copy did not go out (flood control to the end): pending again."""
        async with self._tx() as db:
            await self._settle(db, broadcast_id, user_id, RecipientState.PENDING, now)

    @staticmethod
    async def _settle(db: Connection, broadcast_id: int, user_id: int, state: RecipientState,
                      now: float) -> bool:
        return await db.execute(
            "UPDATE broadcast_recipients SET state = ?, updated_at = ? WHERE broadcast_id = ?"
            " AND user_id = ? AND state = ?",
            (state, now, broadcast_id, user_id, RecipientState.SENDING)) == 1

    async def finish(self, broadcast_id: int, now: float) -> Broadcast | None:
        """The broadcast this instance owns is over (no recipient left, or stopped): it is
        `done` unless stopped, and reported from now on. Returns it when this call is the one
        to report it (once: a report cut off by a crash is not sent again), else None."""
        async with self._tx() as db:
            rows = await db.fetch("SELECT * FROM broadcasts WHERE id = ? FOR UPDATE",
                                  (broadcast_id,))
            broadcast = row_to(Broadcast, rows[0]) if rows else None
            if (broadcast is None or broadcast.owner != self.instance
                    or broadcast.reported_at is not None):
                return None
            rows = await db.fetch(
                "UPDATE broadcasts SET reported_at = :now, state = CASE WHEN state = :running"
                " THEN :done ELSE state END, finished_at = coalesce(finished_at, :now)"
                " WHERE id = :id RETURNING *",
                {"now": now, "id": broadcast_id, "running": BroadcastState.SENDING,
                 "done": BroadcastState.DONE})
            return row_to(Broadcast, rows[0])

    async def stop(self, now: float) -> Broadcast | None:
        """/broadcast stop: the broadcast under way (the oldest one sending) sends no more
        copies; None when none is under way."""
        rows = await self._db.fetch(
            "UPDATE broadcasts SET state = :stopped, finished_at = :now WHERE id ="
            " (SELECT id FROM broadcasts WHERE state = :running ORDER BY id LIMIT 1)"
            " AND state = :running RETURNING *",
            {"now": now, "stopped": BroadcastState.STOPPED, "running": BroadcastState.SENDING})
        return row_to(Broadcast, rows[0]) if rows else None

    async def tally(self, broadcast_id: int) -> Tally:
        rows = await self._db.fetch("SELECT state, count(*) FROM broadcast_recipients"
                                    " WHERE broadcast_id = ? GROUP BY state", (broadcast_id,))
        return Tally({str(row[0]): int(row[1]) for row in rows})

    async def ahead_of(self, broadcast_id: int) -> int:
        """How many broadcasts not yet reported come before this one (it waits for them)."""
        rows = await self._db.fetch("SELECT count(*) FROM broadcasts WHERE reported_at IS NULL"
                                    " AND id < ?", (broadcast_id,))
        return int(rows[0][0])
