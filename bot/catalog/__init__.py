"""The models the bot offers, read from the catalog file (catalog.toml beside this module, or
the operator's at CATALOG_PATH): the one place to add a model or change a price.

The shipped file is read when this module is imported; `load_catalog` puts the operator's in its
place at start, before anything is offered. MODELS is one object for the bot's life (modules
import it by name), so it is its contents that are replaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from bot.catalog.improve import ImproveSpec
from bot.catalog.loader import SHIPPED, read_catalog, read_improve, read_money
from bot.catalog.models import (
    EXTEND,
    KINDS,
    ROLES,
    UPSCALE,
    Choice,
    ImageSlot,
    Localized,
    Model,
    Money,
    Option,
)

__all__ = ["COMMANDS", "EXTEND", "KINDS", "MODELS", "ROLES", "SHIPPED", "UPSCALE", "Catalog", "Choice",
           "ImageSlot", "Localized", "Model", "Offer", "Option", "get_model", "load_catalog",
           "models_of", "models_of_entry"]


class Catalog(Sequence[Model]):
    """The models, in menu order (the first of a kind is its picker's default)."""

    money: Money  # the [money] rates (/stats' margin): the file's, else the shipped file's

    def __init__(self, models: Iterable[Model], improve: ImproveSpec | None = None) -> None:
        self.improve = improve  # ✨ Improve's [improve] table (None: not offered)
        self.replace(models)

    def replace(self, models: Iterable[Model], improve: ImproveSpec | None = None) -> None:
        """The models of another file; its [improve] table too, where it has one."""
        self.improve = improve or self.improve
        self._models = tuple(models)
        self._by_id = {model.id: model for model in self._models}

    def get(self, model_id: str) -> Model | None:
        return self._by_id.get(model_id)

    @overload
    def __getitem__(self, index: int) -> Model: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Model]: ...
    def __getitem__(self, index: int | slice) -> Model | Sequence[Model]:
        return self._models[index]

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models)


MODELS = Catalog(read_catalog(SHIPPED), read_improve(SHIPPED))
MODELS.money = read_money(SHIPPED)


def load_catalog(path: Path) -> None:
    """The catalog in the file at `path` instead of the one offered so far (CatalogError: the
    file is wrong, and nothing changed)."""
    models, improve, money = read_catalog(path), read_improve(path), read_money(path, MODELS.money)
    MODELS.replace(models, improve)
    MODELS.money = money


def get_model(model_id: str | None) -> Model | None:
    """The catalog's model, hidden or not, at the catalog's price (for work already paid)."""
    return MODELS.get(model_id or "")


def models_of(kind: str, *, picture: bool = False) -> list[Model]:
    """The models of a kind that work from a prompt alone, or (picture) from a picture too
    (not the follow-ups, which work on a result)."""
    return [model for model in MODELS
            if model.kind == kind and model.role is None and (model.image is not None) == picture]


def models_of_entry(entry: str) -> list[Model]:
    """The models an admin means by a menu entry's id (its picture variant included)."""
    return [model for model in MODELS if entry in (model.entry, model.id)]


@dataclass(frozen=True)
class Offer:
    """The catalog as offered now: the operator's prices (by model id) replace the catalog's,
    and hidden models are not offered. Built fresh for each request (services/offers.py)."""

    prices: dict[str, int] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()

    def model(self, model_id: str | None) -> Model | None:
        model = get_model(model_id)
        if model is None or model.id in self.hidden:
            return None
        price = self.prices.get(model.id)
        return model if price is None else dataclasses.replace(model, price=price)

    def models_of(self, kind: str, *, picture: bool = False) -> list[Model]:
        return [offered for model in models_of(kind, picture=picture)
                if (offered := self.model(model.id)) is not None]

    def follow_ups(self, kind: str) -> list[Model]:
        """The follow-ups of a kind that some result's button runs now (⬆️ ➕ under its
        results), in catalog order: not one that another, first in the catalog, stands in front of."""
        used = {chosen.id for model in MODELS if model.kind == kind and model.role is None
                for role in ROLES if (chosen := self.follow_up(model.id, role)) is not None}
        return [offered for model in MODELS if model.id in used
                and (offered := self.model(model.id)) is not None]

    def follow_up(self, model_id: str, role: str) -> Model | None:
        """The follow-up with this role offered for results of `model_id`: the first in the
        catalog's order that applies to it and is not hidden (None: no such button)."""
        source = get_model(model_id)
        return next((offered for model in MODELS
                     if model.role == role and source is not None and model.follows(source)
                     and (offered := self.model(model.id)) is not None), None)


# The command that opens each kind's picker.
COMMANDS = {"image": "image", "video": "video", "audio": "music"}
