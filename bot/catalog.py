"""The models the bot offers: the one place to add a model or change a price.

Kie.ai model ids and input field names come from kie-api.md; prices are the operator's, in
bot credits. A model's options become picker buttons; each choice writes one Kie input field.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import N_
from bot.kie.constants import API_MARKET, API_SUNO


@dataclass(frozen=True)
class Choice:
    value: Any                 # what Kie is sent in the option's field (and what drafts store)
    label: str                 # what the button says
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


IMAGE_URL = ImageSlot("image_url", many=False)
IMAGE_URLS = ImageSlot("image_urls", many=True)


@dataclass(frozen=True)
class Model:
    id: str                    # the bot's own short id (callback data, drafts, /models)
    kie_model: str             # Kie.ai's model id
    kind: str                  # image | video | audio
    name: str                  # a brand; a message id where it says what it does (translated)
    price: int                 # bot credits, before option factors
    expected_seconds: int      # typical duration: the poller checks often until then
    poll_interval: float = 3.0
    max_prompt: int = 5000
    prompt_field: str = "prompt"
    options: tuple[Option, ...] = ()
    fixed_input: dict[str, Any] = field(default_factory=dict)
    api: str = API_MARKET      # which of Kie's wire formats runs it (kie/constants.py)
    image: ImageSlot | None = None  # set: the model needs a picture (offered only with one)
    menu_id: str | None = None  # the entry it belongs to (a picture variant's text model)
    good_for: str = ""         # a message id: /models' one line on what it is best at

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

    @property
    def lowest_price(self) -> int:
        """The price of the cheapest combination of choices ("from N credits")."""
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

    def with_picture(self, kie_input: dict[str, Any], url: str) -> dict[str, Any]:
        """The input with the uploaded picture's URL in the field this model reads it from."""
        if self.image is None:
            raise ValueError(f"model {self.id} takes no picture")
        return {**kie_input, self.image.field: [url] if self.image.many else url}


def _from_picture(model: Model, kie_model: str, image: ImageSlot, **changes: Any) -> Model:
    """The same menu entry, run by the model's image-to-X id when a picture is given."""
    return dataclasses.replace(model, id=f"{model.id}-i", kie_model=kie_model, image=image,
                               menu_id=model.id, **changes)


def _choices(*values: str) -> tuple[Choice, ...]:
    return tuple(Choice(value, value) for value in values)


_IMAGEN_RATIOS = Option("ar", "aspect_ratio", N_("Aspect ratio"),
                        _choices("1:1", "16:9", "9:16", "3:4", "4:3"), "1:1")

# Video ids and fields are (3rd) in kie-api.md: each is one edit here when the real service
# says otherwise. Numeric choices are strings, as Kie expects.
_DURATION_5_10 = Option("d", "duration", N_("Duration"),
                        (Choice("5", "5 s"), Choice("10", "10 s", price_factor=2)), "5")

# Music and speech. Suno runs in its simple mode (the prompt describes the song, Suno writes
# the lyrics; at most 500 characters); its `model` field is the version, sent as kie_model.
_SUNO_VOCALS = Option("i", "instrumental", N_("Vocals"), (
    Choice(False, N_("With vocals")), Choice(True, N_("Instrumental"))), False)
_VOICES = ("Rachel", "Aria", "Roger", "Sarah", "Laura", "George", "Charlotte", "Liam", "Brian",
           "Lily")

_KLING = Model("kling", "kling/v2-1-master-text-to-video", "video", "Kling", price=150,
               expected_seconds=120, poll_interval=5.0, max_prompt=2500,
               options=(_DURATION_5_10,), good_for=N_("lifelike motion and camera moves"))
_SORA = Model("sora2", "sora-2-text-to-video", "video", "Sora 2", price=120, expected_seconds=150,
              poll_interval=5.0, max_prompt=10000, fixed_input={"remove_watermark": True},
              good_for=N_("cinematic scenes with their own sound"),
              options=(Option("ar", "aspect_ratio", N_("Orientation"),
                              (Choice("landscape", N_("Landscape")),
                               Choice("portrait", N_("Portrait"))), "landscape"),
                       Option("d", "n_frames", N_("Duration"),
                              (Choice("10", "10 s"), Choice("15", "15 s", surcharge=60)), "10")))
_HAILUO = Model("hailuo", "hailuo/02-text-to-video-pro", "video", "Hailuo", price=100,
                expected_seconds=120, poll_interval=5.0, max_prompt=1500,
                good_for=N_("fast action and believable physics"),
                options=(Option("m", "duration", N_("Duration"), (
                    Choice("6-768", "6 s · 768P", input={"duration": "6", "resolution": "768P"}),
                    Choice("10-768", "10 s · 768P", price_factor=2,
                           input={"duration": "10", "resolution": "768P"}),
                    Choice("6-1080", "6 s · 1080P", surcharge=50,
                           input={"duration": "6", "resolution": "1080P"})), "6-768"),))
_WAN_RESOLUTIONS = Option("r", "resolution", N_("Resolution"), (
    Choice("480p", "480p"), Choice("580p", "580p", surcharge=10),
    Choice("720p", "720p", surcharge=20)), "720p")
_WAN = Model("wan", "wan/2-2-a14b-text-to-video-turbo", "video", "Wan", price=60,
             expected_seconds=90, poll_interval=5.0, good_for=N_("short clips at a low price"),
             options=(Option("ar", "aspect_ratio", N_("Aspect ratio"),
                             _choices("16:9", "9:16", "1:1"), "16:9"), _WAN_RESOLUTIONS))
