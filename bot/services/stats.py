"""`/stats [days]` and the dashboard's figures per day, with the catalog's costs and rates."""

from __future__ import annotations

from bot.catalog import MODELS
from bot.store import Store
from bot.store.daily import DayStats, daily_stats


async def daily(store: Store, *, days: int, now: float) -> list[DayStats]:
    """store.daily's figures, with each model's Kie cost and the [money] rates of the catalog
    in use."""
    return await daily_stats(store, days=days, now=now,
                             kie_costs={model.id: model.kie_cost for model in MODELS},
                             star_usd=MODELS.money.star_usd,
                             kie_credit_usd=MODELS.money.kie_credit_usd)
