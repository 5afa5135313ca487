"""A pool of Kie keys (KIE_API_KEYS beside KIE_API_KEY), against a fake Kie where every key is
an account of its own: its own rate window, its own tasks (read with another key: 404). New
tasks spread over the keys with room; each task is read and its files fetched through the key
that created it; a key Kie refuses leaves the pool, admins are told once, nobody is refunded
(a create it refused is made through another key)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.kie import KieClient, RateLimiter
from bot.kie.client import key_id
from bot.kie.constants import API_MARKET
from bot.kie.errors import KieNotFound
from testkit.bot import ADMIN_ID, KIE_KEY, WINDOW, make_settings
from testkit.chat import Person
from testkit.e2e import charges, generate, refunds
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.timing import stays

MORE = ["kie-second-key-do-not-log", "kie-third-key-do-not-log"]


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    async with FakeKie(api_key=KIE_KEY, rate_limit=20, window=WINDOW, more_keys=MORE) as fake:
        yield fake


def creates_by_key(kie: FakeKie) -> collections.Counter[str]:
    return collections.Counter(r.key for r in kie.requests if r.path.endswith("createTask"))


async def test_a_task_is_read_through_the_key_that_created_it(kie):
    client = KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                       limiter=RateLimiter(20, WINDOW), more_keys=[SecretStr(k) for k in MORE],
                       backoff=0.01)
    try:
        assert client.key_ids() == [key_id(SecretStr(k)) for k in (KIE_KEY, *MORE)]
        assert client.rate_limit == 60  # three accounts, 20 each
        second = client.key_ids()[1]
        task_id = await client.start(API_MARKET, "google/imagen4", {"prompt": "a fox"}, key=second)
        assert kie.tasks[task_id].key == MORE[0]
        status = await client.status(API_MARKET, task_id, key=second)
        assert status.phase in {"running", "success"}
        with pytest.raises(KieNotFound):  # another account does not know it
            await client.status(API_MARKET, task_id)
        # Retired keys take no new tasks; the last one left stays whatever Kie says of it.
        assert client.retire(second) is True and client.retire(second) is False
        assert second not in {client.pick_key() for _ in range(10)}
        assert client.retire(client.key_ids()[2]) is True
        assert client.retire(client.key_ids()[0]) is False
        assert client.pick_key() == client.key_ids()[0] and client.rate_limit == 20
    finally:
        await client.aclose()


async def test_sixty_people_spread_over_three_keys_each_within_its_limit(
        tg, kie, tmp_path, start_bot, caplog):
    """60 pictures at once: each key takes a share of the creates, no key is ever answered
    429, every task is read through its own key (a wrong key would lose it: refunded)."""
    kie.default_plan = TaskPlan(reads_before_done=2)
    await start_bot(make_settings(tmp_path, tg, kie, kie_api_keys=",".join(MORE)))
    people = [Person(tg, 3000 + n, f"K{n}") for n in range(60)]
    await asyncio.gather(*(generate(p, f"lynx number {n}") for n, p in enumerate(people)))
    await tg.wait_for("sendPhoto", count=60, timeout=60)
    await asyncio.sleep(0.5)
    assert len(tg.calls_of("sendPhoto")) == 60
    by_key = creates_by_key(kie)
    assert set(by_key) == {KIE_KEY, *MORE} and sum(by_key.values()) == 60, by_key
    assert min(by_key.values()) >= 10, by_key  # spread, not all on the first key
    assert kie.rate_limited == 0, kie.rate_limited_by_key
    reads = collections.Counter(r.key for r in kie.requests if r.path.endswith("recordInfo"))
    assert all(reads[key] for key in by_key)
    assert all(r.code == 200 for r in kie.requests if r.path.endswith("recordInfo")), \
        "a task was read through a key that did not create it"
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert not any(key in logged for key in MORE)


@pytest.mark.parametrize("code", [401, 402])
async def test_a_key_kie_refuses_leaves_the_pool_and_admins_are_told_once(
        tg, kie, tmp_path, start_bot, store, code):
    await start_bot(make_settings(tmp_path, tg, kie, kie_api_keys=",".join(MORE)))
    kie.refused_keys[MORE[0]] = code  # after the start-up check: the creates find it
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/start")
    await admin.told("Hi")
    people = [Person(tg, 4000 + n, f"R{n}") for n in range(12)]
    await asyncio.gather(*(generate(p, f"seal number {n}") for n, p in enumerate(people)))
    await tg.wait_for("sendPhoto", count=12, timeout=30)
    refused = [r for r in kie.requests if r.key == MORE[0] and r.path.endswith("createTask")]
    # Tried by the creates under way when the first refusal came back, then out of the pool:
    # a second wave never goes to it.
    assert refused
    more = [Person(tg, 4100 + n, f"S{n}") for n in range(6)]
    await asyncio.gather(*(generate(p, f"walrus number {n}") for n, p in enumerate(more)))
    await tg.wait_for("sendPhoto", count=18, timeout=30)
    assert [r for r in kie.requests if r.key == MORE[0] and r.path.endswith("createTask")] == refused
    people += more
    alerts = [c for c in tg.calls_of("sendMessage")
              if c.params["chat_id"] == ADMIN_ID and key_id(SecretStr(MORE[0])) in c.params["text"]]
    assert len(alerts) == 1, alerts
    assert MORE[0] not in alerts[0].params["text"]  # named by its fingerprint, never shown
    for person in people:
        assert len(await charges(store, person.user["id"])) == 1
        assert await refunds(store, person.user["id"]) == []


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "lone-key"])
async def test_a_key_revoked_while_its_task_runs_refunds_it_once_and_reads_it_no_more(
        tg, kie, tmp_path, start_bot, store, pool):
    """Kie answers 401 to the status reads of a running task (its key was revoked): the task is
    refunded at once as Kie being unavailable, not read until its deadline; admins are told
    once; the key is not read again. In a pool the key leaves it and the next task goes to
    another key; a lone key refuses the next create too, and admins are still told once."""
    kie.plan_by_prompt["revoked"] = TaskPlan(outcome="never")
    kie.default_plan = TaskPlan(reads_before_done=1)
    more = {"kie_api_keys": ",".join(MORE)} if pool else {}
    poll_gap = 0.1  # the longest gap between two reads of a task (0.2 s in the other tests)
    await start_bot(make_settings(tmp_path, tg, kie, kie_poll_max_interval=poll_gap, **more))
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/start")
    await admin.told("Hi")
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a fox on a revoked key")
    while not kie.tasks or next(iter(kie.tasks.values())).reads == 0:  # made, and running
        await asyncio.sleep(0.01)
    [task] = kie.tasks.values()
    kie.refused_keys[task.key] = 401

    told = await alice.told("temporarily unavailable")
    assert "40 credits returned" in told.params["text"]

    def refused_reads() -> list[int]:
        reads = [r for r in kie.requests if r.key == task.key and r.path.endswith("recordInfo")]
        return [r.code for r in reads if r.code != 200]
    # Five poll gaps: time enough for reads that should not come.
    await stays(lambda: refused_reads() == [401], 5 * poll_gap)
    assert len(await refunds(store, 42)) == 1 and (await store.get_user(42)).balance == 100

    bob = Person(tg, 43, "Bob")
    await generate(bob, "a fox after it")
    if pool:
        await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == 43)
        assert [t.key for t in kie.tasks.values()].count(task.key) == 1
    else:
        await bob.told("temporarily unavailable")
    alerts = [c for c in tg.calls_of("sendMessage")
              if c.params["chat_id"] == ADMIN_ID and "Kie.ai refuses" in c.params["text"]]
    assert len(alerts) == 1, alerts
