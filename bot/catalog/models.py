"""What the catalog is made of: frozen objects, built once from the catalog file (loader.py)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

KINDS = ("image", "video", "audio")
# What a follow-up model does to a delivered result (the catalog's `role`): never offered in a
# picker, only under a result of its kind. An upscale's result is not upscaled again.
UPSCALE: Final = "upscale"
EXTEND: Final = "extend"
Role = Literal["upscale", "extend"]
ROLES: tuple[Role, ...] = (UPSCALE, EXTEND)
# The language every text of the catalog has (as every message id of the bot is English).
SOURCE_LANGUAGE = "en"


@dataclass(frozen=True)
class Localized:
    """A text the catalog file gives in each language the bot speaks. str() is the English one,
    as a message id is."""

    texts: Mapping[str, str]

    def in_language(self, language: str) -> str:
        return self.texts.get(language) or str(self)

    def __str__(self) -> str:
        return self.texts[SOURCE_LANGUAGE]


@dataclass(frozen=True)
class Choice:
    value: Any                 # what Kie is sent in the option's field (and what drafts store)
    label: str                 # what the button says (a message id where it is words)
    price_factor: int = 1      # the model's price is multiplied by this (e.g. number of images)
    surcharge: int = 0         # credits added on top (e.g. a higher resolution)
    # What Kie is sent instead of {field: value}: one choice setting several fields, so that
    # only combinations the model accepts are offered (Hailuo refuses 1080P with 10 s).
    input: dict[str, Any] | None = None

    @property
    def priced(self) -> bool:
        return self.price_factor != 1 or self.surcharge != 0


@dataclass(frozen=True)
class Option:
    key: str                   # short and stable: stored in drafts, packed in callback data
    field: str                 # the Kie input field it sets (unless a choice says `input`)
    title: str                 # a message id, translated where shown
    choices: tuple[Choice, ...]
    default: Any

    def choice(self, value: Any) -> Choice:
        """The choice with this value; the default for a value the catalog no longer has."""
        for wanted in (value, self.default):
            for choice in self.choices:
                if choice.value == wanted:
                    return choice
        raise LookupError(f"option {self.key}: default {self.default!r} is not a choice")


@dataclass(frozen=True)
class ImageSlot:
    """Where a model takes its input picture: one URL, or a list of them."""

    field: str
    many: bool


@dataclass(frozen=True, kw_only=True)
class Model:
    id: str                    # the bot's own short id (callback data, drafts, /models)
    kie_model: str             # Kie.ai's model id
    kind: str                  # image | video | audio
    name: str                  # a brand; a message id where it says what it does (translated)
    price: int                 # bot credits, before option factors
    kie_cost: float            # Kie credits one generation costs at the default choices
    expected_seconds: int      # typical duration: the poller checks often until then
    deadline: str              # whose KIE_DEADLINE_* gives it up (a kind)
    poll_interval: float = 3.0
    max_prompt: int = 5000
    prompt_field: str = "prompt"
    improve: bool = True       # ✨ Improve on its picker (not where the prompt is the content)
    options: tuple[Option, ...] = ()
    fixed_input: dict[str, Any] = field(default_factory=dict)
    api: str                   # which of Kie's wire formats runs it (kie/constants.py)
    image: ImageSlot | None = None  # set: the model needs a picture (offered only with one)
    menu_id: str | None = None  # the entry it belongs to (a picture variant's text model)
    good_for: Localized        # /models' one line on what it is best at
    role: str | None = None    # a follow-up (ROLES): run on a result, not from a prompt
    source_field: str | None = None  # a follow-up's Kie input field that takes the result
    applies_to: tuple[str, ...] = ()  # a follow-up's models (ids or entries); () = its kind's

    @property
    def entry(self) -> str:
        """The menu entry's id: what admins name in /price and /model (a text model and its
        picture variant are one entry)."""
        return self.menu_id or self.id

    def defaults(self) -> dict[str, Any]:
        return {option.key: option.default for option in self.options}

    def resolve(self, chosen: dict[str, Any]) -> dict[str, Any]:
        """The user's choices, completed with defaults and stripped of unknown or stale keys."""
        return {option.key: option.choice(chosen.get(option.key, option.default)).value
                for option in self.options}

    def price_for(self, chosen: dict[str, Any]) -> int:
        choices = [option.choice(chosen.get(option.key, option.default)) for option in self.options]
        price = self.price
        for choice in choices:
            price *= choice.price_factor
        return price + sum(choice.surcharge for choice in choices)

    @property
    def varies_in_price(self) -> bool:
        return any(choice.priced for option in self.options for choice in option.choices)

    @cached_property
    def lowest_price(self) -> int:
        """The price of the cheapest combination of choices ("from N credits"): every
        combination priced, once per model (a model list draws it for each of its buttons; an
        admin's price makes a Model of its own: Offer.model)."""
        combos = itertools.product(*([c.value for c in o.choices] for o in self.options))
        return min(self.price_for(dict(zip((o.key for o in self.options), combo, strict=True)))
                   for combo in combos)

    def build_input(self, prompt: str, chosen: dict[str, Any]) -> dict[str, Any]:
        values = self.resolve(chosen)
        kie_input = {self.prompt_field: prompt, **self.fixed_input}
        for option in self.options:
            choice = option.choice(values[option.key])
            kie_input.update(choice.input if choice.input is not None
                             else {option.field: choice.value})
        return kie_input

    def follows(self, model: Model) -> bool:
        """Whether this follow-up may run on a result of `model`: never on a follow-up's, but
        an extended song may be extended again (by the same entry)."""
        if model.role is not None:
            return model.role == EXTEND and model.id == self.id
        return (model.kind == self.kind
                and (not self.applies_to or bool({model.id, model.entry} & set(self.applies_to))))

    def follow_up_input(self, source: str) -> dict[str, Any]:
        """A follow-up's Kie input: its fixed input and the result (a URL, Suno's audioId)."""
        if self.source_field is None:
            raise ValueError(f"model {self.id} is no follow-up")
        return {**self.fixed_input, self.source_field: source}

    def with_picture(self, kie_input: dict[str, Any], url: str) -> dict[str, Any]:
        """The input with the uploaded picture's URL in the field this model reads it from."""
        if self.image is None:
            raise ValueError(f"model {self.id} takes no picture")
        return {**kie_input, self.image.field: [url] if self.image.many else url}


@dataclass(frozen=True)
class Money:
    """The catalog's `[money]`: US dollars per Kie credit spent and per Star received."""

    kie_credit_usd: float
    star_usd: float
