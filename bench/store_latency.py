"""Benchmark: the store's latency per operation, SQLite beside PostgreSQL, measured in the same run.

    .venv/bin/python -m bench.store_latency [--operations 2000] [--url postgresql://…]

Each engine gets a new, empty database: a SQLite file in a temporary folder, a PostgreSQL schema
of its own on the server at `--url` (TEST_DATABASE_URL, else the local one), dropped afterwards.
Users are registered first; then one coroutine awaits each operation `operations` times, one
call after another, in the order a generation lives them (drafts, then their starts, then the
tracker's work on the running tasks), and each call's wall time is one sample. Last, 50
coroutines record updates (see_update) at once: the rate of a flood of updates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from bench.report import Row, percentile, print_report
from bot.store import StartLimits, Store, User

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
OPERATIONS = 2000
USERS = 100
FIRST_USER = 80_000
CONCURRENCY = 50
CLAIM = 20  # the tracker's batch
PRICE = 10
# Checked as the bot checks non-admins (a locked user row and a count), but never reached.
LIMITS = StartLimits(max_open=10**6, max_per_minute=10**6)
NAMES = ("see_update", "get_user", "ledger", "create_draft", "update_draft", "start_generation",
         "mark_submitted", "claim_checks", "record_check", "fail_generation")

T = TypeVar("T")


@dataclass
class Run:
    samples: dict[str, list[float]]  # seconds per call, by operation
    flood: float  # see_update calls per second, CONCURRENCY at once
    seconds: float  # the whole run, setup included


async def timed(samples: list[float], call: Awaitable[T]) -> T:
    began = time.perf_counter()
    result = await call
    samples.append(time.perf_counter() - began)
    return result


async def see(store: Store, update_id: int, user_id: int) -> User | None:
    """An update from a known user saying of them what their registration said, so see_update
    takes its usual path: one statement, no write to the user's row."""
    return await store.see_update(update_id, user_id, username=f"bench{user_id}", first_name="Bench",
                                  last_name=None, tg_language="en", starting_credits=0)


async def measure(store: Store, n: int) -> Run:
    began = time.perf_counter()
    samples: dict[str, list[float]] = {name: [] for name in NAMES}
    users = [FIRST_USER + k for k in range(USERS)]
    for user in users:  # enough credits for every start, whoever's turn it is
        await store.upsert_user(user, username=f"bench{user}", first_name="Bench", last_name=None,
                                tg_language="en", starting_credits=n * PRICE)

    def owner(i: int) -> int:
        return users[i % USERS]

    for i in range(n):
        await timed(samples["see_update"], see(store, i + 1, owner(i)))
    for i in range(n):
        await timed(samples["get_user"], store.get_user(owner(i)))
    for i in range(n):
        await timed(samples["ledger"], store.ledger(owner(i)))
    drafts = [await timed(samples["create_draft"], store.create_draft(
        user_id=owner(i), chat_id=owner(i), request_message_id=i, kind="image",
        prompt="a lighthouse at dusk, oil on canvas")) for i in range(n)]
    drafts = [await timed(samples["update_draft"], store.update_draft(
        draft.id, model="bench-model", options={"aspect_ratio": "16:9"})) for draft in drafts]
    generations = [await timed(samples["start_generation"], store.start_generation(
        draft.id, revision=draft.revision, input={"prompt": draft.prompt}, price=PRICE,
        deadline_at=time.time() + 3600, limits=LIMITS)) for draft in drafts]
    for generation in generations:
        await timed(samples["mark_submitted"], store.mark_submitted(
            generation.id, f"task-{generation.id}", next_check_at=time.time()))
    for _ in range(n):
        # A lease of zero leaves what was claimed due (behind the others): every call finds a
        # full batch among the n running tasks, where the tracker's lease would run them out.
        now = time.time()
        claimed = await timed(samples["claim_checks"], store.claim_checks(now, now, limit=CLAIM))
        if len(claimed) != min(CLAIM, n):
            raise RuntimeError(f"claim_checks found {len(claimed)} due tasks, not {CLAIM}")
    for generation in generations:
        await timed(samples["record_check"], store.record_check(
            generation.id, "generating", next_check_at=time.time() + 30))
    for generation in generations:
        refunded = await timed(samples["fail_generation"], store.fail_generation(
            generation.id, "timeout"))
        if refunded is None:
            raise RuntimeError(f"generation {generation.id} was not running")
    flood = await see_update_flood(store, users, first_update=n + 1, n=n)
    return Run(samples, flood, time.perf_counter() - began)


