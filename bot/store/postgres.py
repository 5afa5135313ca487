"""The PostgreSQL engine (asyncpg): a pool, transactions at READ COMMITTED. Imported only when
DATABASE_URL is set: an embedded SQLite bot does not load the driver."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.store.database import Connection, Database, IntegrityError, Params, Row
from bot.store.lock import DatabaseInUse

# A quoted literal (left alone), a `?`, or a `:name` that is not half of a `::` cast.
_PLACEHOLDER = re.compile(r"'[^']*'|\?|(?<![:\w]):([A-Za-z_]\w*)")
# pg_advisory_lock keys: one for migrations, one for a process that holds the database alone.
_MIGRATION_LOCK = "kie-bot migrations"
_EXCLUSIVE_LOCK = "kie-bot instance"


@lru_cache(maxsize=512)
def _postgres_sql(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """`?`/`:name` → `$n`; with the names in `$n` order when the statement uses names."""
    names: list[str] = []
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        text = match.group(0)
        if text.startswith("'"):
            return text
        name = match.group(1)
        if name is None:
            counter += 1
            return f"${counter}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    translated = _PLACEHOLDER.sub(number, sql)
    if names and counter:
        raise ValueError(f"both ? and :name in {sql!r}")
    return translated, tuple(names) if names else None


def _postgres_args(sql: str, params: Params) -> tuple[str, Sequence[Any]]:
    translated, names = _postgres_sql(sql)
    if names is None:
        return translated, list(params) if not isinstance(params, Mapping) else []
    if not isinstance(params, Mapping):
        raise TypeError(f"named parameters need a mapping: {sql!r}")
    return translated, [params[name] for name in names]


class _PostgresConnection(Connection):
    def __init__(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        translated, args = _postgres_args(sql, params)
        try:
            return list(await self._connection.fetch(translated, *args))
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(str(error)) from error

    async def execute(self, sql: str, params: Params = ()) -> int:
        translated, args = _postgres_args(sql, params)
        try:
            status = await self._connection.execute(translated, *args)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(str(error)) from error
        # "UPDATE 3", "INSERT 0 1", "DELETE 0": the count is the last word.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        translated, _ = _postgres_sql(sql)
        try:
            await self._connection.executemany(translated, rows)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(str(error)) from error


class PostgresDatabase(Database):
    """A pool of connections; transactions run concurrently at READ COMMITTED, so the store
    locks the rows a decision depends on (`FOR UPDATE`) before it decides."""

    def __init__(self, pool: asyncpg.Pool, holder: asyncpg.Connection | None) -> None:
        self._pool = pool
        self._holder = holder  # keeps the exclusive lock, when one was asked for

    @classmethod
    async def open(cls, url: str, *, pool_size: int, exclusive: bool = False) -> PostgresDatabase:
        """`exclusive`: no other process may open this database (schema) exclusively while
        this one has it open: an advisory lock held by one connection, freed by the server
        when the process dies."""
        holder = None
        if exclusive:
            holder = await asyncpg.connect(url)
            try:
                if not await holder.fetchval(
                        "SELECT pg_try_advisory_lock(hashtext(current_schema() || $1))",
                        _EXCLUSIVE_LOCK):
                    raise DatabaseInUse("DATABASE_URL", await _lock_holder(holder))
                await holder.execute(f"SET application_name = 'kie-bot {os.getpid()}'")
            except BaseException:
                await holder.close()
                raise
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                             reset=_keep_session)
        except BaseException:
            if holder is not None:
                await holder.close()
            raise
        return cls(pool, holder)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[Connection]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield _PostgresConnection(connection)

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._pool.acquire() as connection:
            return await _PostgresConnection(connection).fetch(sql, params)

    async def migrate(self, migrations: Sequence[str]) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            # Instances starting together: one migrates, the others wait and find it done.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))",
                                     _MIGRATION_LOCK)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await connection.fetchval("SELECT max(version) FROM schema_version") or 0
            for number, script in enumerate(migrations[version:], start=version + 1):
                await connection.execute(script)  # no arguments: the whole script at once
                await connection.execute("INSERT INTO schema_version VALUES ($1)", number)

    async def close(self) -> None:
        await self._pool.close()
        if self._holder is not None:
            await self._holder.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A connection going back to the pool keeps its session: the store leaves nothing in it
    (no SET, LISTEN, cursors or session locks: the exclusive lock has a connection of its own,
    the migrations' lock ends with their transaction), and asyncpg still rolls back an
    unfinished transaction first. asyncpg's default reset is one more round trip per
    statement the store runs (bench.store_latency: about half of a read's time)."""


async def _lock_holder(connection: asyncpg.Connection) -> str:
    """The pid named by the process that holds the exclusive lock, if it named itself."""
    name = await connection.fetchval(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'kie-bot %'"
        " LIMIT 1")
    return str(name).removeprefix("kie-bot ") if name else ""


async def check_postgres(url: str) -> None:
    """Connect once and run a query: raises what stops the bot from using `url`."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
