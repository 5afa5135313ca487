"""The two engines the store runs on, behind one small interface: SQLite through aiosqlite (the
embedded default) and PostgreSQL through asyncpg (`DATABASE_URL`, for several instances).

The store's SQL is written once, in what both engines accept (`RETURNING`, `ON CONFLICT`,
partial unique indexes, `FILTER`, `IS [NOT] DISTINCT FROM`, window functions). What differs
lives here and in the two migration lists, and nowhere else:
- placeholders: the store writes `?` or `:name`; PostgreSQL is handed `$1…` (translated once
  per statement text);
- row locks: PostgreSQL takes them (`FOR UPDATE`, `SKIP LOCKED`); SQLite runs one transaction
  at a time (`BEGIN IMMEDIATE` under one lock), so they are cut from its statements;
- `least(…)`: PostgreSQL's own; SQLite is given one that, like PostgreSQL's, ignores NULLs;
- durability: PostgreSQL syncs every commit; SQLite syncs at once only `durable` ones;
- errors: either engine's constraint violation is raised as IntegrityError.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.store.lock import DatabaseInUse

Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """A result row: by column name or position (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str | int, /) -> Any: ...
    def keys(self) -> Any: ...


class IntegrityError(Exception):
    """A constraint refused a write (a CHECK, a unique index, the ledger's append-only rule)."""


class Connection(ABC):
    """Statements inside one transaction (or, from Database.fetch, on their own)."""

    @abstractmethod
    async def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; how many rows it changed."""

    @abstractmethod
    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters (`?` placeholders)."""


class Database(ABC):
    # Several processes may share it: what one finds in the database may be another's work.
    shared: bool

    @abstractmethod
    def transaction(self, *, durable: bool = False) -> AbstractAsyncContextManager[Connection]:
        """`async with db.transaction() as tx:` all of tx's statements, or none. `durable`:
        the commit is on disk when the block ends, for money from outside (purchases,
        their refunds, top-ups)."""

    @abstractmethod
    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        """One statement in its own transaction."""

    @abstractmethod
    async def migrate(self, migrations: Sequence[str]) -> None:
        """Apply the migrations not applied yet, in order, each with its number recorded."""

    @abstractmethod
    async def close(self) -> None: ...


# -- SQLite --------------------------------------------------------------------------------

_ROW_LOCKS = re.compile(r"\s+FOR UPDATE(\s+SKIP LOCKED)?", re.IGNORECASE)


@lru_cache(maxsize=512)
def _sqlite_sql(sql: str) -> str:
    return _ROW_LOCKS.sub("", sql)


def _least(*values: Any) -> Any:
    present = [value for value in values if value is not None]
    return min(present) if present else None


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise IntegrityError(str(error)) from error


class _SqliteConnection(Connection):
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        with _sqlite_errors():
            return list(await self._db.execute_fetchall(_sqlite_sql(sql), params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        with _sqlite_errors():
            cursor = await self._db.execute(_sqlite_sql(sql), params)
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _sqlite_errors():
            await self._db.executemany(_sqlite_sql(sql), rows)


class SqliteDatabase(Database):
    """One connection serves the whole process; every transaction runs alone under one lock
    (`BEGIN IMMEDIATE`), so a check and the write that depends on it never interleave with
    another coroutine's, and a crash leaves each either done or not started."""

    shared = False

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._connection = _SqliteConnection(db)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> SqliteDatabase:
        if sqlite3.sqlite_version_info < (3, 39):  # IS [NOT] DISTINCT FROM
            raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old: 3.39 or newer")
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL (with WAL): a commit survives the process dying; a durable one is committed
        # FULL, to survive a power cut too.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.create_function("least", -1, _least, deterministic=True)
        return cls(db)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[Connection]:
        async with self._lock:
            if durable:  # set outside the transaction: inside one it would not apply
                await self._db.execute("PRAGMA synchronous=FULL")
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._connection
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")
            finally:
                if durable:
                    await self._db.execute("PRAGMA synchronous=NORMAL")

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return await self._connection.fetch(sql, params)

    async def migrate(self, migrations: Sequence[str]) -> None:
        async with self.transaction() as tx:
            version = (await tx.fetch("PRAGMA user_version"))[0][0]
            for number, script in enumerate(migrations[version:], start=version + 1):
                for statement in _statements(script):
                    await tx.execute(statement)
                await tx.execute(f"PRAGMA user_version = {number}")

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()


def _statements(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps triggers whole."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


# -- PostgreSQL ----------------------------------------------------------------------------

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

    shared = True

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
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
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
