"""Fifty people confirm at once against Kie's 20-requests-per-window limit."""

from __future__ import annotations

from tests.fakes.kie import TaskPlan
from tests.load import crowd


async def test_fifty_users_at_once_all_delivered_without_a_single_429(tg, kie, bot, store):
    kie.default_plan = TaskPlan(reads_before_done=2)
    result = await crowd(tg, kie, 50)
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
    result = await crowd(tg, kie, 50)
    assert result.delivered == 50 and result.kie_429 == 0 and result.max_in_window <= 20