async def see_update_flood(store: Store, users: Sequence[int], first_update: int, n: int) -> float:
    """see_update calls per second with CONCURRENCY coroutines each awaiting its own in turn."""
    each = max(1, n // CONCURRENCY)
    ids = iter(range(first_update, first_update + (each + 1) * CONCURRENCY))

    async def person(k: int, calls: int) -> None:
        for _ in range(calls):
            await see(store, next(ids), users[k % len(users)])

    # Untimed: the pool opens its connections (each preparing its statements) on first use.
    await asyncio.gather(*(person(k, 1) for k in range(CONCURRENCY)))
    began = time.perf_counter()
    await asyncio.gather(*(person(k, each) for k in range(CONCURRENCY)))
    return each * CONCURRENCY / (time.perf_counter() - began)


async def run_engine(target: Path | str, n: int) -> Run:
    store = await Store.open(target)  # the bot's default pool (10) on PostgreSQL
    try:
        return await measure(store, n)
    finally:
        await store.close()


@dataclass
class Server:
    url: str  # of a new, empty schema
    version: str
    durability: str  # fsync and synchronous_commit: what a commit waits for


@asynccontextmanager
async def schema(admin: asyncpg.Connection, url: str) -> AsyncIterator[Server]:
    """A new schema on `admin`'s server, dropped afterwards (the tests' postgres_url)."""
    name = f"bench_{uuid.uuid4().hex[:16]}"
    version = await admin.fetchval("SHOW server_version")
    durability = (f"fsync {await admin.fetchval('SHOW fsync')}, synchronous_commit "
                  f"{await admin.fetchval('SHOW synchronous_commit')}")
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield Server(f"{url}{'&' if '?' in url else '?'}search_path={name}", version, durability)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def where(url: str) -> str:
    """The server, without the credentials a URL may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def us(samples: Sequence[float]) -> tuple[float, float]:
    return 1e6 * percentile(samples, 0.50), 1e6 * percentile(samples, 0.95)


def rows(lite: Run, pg: Run | None) -> list[Row]:
    out = []
    for name in NAMES:
        l50, l95 = us(lite.samples[name])
        sqlite = f"SQLite {l50:.0f} / {l95:.0f} µs"
        if pg is None:
            out.append(Row(f"{name}, p50 / p95", sqlite))
            continue
        p50, p95 = us(pg.samples[name])
        out.append(Row(f"{name}, p50 / p95", f"PostgreSQL {p50:.0f} / {p95:.0f} µs "
                                             f"= {p50 / l50:.1f}× / {p95 / l95:.1f}× SQLite", sqlite))
    sqlite = f"SQLite {lite.flood:.0f}/s"
    flood = f"see_update, {CONCURRENCY} coroutines at once"
    out.append(Row(flood, sqlite) if pg is None else
               Row(flood, f"PostgreSQL {pg.flood:.0f}/s = {pg.flood / lite.flood:.2f}× SQLite", sqlite))
    return out


async def run(n: int = OPERATIONS, url: str | None = None) -> tuple[list[str], list[Row]]:
    url = url or os.environ.get("TEST_DATABASE_URL", DEFAULT_URL)
    notes = [f"{n} calls of each operation, one after another in one coroutine, spread over "
             f"{USERS} users; p50 / p95 of each call's wall time. claim_checks: {CLAIM} of "
             f"{n} running tasks each call. start_generation checks per-user limits."]
    print("store_latency: SQLite…", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        lite = await run_engine(Path(folder) / "bench.sqlite3", n)
    notes.append(f"SQLite: a file in a temporary folder (WAL, synchronous=NORMAL); {lite.seconds:.1f} s")
    try:
        admin = await asyncpg.connect(url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        notes.append(f"PostgreSQL: not reachable at {where(url)} ({error}): SQLite only")
        return notes, rows(lite, None)
    try:
        async with schema(admin, url) as server:
            print("store_latency: PostgreSQL…", file=sys.stderr)
            pg = await run_engine(server.url, n)
    finally:
        await admin.close()
    notes.append(f"PostgreSQL {server.version} at {where(url)} ({server.durability}), "
                 f"a new schema, a pool of 10; {pg.seconds:.1f} s")
    return notes, rows(lite, pg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=OPERATIONS, help="calls of each operation")
    parser.add_argument("--url", help="PostgreSQL server (default: TEST_DATABASE_URL, else "
                                      f"{DEFAULT_URL}); a new schema is made there and dropped")
    args = parser.parse_args()
    notes, table = asyncio.run(run(args.operations, args.url))
    print_report("Store latency, SQLite and PostgreSQL", notes, table)


if __name__ == "__main__":
    main()
