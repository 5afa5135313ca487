"""The catalog as offered now: admins' price overrides and hidden models, read from the store
for each request, so a change applies at once (in every instance sharing the database)."""

from __future__ import annotations

from bot.catalog import Offer, models_of_entry
from bot.store import ModelOverride, Store

HIDDEN_BY_ADMIN = "admin"
HIDDEN_BY_KIE = "kie"  # Kie answered "model disabled" (505)


async def current_offer(store: Store) -> Offer:
    return offer_of(await store.model_overrides())


def offer_of(overrides: dict[str, ModelOverride]) -> Offer:
    return Offer(
        prices={model: o.price for model, o in overrides.items() if o.price is not None},
        hidden=frozenset(model for model, o in overrides.items() if o.hidden_by is not None))


async def set_price(store: Store, entry: str, price: int | None) -> bool:
    """Override the base price of a menu entry (None: back to the catalog's); False if the
    catalog has no such entry."""
    models = models_of_entry(entry)
    for model in models:
        await store.set_model_price(model.id, price)
    return bool(models)


async def set_shown(store: Store, entry: str, shown: bool) -> bool:
    """Hide a menu entry or offer it again (also after Kie disabled it); False if unknown."""
    models = models_of_entry(entry)
    for model in models:
        await store.set_model_hidden(model.id, None if shown else HIDDEN_BY_ADMIN)
    return bool(models)