_SEEDANCE = Model("seedance", "bytedance/v1-pro-text-to-video", "video", "Seedance", price=80,
                  expected_seconds=90, poll_interval=5.0, max_prompt=10000,
                  good_for=N_("stories in several shots, up to 1080p"),
                  options=(Option("ar", "aspect_ratio", N_("Aspect ratio"),
                                  _choices("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"), "16:9"),
                           Option("r", "resolution", N_("Resolution"), (
                               Choice("480p", "480p"), Choice("720p", "720p", surcharge=20),
                               Choice("1080p", "1080p", surcharge=60)), "720p"),
                           _DURATION_5_10))
_SEEDREAM_SIZES = Option("ar", "image_size", N_("Aspect ratio"), (
    Choice("square_hd", "1:1"), Choice("portrait_4_3", "3:4"), Choice("portrait_16_9", "9:16"),
    Choice("landscape_4_3", "4:3"), Choice("landscape_16_9", "16:9")), "square_hd")
# Picture edits take nano-banana's sizes, plus "auto": the size of the picture given.
_EDIT_SIZES = Option("ar", "image_size", N_("Aspect ratio"), (
    Choice("auto", N_("As the photo")), *_choices("1:1", "16:9", "9:16", "3:4", "4:3")), "auto")

MODELS: tuple[Model, ...] = (
    Model("imagen4", "google/imagen4", "image", "Imagen 4", price=40, expected_seconds=20,
          options=(_IMAGEN_RATIOS,), good_for=N_("photorealistic detail and legible text")),
    Model("seedream", "bytedance/seedream", "image", "Seedream", price=20, expected_seconds=15,
          options=(_SEEDREAM_SIZES,), good_for=N_("vivid pictures at a low price")),
    Model("grok", "grok-imagine/text-to-image", "image", "Grok Imagine", price=30,
          expected_seconds=20, good_for=N_("bold, imaginative art"),
          options=(Option("ar", "aspect_ratio", N_("Aspect ratio"),
                          _choices("3:2", "1:1", "2:3"), "3:2"),)),
    Model("imagen4f", "google/imagen4-fast", "image", "Imagen 4 Fast", price=10,
          expected_seconds=10, good_for=N_("quick drafts, up to four at once"),
          options=(_IMAGEN_RATIOS,
                   Option("n", "num_images", N_("Number of images"),
                          tuple(Choice(str(n), str(n), price_factor=n) for n in range(1, 5)),
                          "1"))),
    # Picture edits (a photo as input).
    Model("nanoedit", "google/nano-banana-edit", "image", "Nano Banana", price=30,
          expected_seconds=20, image=IMAGE_URLS, options=(_EDIT_SIZES,),
          good_for=N_("changing a photo as you describe it")),
    Model("seedit", "bytedance/seedream-v4-edit", "image", "Seedream 4", price=30,
          expected_seconds=20, image=IMAGE_URLS,
          options=(_SEEDREAM_SIZES,), good_for=N_("restyling a photo, keeping its details")),
    _KLING, _from_picture(_KLING, "kling/v2-1-pro", IMAGE_URL),
    _SORA, _from_picture(_SORA, "sora-2-image-to-video", IMAGE_URLS),
    _HAILUO, _from_picture(_HAILUO, "hailuo/2-3-image-to-video-pro", IMAGE_URL),
    _WAN, _from_picture(_WAN, "wan/2-2-a14b-image-to-video-turbo", IMAGE_URL, options=(
        Option("ar", "aspect_ratio", N_("Aspect ratio"),
               (Choice("auto", N_("As the photo")), *_choices("16:9", "9:16", "1:1")), "auto"),
        _WAN_RESOLUTIONS)),
    _SEEDANCE, _from_picture(_SEEDANCE, "bytedance/v1-pro-image-to-video", IMAGE_URL),
    Model("suno", "V4_5", "audio", "Suno v4.5", price=60, expected_seconds=60, poll_interval=5.0,
          max_prompt=500, api=API_SUNO, fixed_input={"customMode": False},
          options=(_SUNO_VOCALS,), good_for=N_("whole songs, sung or instrumental")),
    Model("suno5", "V5", "audio", "Suno v5", price=80, expected_seconds=60, poll_interval=5.0,
          max_prompt=500, api=API_SUNO, fixed_input={"customMode": False},
          options=(_SUNO_VOCALS,), good_for=N_("the best-sounding songs, richer vocals")),
    Model("tts", "elevenlabs/text-to-speech-multilingual-v2", "audio", N_("ElevenLabs speech"),
          price=20, expected_seconds=15, max_prompt=5000, prompt_field="text",
          good_for=N_("your text read aloud in a natural voice"),
          options=(Option("v", "voice", N_("Voice"), _choices(*_VOICES), "Rachel"),)),
)

_BY_ID = {model.id: model for model in MODELS}


def get_model(model_id: str | None) -> Model | None:
    """The catalog's model, hidden or not, at the catalog's price (for work already paid)."""
    return _BY_ID.get(model_id or "")


def models_of(kind: str, *, picture: bool = False) -> list[Model]:
    """The models of a kind that work from a prompt alone, or (picture) from a picture too."""
    return [model for model in MODELS
            if model.kind == kind and (model.image is not None) == picture]


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


KINDS = ("image", "video", "audio")
# The command that opens each kind's picker.
COMMANDS = {"image": "image", "video": "video", "audio": "music"}
