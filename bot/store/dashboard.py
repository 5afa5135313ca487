"""The web dashboard's tables and reads: one-time sign-in links and sessions, and the lists its
pages show (people found by a search, every generation, every purchase, the broadcasts).

Links and sessions live in the database, so every instance sharing it (PostgreSQL) serves the
same dashboard, and each is kept only as the SHA-256 of its random token: a copy of the
database opens nothing. The writes that change money are the Store's own (topup, set_banned,
the purchase refunds, the promo codes), called by the dashboard as the commands call them."""

from __future__ import annotations

from collections.abc import Iterable

from bot.store.broadcasts import Broadcast
from bot.store.database import Database
from bot.store.models import Generation, Purchase, User, row_to

# What a search by name may match: everything, so `%` and `_` typed are taken literally.
_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class DashboardStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- sign-in ---------------------------------------------------------------

    async def add_link(self, token_hash: str, *, admin_id: int, expires_at: float) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("INSERT INTO dashboard_links (token_hash, admin_id, expires_at)"
                             " VALUES (?, ?, ?)", (token_hash, admin_id, expires_at))

    async def open_session(self, token_hash: str, session_hash: str, *, now: float,
                           expires_at: float) -> int | None:
        """Spend the link `token_hash` (once, before it expires) on a new session: the admin
        it was made for, or None (unknown, used or expired: nothing opened). What has expired
        goes on the way."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM dashboard_links WHERE expires_at <= ?", (now,))
            await tx.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
            # One UPDATE decides: of two uses at once, one finds used_at already set.
            rows = await tx.fetch(
                "UPDATE dashboard_links SET used_at = ?"
                " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING admin_id",
                (now, token_hash, now))
            if not rows:
                return None
            admin_id = int(rows[0][0])
            await tx.execute("INSERT INTO dashboard_sessions (id_hash, admin_id, created_at,"
                             " expires_at) VALUES (?, ?, ?, ?)",
                             (session_hash, admin_id, now, expires_at))
            return admin_id

    async def session_admin(self, session_hash: str, *, now: float) -> int | None:
        """The admin whose live session this is, or None."""
        rows = await self._db.fetch(
            "SELECT admin_id FROM dashboard_sessions WHERE id_hash = ? AND expires_at > ?",
            (session_hash, now))
        return int(rows[0][0]) if rows else None

    async def close_session(self, session_hash: str) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM dashboard_sessions WHERE id_hash = ?", (session_hash,))

    # -- what the pages list ---------------------------------------------------

    async def find_people(self, query: str, *, limit: int) -> list[User]:
        """People whose id is `query`, or whose @username or name contains it: in any case, or
        (SQLite's lower() knows ASCII only) as typed; with an empty query, the ones seen last."""
        query = query.strip()
        if not query:
            rows = await self._db.fetch(
                "SELECT * FROM users ORDER BY updated_at DESC, id LIMIT ?", (limit,))
            return [row_to(User, row) for row in rows]
        exact = int(query) if query.isascii() and query.isdigit() and len(query) < 19 else -1
        typed = "%" + query.removeprefix("@").translate(_LIKE_ESCAPES) + "%"
        rows = await self._db.fetch(
            "SELECT * FROM users WHERE id = :id"
            " OR lower(coalesce(username, '')) LIKE CAST(:lower AS TEXT) ESCAPE '\\'"
            " OR lower(first_name || ' ' || coalesce(last_name, '')) LIKE CAST(:lower AS TEXT)"
            " ESCAPE '\\' OR first_name || ' ' || coalesce(last_name, '') LIKE CAST(:typed AS TEXT)"
            " ESCAPE '\\' ORDER BY id = :id DESC, updated_at DESC, id LIMIT :limit",
            {"id": exact, "lower": typed.lower(), "typed": typed, "limit": limit})
        return [row_to(User, row) for row in rows]

    async def people(self, ids: Iterable[int]) -> dict[int, User]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self._db.fetch(
            f"SELECT * FROM users WHERE id IN ({', '.join('?' * len(wanted))})", wanted)
        return {user.id: user for user in (row_to(User, row) for row in rows)}

    async def generations(self, *, state: str | None, model: str | None, limit: int,
                          offset: int) -> list[Generation]:
        """Newest first; `state` and `model` narrow it (None: any)."""
        rows = await self._db.fetch(
            "SELECT * FROM generations WHERE (CAST(? AS TEXT) IS NULL OR state = ?)"
            " AND (CAST(? AS TEXT) IS NULL OR model = ?) ORDER BY id DESC LIMIT ? OFFSET ?",
            (state, state, model, model, limit, offset))
        return [row_to(Generation, row) for row in rows]

    async def generation_models(self) -> list[str]:
        """Every model that has a generation (what the filter offers)."""
        rows = await self._db.fetch("SELECT DISTINCT model FROM generations ORDER BY model")
        return [str(row[0]) for row in rows]

    async def purchases(self, *, limit: int, offset: int) -> list[Purchase]:
        rows = await self._db.fetch(
            "SELECT * FROM purchases ORDER BY created_at DESC, charge_id LIMIT ? OFFSET ?",
            (limit, offset))
        return [row_to(Purchase, row) for row in rows]

    async def broadcasts(self, *, limit: int) -> list[Broadcast]:
        """The newest first (store/broadcasts.py keeps them; /broadcast makes them)."""
        rows = await self._db.fetch("SELECT * FROM broadcasts ORDER BY id DESC LIMIT ?", (limit,))
        return [row_to(Broadcast, row) for row in rows]
