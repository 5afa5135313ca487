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


def _refused(error: sqlite3.IntegrityError) -> IntegrityError:
    """A constraint's refusal as the store's own error, SQLite's as its cause."""
    refused = IntegrityError(str(error))
    refused.__cause__ = error
    return refused


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise _refused(error) from error


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


class _Batch:
    """Statements of several coroutines run in aiosqlite's thread as one job, each in its own
    implicit transaction (autocommit) as if sent alone: one's error is its caller's only."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Params]] = []
        self.results: list[asyncio.Future[list[Row]]] = []

    def add(self, sql: str, params: Params) -> asyncio.Future[list[Row]]:
        result: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
        self.statements.append((sql, params))
        self.results.append(result)
        return result

    async def run(self, db: aiosqlite.Connection) -> None:
        try:
            # aiosqlite runs one statement per job in its public API; _execute is the one door
            # all of them use, and _conn its sqlite3 connection, on the thread the job runs in.
            outcomes = await db._execute(  # type: ignore[no-untyped-call]
                _run_all, db._conn, self.statements)
        except asyncio.CancelledError:
            for result in self.results:
                result.cancel()
            raise
        except Exception as error:  # the connection closed: every caller hears it
            outcomes = [error] * len(self.statements)
        for result, outcome in zip(self.results, outcomes, strict=True):
            if result.cancelled():
                continue
            if isinstance(outcome, sqlite3.IntegrityError):
                result.set_exception(_refused(outcome))
            elif isinstance(outcome, BaseException):
                result.set_exception(outcome)
            else:
                result.set_result(outcome)


def _run_all(connection: sqlite3.Connection,
             statements: list[tuple[str, Params]]) -> list[list[Row] | BaseException]:
    """In aiosqlite's thread."""
    outcomes: list[list[Row] | BaseException] = []
    for sql, params in statements:
        try:
            outcomes.append(connection.execute(sql, params).fetchall())
        except Exception as error:  # handed to the statement's caller
            outcomes.append(error)
    return outcomes


class SqliteDatabase(Database):
    """One connection serves the whole process; every transaction runs alone under one lock
    (`BEGIN IMMEDIATE`), so a check and the write that depends on it never interleave with
    another coroutine's, and a crash leaves each either done or not started."""

    shared = False

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._connection = _SqliteConnection(db)
        self._lock = asyncio.Lock()
        self._forming: _Batch | None = None  # statements of this loop pass, sent at its end
        self._sent: set[asyncio.Task[None]] = set()  # batches running (held till they end)

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
            await self._batches_done()
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
        """A statement on its own. Those asked for in one pass of the event loop go to
        aiosqlite's thread together, as one job (_Batch): a hand-over to that thread and back
        costs more than a statement (thread switches, the GIL passed back and forth: bench.updates
        counted ~0.1 ms of CPU each under load), and every update makes one or more. While a
        transaction holds the connection a statement waits for it, as it must not land inside."""
        if self._lock.locked() and self._forming is None:
            async with self._lock:
                return await self._connection.fetch(sql, params)
        if self._forming is None:
            self._forming = _Batch()
            asyncio.get_running_loop().call_soon(self._send_batch)
        return await self._forming.add(_sqlite_sql(sql), params)

    def _send_batch(self) -> None:
        batch, self._forming = self._forming, None
        if batch is not None:
            task = asyncio.ensure_future(batch.run(self._db))
            self._sent.add(task)
            task.add_done_callback(self._sent.discard)

    async def _batches_done(self) -> None:
        """Before a transaction begins: every batch asked for until now has run (one forming
        is sent at the end of this loop pass), so none of their statements lands inside it."""
        while self._forming is not None or self._sent:
            if self._sent:
                await asyncio.wait(self._sent)
            else:
                await asyncio.sleep(0)  # the forming one is sent first

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
            await self._batches_done()
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
