"""The bot's figures per UTC day, for `/stats [days]` and the dashboard's charts; and the Kie.ai
balance readings (table `kie_readings`) that give Kie's own count of what was spent.

    from bot.store.daily import DayStats, daily_stats
    days = await daily_stats(store, days=7, now=time.time(), kie_costs=kie_costs(),
                             star_usd=MONEY.star_usd, kie_credit_usd=MONEY.kie_credit_usd)

(`kie_costs` and `MONEY` from bot.catalog: the store knows no catalog; services/stats.py's
`daily` passes them.) Each figure of a day counts what happened during it, by the time the
row records: a purchase on the day it was paid, its refund on the day the Stars went back, a
generation on the day it was started (with the state it is in now).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from bot.store.models import GenerationState, LedgerKind

if TYPE_CHECKING:
    from bot.store.database import Connection, Row
    from bot.store.store import Store

DAY = 86400.0
# Readings older than this go with the store's purge (Store.purge): a year of /stats, and some.
READING_MEMORY = 400 * DAY

# Which ledger kinds make which figure (a kind in none of them is still in DayStats.ledger).
BOUGHT = (LedgerKind.PURCHASE, LedgerKind.PURCHASE_REFUND, LedgerKind.PURCHASE_REFUND_UNDONE)
GRANTED = (LedgerKind.GRANT, LedgerKind.TOPUP, LedgerKind.PROMO, LedgerKind.INVITE_BONUS,
           LedgerKind.REFERRAL, LedgerKind.REFERRAL_REFUND, LedgerKind.REFERRAL_REFUND_UNDONE)
# The states in which Kie produced the result (and, we assume, charged for it).
PRODUCED = (GenerationState.SUCCEEDED, GenerationState.DELIVERED, GenerationState.UNDELIVERABLE)


@dataclass(frozen=True, slots=True)
class DayStats:
    """One UTC day's figures; a day with nothing in it is all zeros (and kie_drop None).

    - `day`: the UTC date.
    - `new_people`: people who started the bot for the first time that day.
    - `active_people`: people who did something that day that the database keeps a dated row
      of: started the bot for the first time, started a generation, bought Stars, redeemed a
      promo code. (A message that does none of these leaves no dated row: the updates table
      keeps update ids, not senders; pickers are forgotten within hours.)
    - `paying_people`: people who paid Stars that day (refunded later or not); `purchases`:
      how many payments.
    - `stars`: Stars received that day minus Stars refunded that day (a refund counts on the
      day Telegram confirmed it, whenever the purchase was).
    - `bought`: credits bought with Stars, net of the credits taken back by Stars refunds
      (ledger kinds in BOUGHT).
    - `granted`: credits given without money: starting credits, admin top-ups (net of admin
      debits), promo codes, invite bonuses, referral shares net of their take-backs (GRANTED).
    - `charged`: credits charged for generations (a positive number); `refunded`: credits
      refunded for generations that failed.
    - `ledger`: the sum of that day's ledger amounts by kind, every kind (the four figures
      above are made of these).
    - `by_kind`, `by_state`: generations started that day, by kind (image, video, audio) and by
      the state they are in now (pending, running, succeeded, delivered, undeliverable,
      failed); `by_model`: by model id; `failures_by_model`: those failed, by model id.
    - `kie_credits`: the Kie credits those generations cost, by the catalog: each produced
      one (succeeded, delivered, undeliverable: Kie made the result) times its model's
      `kie_cost`. It assumes Kie charges only for results it produced (kie-api.md says
      nothing of charging for a failed task), at the model's default options, and counts 0
      for a model no longer in the catalog; `kie_drop` is the check.
    - `kie_drop`: what the Kie balance fell that day as the credit watch read it: the sum of
      the decreases between consecutive readings of each key (an increase is a top-up, not
      spend), each on the day of its later reading; None when no pair of consecutive
      readings of a key ends on that day (the watch was not running).
    - `margin_usd`: money in minus money out in US dollars: `stars` × star_usd −
      `kie_credits` × kie_credit_usd (the rates are the catalog's [money]).
    """

    day: date
    new_people: int = 0
    active_people: int = 0
    paying_people: int = 0
    purchases: int = 0
    stars: int = 0
    bought: int = 0
    granted: int = 0
    charged: int = 0
    refunded: int = 0
    ledger: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    failures_by_model: dict[str, int] = field(default_factory=dict)
    kie_credits: float = 0.0
    kie_drop: float | None = None
    margin_usd: float = 0.0

    @property
    def generations(self) -> int:
        return sum(self.by_kind.values())


def margin(stars: int, kie_credits: float, *, star_usd: float, kie_credit_usd: float) -> float:
    """Money in minus money out, in US dollars."""
    return stars * star_usd - kie_credits * kie_credit_usd


def total(days: Sequence[DayStats]) -> DayStats:
    """The days added up, dated by the first: every count, sum and dict summed. People are
    person-days here (someone active on two days counts twice): only `new_people` is a count
    of people. `kie_drop` is None when every day's is."""
    if not days:
        raise ValueError("no days to add up")
    summed: dict[str, Any] = {"day": days[0].day}
    for spec in fields(DayStats):
        values = [getattr(day, spec.name) for day in days]
        if spec.name == "day":
            continue
        if spec.name == "kie_drop":
            seen = [value for value in values if value is not None]
            summed[spec.name] = sum(seen) if seen else None
        elif isinstance(values[0], dict):
            merged: defaultdict[str, int] = defaultdict(int)
            for value in values:
                for key, count in value.items():
                    merged[key] += count
            summed[spec.name] = dict(merged)
        else:
            summed[spec.name] = sum(values)
    return DayStats(**summed)


def day_index(at: float) -> int:
    """The UTC day a Unix time falls on, counted from 1970-01-01."""
    return int(at // DAY)


def balance_drops(readings: Iterable[tuple[str, float, float]]) -> dict[int, float]:
    """Kie's spend per UTC day (day_index) from balance readings `(key, read_at, credits)`:
    per key, in time order, each decrease from one reading to the next counts on the day of
    the later one; an increase (a top-up) counts nothing. A day is in the result, 0 or more,
    when at least one pair of consecutive readings ends on it."""
    drops: dict[int, float] = {}
    ordered = sorted(readings, key=lambda reading: (reading[0], reading[1]))
    for _, of_key in itertools.groupby(ordered, key=lambda reading: reading[0]):
        for (_, _, before), (_, at, after) in itertools.pairwise(of_key):
            day = day_index(at)
            drops[day] = drops.get(day, 0.0) + max(before - after, 0.0)
    return drops


async def record_kie_reading(store: Store, key_id: str, credits: float, *, now: float) -> None:
    """One reading of a Kie key's balance (`key_id`: kie.client.key_id's fingerprint)."""
    async with store.database.transaction() as db:
        await db.execute("INSERT INTO kie_readings (key_id, read_at, credits) VALUES (?, ?, ?)"
                         " ON CONFLICT (key_id, read_at) DO NOTHING", (key_id, now, credits))


# The days of the period as rows (day number from 0, its start): each figure joins its rows
# to the day they fall in, with the same comparisons on both engines (no floor(), which
# SQLite has only when built with its math functions).
_DAYS = ("WITH RECURSIVE days (day, start_at) AS ("
         "SELECT 0, CAST(:start AS DOUBLE PRECISION)"
         " UNION ALL SELECT day + 1, start_at + 86400 FROM days WHERE day < :last)")
# Who did something that day (see DayStats.active_people).
_ACTIVITY = ("(SELECT user_id, created_at FROM generations"
             " UNION ALL SELECT user_id, created_at FROM purchases"
             " UNION ALL SELECT user_id, created_at FROM promo_redemptions"
             " UNION ALL SELECT id, created_at FROM users)")


async def _per_day(db: Connection, span: dict[str, Any], select: str, table: str, at: str, *,
                   by: str = "") -> list[Row]:
    """`select` over `table`'s rows (as `t`) grouped by the day their `at` falls on (column 0,
    the day number) and by the columns `by` (next); `select`'s values after them."""
    group = f", {by}" if by else ""
    return await db.fetch(
        f"{_DAYS} SELECT d.day{group}, {select} FROM days d JOIN {table} t"
        f" ON t.{at} >= d.start_at AND t.{at} < d.start_at + 86400 GROUP BY d.day{group}",
        span)


async def daily_stats(store: Store, *, days: int, now: float, kie_costs: Mapping[str, float],
                      star_usd: float, kie_credit_usd: float) -> list[DayStats]:
    """`days` DayStats, oldest first, the last being the UTC day of `now` (so far).
    `kie_costs`: Kie credits per generation by model id (the catalog's kie_cost);
    `star_usd`, `kie_credit_usd`: what a Star brings and a Kie credit costs, in US dollars."""
    if days < 1:
        raise ValueError(f"days must be 1 or more, not {days}")
    first = day_index(now) - days + 1
    start = first * DAY
    span = {"start": start, "last": days - 1}
    figures: list[dict[str, Any]] = [
        {"ledger": {}, "by_kind": {}, "by_state": {}, "by_model": {}, "failures_by_model": {},
         "kie_credits": 0.0} for _ in range(days)]

    def add(day: int, name: str, key: str, value: int) -> None:
        counts = figures[day][name]
        counts[key] = counts.get(key, 0) + value

    async with store.database.transaction() as db:
        for row in await _per_day(db, span, "count(*)", "users", "created_at"):
            figures[row[0]]["new_people"] = int(row[1])
        for row in await _per_day(db, span, "count(DISTINCT t.user_id)", _ACTIVITY,
                                  "created_at"):
            figures[row[0]]["active_people"] = int(row[1])
        for row in await _per_day(db, span, "count(DISTINCT t.user_id), count(*), sum(t.stars)",
                                  "purchases", "created_at"):
            figures[row[0]].update(paying_people=int(row[1]), purchases=int(row[2]),
                                   stars=int(row[3]))
        refunds = await _per_day(db, span, "sum(t.stars)", "purchases", "refunded_at")
        ledger = await _per_day(db, span, "sum(t.amount)", "ledger", "created_at", by="t.kind")
        generations = await _per_day(db, span, "count(*)", "generations", "created_at",
                                     by="t.kind, t.state, t.model")
        readings = await db.fetch(
            "SELECT key_id, read_at, credits FROM kie_readings r WHERE read_at < :end AND"
            " read_at >= (SELECT coalesce(max(b.read_at), :start) FROM kie_readings b"
            " WHERE b.key_id = r.key_id AND b.read_at < :start)",
            {"start": start, "end": start + days * DAY})
    for row in refunds:
        figures[row[0]]["stars"] = figures[row[0]].get("stars", 0) - int(row[1])
    for row in ledger:
        add(row[0], "ledger", str(row[1]), int(row[2]))
    for day, kind, state, model, count in ((int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))
                                           for r in generations):
        add(day, "by_kind", kind, count)
        add(day, "by_state", state, count)
        add(day, "by_model", model, count)
        if state == GenerationState.FAILED:
            add(day, "failures_by_model", model, count)
        if state in PRODUCED:
            figures[day]["kie_credits"] += count * kie_costs.get(model, 0.0)
    drops = balance_drops((str(r[0]), float(r[1]), float(r[2])) for r in readings)
    result = []
    for number, figure in enumerate(figures):
        sums = figure["ledger"]
        stars, kie_credits = figure.get("stars", 0), figure["kie_credits"]
        result.append(DayStats(
            day=datetime.fromtimestamp((first + number) * DAY, UTC).date(),
            bought=sum(sums.get(kind, 0) for kind in BOUGHT),
            granted=sum(sums.get(kind, 0) for kind in GRANTED),
            charged=-sums.get(LedgerKind.CHARGE, 0), refunded=sums.get(LedgerKind.REFUND, 0),
            kie_drop=drops.get(first + number),
            margin_usd=margin(stars, kie_credits, star_usd=star_usd,
                              kie_credit_usd=kie_credit_usd),
            **figure))
    return result
