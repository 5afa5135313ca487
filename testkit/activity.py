"""Some weeks of a bot's life written into a store through its own methods, each row on its
day (the store's clock set for each): people arriving, buying Stars, generating pictures, videos
and songs, some failing and refunded, admins' top-ups; and the Kie balance as the credit watch
reads it, falling by a little more than the catalog's costs, with one top-up. What the
dashboard's browser test and its screenshot (docs/dashboard.png) draw."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

import bot.store.store as store_module
from bot.catalog import get_model
from bot.store import GenerationState, Store
from bot.store.daily import record_kie_reading

DAY = 86400.0
ADMIN = 1000
MODELS = {"image": [("imagen4", 40), ("seedream", 20), ("gpt4o", 25)],
          "video": [("kling", 150), ("hailuo", 100)], "audio": [("suno", 30)]}
NAMES = ["Alice", "Boris", "Chen", "Dana", "Émile", "Fatima", "Гриша", "Hana", "Ivan", "Jules",
         "Kofi", "Lena", "Mateo", "Nadia", "Олег", "Priya"]


@contextmanager
def store_clock(clock: SimpleNamespace) -> Iterator[None]:
    """Every time the store writes is `clock.now` meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "time", SimpleNamespace(time=lambda: clock.now))
        yield


async def seed(store: Store, *, days: int, now: float, seed: int = 7) -> list[int]:
    """`days` days of activity ending on the day of `now` (at most until `now`); the ids of the
    people made."""
    rng = random.Random(seed)
    clock = SimpleNamespace(now=0.0)
    people: list[int] = []
    first = (now // DAY - days + 1) * DAY
    kie_balance = 20_000.0
    await record_kie_reading(store, "seed", kie_balance, now=first - 60)
    with store_clock(clock):
        for day in range(days):
            spent = 0.0
            start = first + day * DAY
            hours = sorted(rng.uniform(0, 23) for _ in range(16))
            if day == days - 1:  # today: so far only
                hours = [h for h in hours if start + h * 3600 < now] or [0.0]
            moments = iter(start + h * 3600 for h in hours)
            clock.now = next(moments)
            for _ in range(min(rng.randint(1, 3), len(NAMES) - len(people))):
                user_id = 5000 + len(people)
                name = NAMES[len(people)]
                await store.upsert_user(user_id, username=name.lower() if name.isascii() else None,
                                        first_name=name, last_name=None, tg_language="en",
                                        starting_credits=100)
                people.append(user_id)
            for moment in moments:
                clock.now = moment
                user_id = rng.choice(people)
                action = rng.random()
                if action < 0.2:
                    credits, stars = rng.choice([(100, 50), (500, 200), (2000, 700)])
                    await store.record_purchase(user_id, charge_id=f"stx-seed-{day}-{moment}",
                                                package=f"{credits}:{stars}", credits=credits,
                                                stars=stars)
                elif action < 0.25:
                    await store.topup(user_id, 200, admin_id=ADMIN, note="seed")
                else:
                    spent += await _generation(store, rng, user_id, moment)
            kie_balance -= spent * rng.uniform(1.0, 1.15) - (5000 if day == days // 2 else 0)
            await record_kie_reading(store, "seed", kie_balance, now=min(start + DAY - 60, now))
    return people


async def _generation(store: Store, rng: random.Random, user_id: int, now: float) -> float:
    """A generation started at `now`, delivered or failed: what Kie charged for it."""
    kind = rng.choices(list(MODELS), weights=[70, 20, 10])[0]
    model, price = rng.choice(MODELS[kind])
    user = await store.get_user(user_id)
    if user is None or user.balance < price:
        await store.topup(user_id, 500, admin_id=ADMIN, note="seed")
    draft = await store.create_draft(user_id=user_id, chat_id=user_id, request_message_id=1,
                                     kind=kind, prompt=f"a {kind} of a red fox", model=model,
                                     options={})
    started = await store.start_generation(draft.id, revision=0, input={}, price=price,
                                           deadline_at=now + 600)
    await store.mark_submitted(started.id, f"seed-task-{started.id}", now)
    if rng.random() < 0.15:
        await store.fail_generation(started.id, "Kie.ai could not make it")
        return 0.0
    await store.mark_succeeded(started.id, [f"http://127.0.0.1:9/seed/{started.id}.png"],
                               deliver_by=now + 600, lease_until=now + 60)
    await store.mark_delivered(started.id, GenerationState.DELIVERED)
    found = get_model(model)
    return found.kie_cost if found else 0.0
