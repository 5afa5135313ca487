"""The chaos run of testkit/chaos.py (`python -m bench.chaos`) as a test: 200 generations by 50
people while the bot process is SIGKILLed and restarted, Kie fails tasks and answers 429 and
5xx, callbacks are lost or repeated, Telegram answers 429 and 403 — then every invariant of the
credits must hold. And the
same on PostgreSQL (testkit/chaos_pg.py): two instances on one schema, two Kie keys, either
instance SIGKILLed or frozen (SIGSTOP) for 20-45 s.

Slow (about two minutes per seed on SQLite, five on PostgreSQL), so it is marked `slow` and
skipped unless CHAOS=1:

    CHAOS=1 .venv/bin/python -m pytest tests/process/test_chaos.py -n 0 -s

(`-n 0`: the runs share two cores badly; `-s` prints each run's table.) Without CHAOS=1 it is
skipped, also under `-m slow`. The PostgreSQL run needs a server at TEST_DATABASE_URL (else the
local one at 127.0.0.1:5432); without one it is skipped, unless REQUIRE_POSTGRES is set. The same
runs as scripts: `.venv/bin/python -m bench.chaos [--engine postgres]`.
"""

from __future__ import annotations

import logging
import os

import asyncpg
import pytest

from testkit.chaos import ChaosConfig, run_chaos
from testkit.chaos_pg import PgChaosConfig, run_chaos_pg
from testkit.databases import server_url as postgres_url

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CHAOS") != "1", reason="slow chaos run: set CHAOS=1"),
    pytest.mark.timeout(900),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_invariant_holds_through_kills_and_faults(
        seed: int, caplog: pytest.LogCaptureFixture) -> None:
    # The fakes' servers log each request a killed bot cut short: expected here.
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    report = await run_chaos(ChaosConfig(seed=seed))
    print("\n" + report.table())
    assert report.ok, "\n" + report.table()


@pytest.mark.timeout(1800)
async def test_every_invariant_holds_with_two_instances_on_postgres(
        caplog: pytest.LogCaptureFixture) -> None:
    """Two instances, two keys, kills and 20-45 s freezes of either: besides the SQLite run's
    invariants, a result sent twice only across a SIGKILL within 1 s of Telegram taking it, no
    create reaching Kie after its generation was refunded, and an interrupted create refunded
    only once the instance that charged it was gone."""
    try:
        server = await asyncpg.connect(postgres_url(), timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"no PostgreSQL at TEST_DATABASE_URL or the local one: {error}"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    await server.close()
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    report = await run_chaos_pg(PgChaosConfig(seed=1))
    print("\n" + report.table())
    assert report.ok, "\n" + report.table()
