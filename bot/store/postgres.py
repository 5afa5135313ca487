"""The PostgreSQL engine (asyncpg): a pool, transactions at READ COMMITTED. Imported only when
DATABASE_URL is set: an embedded SQLite bot does not load the driver."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bot.store.database import Connection, Database, IntegrityError, Params, Row

log = logging.getLogger(__name__)

# A quoted literal (left alone), a `?`, or a `:name` that is not half of a `::` cast.
_PLACEHOLDER = re.compile(r"'[^']*'|\?|(?<![:\w]):([A-Za-z_]\w*)")
# The advisory lock key under which migrations run.
_MIGRATION_LOCK = "kie-bot migrations"
# NOTIFY's channel; the payload is the topic (store.Store: new work, instances changed).
_CHANNEL = "kie_bot"
LOCK_RETRY = 2.0  # seconds between two tries for an advisory lock another process holds


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


@contextmanager
def _postgres_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(str(error)) from error


class _PostgresConnection(Connection):
    def __init__(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        translated, args = _postgres_args(sql, params)
        with _postgres_errors():
            return list(await self._connection.fetch(translated, *args))

    async def execute(self, sql: str, params: Params = ()) -> int:
        translated, args = _postgres_args(sql, params)
        with _postgres_errors():
            status = await self._connection.execute(translated, *args)
        # "UPDATE 3", "INSERT 0 1", "DELETE 0": the count is the last word.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        translated, _ = _postgres_sql(sql)
        with _postgres_errors():
            await self._connection.executemany(translated, rows)


class PostgresDatabase(Database):
    """A pool of connections; transactions run concurrently at READ COMMITTED, so the store
    locks the rows a decision depends on (`FOR UPDATE`) before it decides."""

    shared = True
    # Alive: seen lately, and its presence connection is still open. A killed process's
    # connection ends with it, so its work passes on at once, not after INSTANCE_TIMEOUT.
    connected_instances = (
        "SELECT id FROM instances WHERE 'kie-bot ' || id IN"
        " (SELECT application_name FROM pg_stat_activity)")
    live_instances = f"{connected_instances} AND seen_at > :alive_after"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        self._presence: asyncpg.Connection | None = None
        self._instance = ""
        self._heard: dict[str, list[Callable[[], None]]] = {}  # listen's callbacks

    @classmethod
    async def open(cls, url: str, *, pool_size: int) -> PostgresDatabase:
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                             reset=_keep_session), url)

    async def open_session(self, instance: str) -> None:
        """One connection of its own, named for the instance, open for the process's life
        (reopened here if it broke): the pool's come and go."""
        self._instance = instance
        if self._presence is None or self._presence.is_closed():
            self._presence = await asyncpg.connect(
                self._url, server_settings={"application_name": f"kie-bot {instance}"})
            await self._presence.add_listener(_CHANNEL, self._hear)

    def _hear(self, connection: object, pid: int, channel: str, topic: object) -> None:
        for callback in self._heard.get(str(topic), ()):
            callback()

    async def notify(self, topic: str) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT pg_notify($1, $2)", _CHANNEL, topic)

    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        self._heard.setdefault(topic, []).append(callback)

    async def advisory_lock(self, name: str) -> asyncio.Event:
        """A session advisory lock on the presence connection: the server frees it the moment
        the holder's connection ends (the process killed, the network cut), and the holder
        hears of its own loss from asyncpg when that connection ends."""
        while True:
            await self.open_session(self._instance)
            presence = self._presence
            assert presence is not None
            try:
                if await presence.fetchval(
                        "SELECT pg_try_advisory_lock(hashtext(current_schema() || $1))", name):
                    return _loss_of(presence)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("trying for the advisory lock %s failed: %s", name, error)
            await asyncio.sleep(LOCK_RETRY)

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
        if self._presence is not None:
            await self._presence.close()


def _loss_of(connection: asyncpg.Connection) -> asyncio.Event:
    """An event set when `connection` ends."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    return lost


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A connection going back to the pool keeps its session: the store leaves nothing in it
    (no SET, LISTEN, cursors or session locks: the migrations' lock ends with their
    transaction), and asyncpg still rolls back an
    unfinished transaction first. asyncpg's default reset is one more round trip per
    statement the store runs (bench.store_latency: about half of a read's time)."""


async def check_postgres(url: str) -> None:
    """Connect once and run a query: raises what stops the bot from using `url`."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
