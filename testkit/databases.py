"""The store's engines for tests: a SQLite file in the test's folder, or a PostgreSQL schema of
its own on the machine's server (`TEST_DATABASE_URL`, else the local one at 127.0.0.1:5432).

Where no PostgreSQL answers, its tests are skipped with the reason, unless REQUIRE_POSTGRES is
set (.ci/run sets it): then that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bot.store import Store

ENGINES = ["sqlite", "postgres"]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_url() -> str:
    return server_url()


def server_url(url: str | None = None) -> str:
    """The server to make schemas on: `url`, else TEST_DATABASE_URL, else the local one."""
    return url or os.environ.get("TEST_DATABASE_URL", DEFAULT_URL)


@asynccontextmanager
async def schema(admin: asyncpg.Connection, url: str, *,
                 drop: bool = True) -> AsyncIterator[tuple[str, str]]:
    """(URL, name) of a new schema, dropped afterwards unless `drop` is False (a post-mortem
    reads it; `DROP SCHEMA <name> CASCADE` when done) (bench.store_latency, testkit/chaos_pg.py)."""
    name = f"bench_{uuid.uuid4().hex[:16]}"
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}search_path={name}", name
    finally:
        if drop:
            await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


async def _connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_server_url(), timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"no PostgreSQL at TEST_DATABASE_URL or {DEFAULT_URL}: {error}"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@asynccontextmanager
async def postgres_url() -> AsyncIterator[str]:
    """A URL whose tables live in a new, empty schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await _connect()
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield _with_schema(_server_url(), schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@asynccontextmanager
async def database(engine: str, folder: Path) -> AsyncIterator[str | Path]:
    """What Store.open takes, for `engine`: a new, empty database."""
    if engine == "sqlite":
        yield folder / "bot.sqlite3"
        return
    async with postgres_url() as url:
        yield url


@asynccontextmanager
async def open_store(engine: str, folder: Path) -> AsyncIterator[Store]:
    async with database(engine, folder) as target:
        store = await Store.open(target)
        try:
            yield store
        finally:
            await store.close()


def environment(target: str | Path) -> dict[str, str]:
    """The setting that points `python -m bot` at `target`."""
    if isinstance(target, Path):
        return {"DATABASE_PATH": str(target)}
    return {"DATABASE_URL": target}
