"""The SQLite engine (aiosqlite): one connection for the process, one transaction at a time."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store.database import Connection, Database, IntegrityError, Params, Row

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
        """Waits for the lock only while a transaction holds the connection. Otherwise the
        statement joins aiosqlite's queue at once (synchronously, before this coroutine first
        yields), so it runs before the BEGIN of any transaction that starts later, on its own:
        taking the lock each time would queue every statement of every update behind a hand-over
        through the event loop, one after the other."""
        if not self._lock.locked():
            return await self._connection.fetch(sql, params)
        async with self._lock:
            return await self._connection.fetch(sql, params)

    async def open_session(self, instance: str) -> None:
        """There are no others: the file is locked to one process."""

    async def notify(self, topic: str) -> None:
        """No other process to tell."""

    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        """No other process to hear from."""

    async def advisory_lock(self, name: str) -> asyncio.Event:
        """Always this process's, never lost."""
        return asyncio.Event()

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
