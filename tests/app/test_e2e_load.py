"""Fifty people confirm at once against Kie's 20-requests-per-window limit; and a few on each
of Kie's APIs, the small version of `python -m bench.crowd`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bot.store import GenerationState, LedgerKind
from testkit.bot import WINDOW, make_settings
from testkit.fakes.kie import SUNO_MODELS, TaskPlan
from testkit.load import (
    EVERY_API,
    MEDIA_METHODS,
    MIXED,
    ask_of,
    crowd,
    crowd_user_id,
    methods_used,
    timed_plans,
)
from testkit.timing import stays

STARTING_CREDITS = 100  # conftest's settings


async def test_fifty_users_at_once_all_delivered_without_a_single_429(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=2)
    result = await crowd(tg, kie, store, 50)
    assert result.delivered == 50
    assert result.kie_429 == 0 and result.max_in_window <= 20
    assert len(kie.creates) == 50
    for n in range(50):
        user = await store.get_user(10_000 + n)
        assert user.balance == 80 and await store.ledger_sum(user.id) == 80
    print(f"\n50 users: {result.kie_requests} Kie requests "
          f"({result.kie_requests / 50:.2f} per image) in {result.seconds:.1f}s")


async def test_fifty_users_behind_network_latency_without_a_429(tg, kie, bot, store):
    """Kie counts a request when it arrives: latency on the way there and back must not put
    more than the limit into one of its windows."""
    kie.latency = (0.01, 0.1)  # each way: well above the old grant-time margin
    kie.default_plan = TaskPlan(reads_before_done=2)
    result = await crowd(tg, kie, store, 50)
    assert result.delivered == 50 and result.kie_429 == 0 and result.max_in_window <= 20


# Market tasks (picture, video, speech) answer "running" twice, then success; Suno walks all
# of PENDING → TEXT_SUCCESS → FIRST_SUCCESS before SUCCESS (one track ready must not deliver).
MARKET_PLAN = TaskPlan(reads_before_done=2)
SUNO_PLAN = TaskPlan(reads_before_done=3)
# The fewest requests a delivery can take: one create, then one read per state shown.
FLOOR = {"image": 1 + 3, "video": 1 + 3, "speech": 1 + 3, "song": 1 + 4}


def plan_for(body: dict[str, Any]) -> TaskPlan:
    return SUNO_PLAN if body.get("model") in SUNO_MODELS else MARKET_PLAN


async def test_fifty_users_asking_for_different_kinds_all_delivered_once_without_a_429(
        tg, kie, bot, store):
    """Pictures (Imagen 4), videos (Wan), songs (Suno v4.5: two tracks, one album) and speech
    (ElevenLabs) in rotation share one budget: every result arrives once by its own method, Kie
    never answers 429, and each person pays exactly the catalog's price."""
    kie.plan = plan_for
    result = await crowd(tg, kie, store, 50, timeout=60, asks=MIXED)
    print("\n" + result.report())

    assert result.kie_429 == 0 and result.max_in_window <= 20
    assert result.delivered == 50
    assert {name: s.people for name, s in result.by_ask.items()} == \
        {"image": 13, "video": 13, "song": 12, "speech": 12}
    for name, stats in result.by_ask.items():
        assert stats.delivered == stats.people and stats.kie_429 == 0
        assert stats.creates == stats.people  # one create each, never repeated
        assert stats.requests >= FLOOR[name] * stats.people  # else a read went uncounted
    assert len(kie.tasks) == 50

    # A second delivery would come from a later tracker pass: watch a few poll rounds for one.
    def sent() -> int:
        return sum(1 for method in MEDIA_METHODS for c in tg.calls_of(method) if c.ok)
    so_far = sent()
    await stays(lambda: sent() == so_far, 2 * WINDOW)
    delivered = await store.generations_in([GenerationState.DELIVERED])
    assert len(delivered) == 50
    by_user = {g.user_id: g for g in delivered}
    for n in range(50):
        ask, user_id = ask_of(n, MIXED), crowd_user_id(n)
        assert methods_used(tg, user_id) == {ask.method: 1}, f"user {user_id} ({ask.name})"
        generation = by_user[user_id]
        assert generation.model == ask.model and kie.tasks[generation.task_id].model == ask.kie_model
        assert generation.price == ask.price
        user = await store.get_user(user_id)
        assert user.balance == STARTING_CREDITS - ask.price == await store.ledger_sum(user_id)
        ledger = await store.ledger(user_id, 100)
        assert [r.amount for r in ledger if r.kind == LedgerKind.CHARGE] == [-ask.price]
        assert [r for r in ledger if r.kind == LedgerKind.REFUND] == []
    for call in tg.calls_of("sendMediaGroup"):  # the songs: both tracks in one album
        assert [m["type"] for m in call.params["media"]] == ["audio", "audio"]


# Two people per ask of EVERY_API; four of the second round fail on Kie: a market picture, a
# Suno song, a Veo video and a Runway video (each API's own failure spelling).
FAILING = tuple(len(EVERY_API) + n for n in (0, 3, 4, 6))


async def test_every_api_in_the_mix_each_generation_delivered_or_refunded_once_without_a_429(
        tg, kie, start_bot, store, tmp_path: Path):
    """A model on each of Kie's APIs (market picture, video and speech, Suno, Veo, Veo 1080p,
    Runway, Flux Kontext, 4o Image), confirmed at once, each API's tasks taking their own time
    (× 0.01): Kie never answers 429 and no key goes past its limit in a window; every
    generation started is delivered (its result sent once) or refunded, exactly once; and each
    API's calls, as the fake Kie records them per endpoint, come to a create and at least one
    status read per delivered generation."""
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))  # Veo costs 150
    kie.plan = timed_plans(EVERY_API, 0.01, failing=FAILING)
    people = 2 * len(EVERY_API)
    result = await crowd(tg, kie, store, people, timeout=60, asks=EVERY_API)
    print("\n" + result.report())

    assert result.kie_429 == 0 and max(result.peak_per_key.values()) <= kie.rate_limit
    assert result.unsettled == []
    assert result.unattributed == 0
    refunded = Counter(ask_of(n, EVERY_API).name for n in FAILING)
    for name, stats in result.by_ask.items():
        assert stats.started == stats.people == 2, name
        assert (stats.delivered, stats.refunded) == (2 - refunded[name], refunded[name]), name
        assert stats.creates == stats.started and stats.kie_429 == 0, name  # never repeated
        assert stats.reads >= stats.started, name
        assert stats.per_delivery >= 2, name  # a create and a read, at least
    assert result.by_ask["veo-1080p"].other >= result.by_ask["veo-1080p"].delivered  # its 1080p
    assert {s.api for s in result.by_ask.values()} == \
        {"market", "suno", "veo", "veo-1080p", "runway", "flux-kontext", "gpt4o-image"}
    # The fake's own count per API agrees: each call of the crowd's is one of an ask's.
    by_api = result.by_api
    assert sum(c["create"] for c in by_api.values()) == sum(s.creates for s in result.by_ask.values())
    assert sum(c["read"] for c in by_api.values()) == sum(s.reads for s in result.by_ask.values())
