"""The models the bot offers: the one place to add a model or change a price.

Kie.ai model ids and input field names come from kie-api.md; prices are the operator's, in
bot credits. A model's options become picker buttons; each choice writes one Kie input field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.i18n import N_


@dataclass(frozen=True)
class Choice:
    value: Any                 # what Kie is sent
    label: str                 # what the button says
    price_factor: int = 1      # the model's price is multiplied by this (e.g. number of images)


@dataclass(frozen=True)
class Option:
    key: str                   # short and stable: stored in drafts, packed in callback data
    field: str                 # the Kie input field it sets
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
class Model:
    id: str                    # the bot's own short id (callback data, drafts, /models)
    kie_model: str             # Kie.ai's model id
    kind: str                  # image | video | audio
    name: str
    price: int                 # bot credits, before option factors
    expected_seconds: int      # typical duration: the poller checks often until then
    poll_interval: float = 3.0
    max_prompt: int = 5000
    prompt_field: str = "prompt"
    options: tuple[Option, ...] = ()
    fixed_input: dict[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        return {option.key: option.default for option in self.options}

    def resolve(self, chosen: dict[str, Any]) -> dict[str, Any]:
        """The user's choices, completed with defaults and stripped of unknown or stale keys."""
        return {option.key: option.choice(chosen.get(option.key, option.default)).value
                for option in self.options}

    def price_for(self, chosen: dict[str, Any]) -> int:
        price = self.price
        for option in self.options:
            price *= option.choice(chosen.get(option.key, option.default)).price_factor
        return price

    def build_input(self, prompt: str, chosen: dict[str, Any]) -> dict[str, Any]:
        values = self.resolve(chosen)
        kie_input = {self.prompt_field: prompt, **self.fixed_input}
        for option in self.options:
            kie_input[option.field] = values[option.key]
        return kie_input


def _choices(*values: str) -> tuple[Choice, ...]:
    return tuple(Choice(value, value) for value in values)


_IMAGEN_RATIOS = Option("ar", "aspect_ratio", N_("Aspect ratio"),
                        _choices("1:1", "16:9", "9:16", "3:4", "4:3"), "1:1")

MODELS: tuple[Model, ...] = (
    Model("imagen4", "google/imagen4", "image", "Imagen 4", price=40, expected_seconds=20,
          options=(_IMAGEN_RATIOS,)),
    Model("seedream", "bytedance/seedream", "image", "Seedream", price=20, expected_seconds=15,
          options=(Option("ar", "image_size", N_("Aspect ratio"), (
              Choice("square_hd", "1:1"), Choice("portrait_4_3", "3:4"),
              Choice("portrait_16_9", "9:16"), Choice("landscape_4_3", "4:3"),
              Choice("landscape_16_9", "16:9")), "square_hd"),)),
    Model("grok", "grok-imagine/text-to-image", "image", "Grok Imagine", price=30,
          expected_seconds=20,
          options=(Option("ar", "aspect_ratio", N_("Aspect ratio"),
                          _choices("3:2", "1:1", "2:3"), "3:2"),)),
    Model("imagen4f", "google/imagen4-fast", "image", "Imagen 4 Fast", price=10,
          expected_seconds=10,
          options=(_IMAGEN_RATIOS,
                   Option("n", "num_images", N_("Number of images"),
                          tuple(Choice(str(n), str(n), price_factor=n) for n in range(1, 5)),
                          "1"))),
)

_BY_ID = {model.id: model for model in MODELS}


def get_model(model_id: str | None) -> Model | None:
    return _BY_ID.get(model_id or "")


def models_of(kind: str) -> list[Model]:
    return [model for model in MODELS if model.kind == kind]


KINDS = ("image",)
