"""`python -m bot migrate-to <url>`: the SQLite database copied into an empty PostgreSQL one,
rows and ids as they are, in one transaction, then checked.

The bot must be stopped (the caller holds the SQLite file's lock): a copy of a database still
being written would miss what comes after it. The target must hold no data: merging two
ledgers is not a copy. After the copy, in the same transaction, every table must hold as many
rows as its source and every balance must equal the sum of its ledger rows; otherwise nothing
is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

from bot.store import migrations
from bot.store.database import Database, StoreError
from bot.store.postgres import PostgresDatabase
from bot.store.sqlite import SqliteDatabase
from bot.store.store import INSTANCE_TIMEOUT

# Parents before the rows that name them (users before generations before ledger rows). Not
# `instances`: the file's were one process's past runs.
TABLES = ("users", "generations", "ledger", "drafts", "purchases", "updates", "chats",
          "model_overrides", "flags", "choices", "prompts", "delivered_files", "promo_codes",
          "promo_redemptions", "kie_readings", "dashboard_links",
          "dashboard_sessions", "broadcasts", "broadcast_recipients", "improvements")
IDENTITIES = ("generations", "ledger", "drafts", "prompts", "broadcasts")  # ids the database hands out


class TransferError(StoreError):
    """One line for the operator; nothing was written."""


async def migrate_to(source: Path, url: str, *, pool_size: int = 2) -> str:
    """Copy the SQLite file `source` (which must exist) into the PostgreSQL database at
    `url`; say what moved."""
    sqlite = await SqliteDatabase.open(source)
    try:
        await sqlite.migrate(migrations.SQLITE)  # an older file is brought up to date first
        postgres = await PostgresDatabase.open(url, pool_size=pool_size)
        try:
            await postgres.migrate(migrations.POSTGRES)
            return await _copy(sqlite, postgres)
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


async def _copy(source: Database, target: Database) -> str:
    counts: dict[str, int] = {}
    async with target.transaction() as tx:
        if (await tx.fetch("SELECT count(*) FROM instances WHERE seen_at > ?",
                           (time.time() - INSTANCE_TIMEOUT,)))[0][0]:
            raise TransferError("the PostgreSQL database is in use by a running bot; stop it "
                                "first")
        for table in TABLES:
            if (await tx.fetch(f"SELECT count(*) FROM {table}"))[0][0]:
                raise TransferError(f"the PostgreSQL database already holds {table}; "
                                    "migrate into an empty one")
        for table in TABLES:
            rows = await source.fetch(f"SELECT * FROM {table}")
            counts[table] = len(rows)
            if not rows:
                continue
            columns = list(rows[0].keys())
            await tx.execute_many(
                f"INSERT INTO {table} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})",
                [tuple(row[column] for column in columns) for row in rows])
        for table in IDENTITIES:  # the next id handed out comes after the copied ones
            await tx.fetch(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                           f" coalesce(max(id), 0) + 1, false) FROM {table}")
        for table in TABLES:
            copied = (await tx.fetch(f"SELECT count(*) FROM {table}"))[0][0]
            if copied != counts[table]:
                raise TransferError(f"{table}: {copied} rows copied of {counts[table]}")
        wrong = await tx.fetch(
            "SELECT u.id FROM users u LEFT JOIN (SELECT user_id, sum(amount) AS total"
            " FROM ledger GROUP BY user_id) l ON l.user_id = u.id"
            " WHERE u.balance != coalesce(l.total, 0) LIMIT 5")
        if wrong:
            raise TransferError("balances differ from their ledger after the copy (users "
                                f"{', '.join(str(row[0]) for row in wrong)}); nothing was kept")
    return (f"copied {counts['users']} users, {counts['ledger']} ledger rows, "
            f"{counts['generations']} generations, {counts['purchases']} purchases; "
            "every balance equals the sum of its ledger")
