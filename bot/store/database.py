"""The two engines the store runs on, behind one small interface: SQLite through aiosqlite (the
embedded default) and PostgreSQL through asyncpg (`DATABASE_URL`, for several instances).

The store's SQL is written once, in what both engines accept (`RETURNING`, `ON CONFLICT`,
partial unique indexes, `FILTER`, `IS [NOT] DISTINCT FROM`, window functions). What differs
lives in the two engines' modules (store/sqlite.py, store/postgres.py) and in the two
migration lists, and nowhere else:
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
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bot.errors import BotError

Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """A result row: by column name or position (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str | int, /) -> Any: ...
    def keys(self) -> Any: ...


class StoreError(BotError):
    """The root of the store's refusals."""


class IntegrityError(StoreError):
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
    # Several processes may use it at once (PostgreSQL); SQLite's file is one process's.
    shared: bool
    # The ids of the instances alive (a subquery; `:alive_after`: seen since then).
    live_instances: str = "SELECT id FROM instances WHERE seen_at > :alive_after"
    # The ids of the instances whose process still exists, seen lately or not (a frozen one:
    # SIGSTOP, a long pause): what they were sending may still reach Telegram.
    connected_instances: str = "SELECT id FROM instances"

    @abstractmethod
    async def open_session(self, instance: str) -> None:
        """This process's own session with the database, named for `instance` and open for the
        process's life: its presence (the others see it connected), its LISTEN and its advisory
        locks."""

    @abstractmethod
    async def notify(self, topic: str) -> None:
        """NOTIFY the processes sharing the database of `topic` (new work, an instance come or
        gone)."""

    @abstractmethod
    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        """LISTEN: call `callback` when a process notifies `topic` (from open_session on)."""

    @abstractmethod
    async def advisory_lock(self, name: str) -> asyncio.Event:
        """Wait until this process holds the advisory lock `name`, which one process at a time
        holds among those sharing the database (long polling: Telegram serves one getUpdates
        at a time). The event is set if the lock is lost (the process's session broke)."""

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
