"""The catalog file (TOML): its schema, read and checked once into the catalog's frozen objects.

A wrong entry stops the bot with one line naming the file, the model and the field (CatalogError,
printed by `python -m bot`). The format, with an example, is in README ("The catalog").
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.catalog.improve import ImproveSpec
from bot.catalog.models import (
    EXTEND,
    KINDS,
    ROLES,
    SOURCE_LANGUAGE,
    UPSCALE,
    Choice,
    ImageSlot,
    Localized,
    Model,
    Money,
    Option,
)
from bot.errors import CatalogError
from bot.i18n import DOMAIN, LOCALES_PATH
from bot.kie.constants import APIS

SHIPPED = Path(__file__).with_name("catalog.toml")
# A picture variant's id: its text model's id and this (drafts and generations store it).
PICTURE_SUFFIX = "-i"


def languages() -> list[str]:
    """The languages the bot speaks (locales/): each needs its own "good for" line."""
    found = {path.parent.parent.name for path in LOCALES_PATH.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return sorted(found | {SOURCE_LANGUAGE})


def _repeated(values: list[Any]) -> Any:
    """The first value that is there twice, or None."""
    seen: list[Any] = []  # values may be unhashable (a choice's input)
    for value in values:
        if value in seen:
            return value
        seen.append(value)
    return None


def _scalar(value: Any) -> Any:
    """What Kie is sent for a choice: a string, a number or true/false, as it is written."""
    if not isinstance(value, str | int | float):  # bool is an int
        raise ValueError(f"must be a string, a number or true/false, not {value!r}")
    return value


def _known_api(value: str) -> str:
    if value not in APIS:
        raise ValueError(f"{value!r} is not one of Kie's APIs the bot speaks ({', '.join(APIS)})")
    return value


def _one_of(values: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return value
    return AfterValidator(check)


# The kinds each follow-up role works on: what its button sits under (and what Kie takes).
ROLE_KINDS = {UPSCALE: ("image", "video"), EXTEND: ("audio",)}


def _token(pattern: str, longest: int, what: str) -> AfterValidator:
    """Ids and option keys travel in callback data (keyboards.Value: letters, digits, _ and -,
    and the dot between an option's key and a choice's index), within Telegram's 64 bytes."""
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value) or len(value) > longest:
            raise ValueError(f"{value!r} must be {what}, at most {longest} characters "
                             "(buttons carry it)")
        return value
    return AfterValidator(check)


ModelId = Annotated[str, _token(r"[a-z0-9][a-z0-9_-]*", 32, "made of a-z, 0-9, - and _")]
OptionKey = Annotated[str, _token(r"[a-z0-9_]+", 8, "made of a-z, 0-9 and _")]
Text = Annotated[str, Field(min_length=1)]
Scalar = Annotated[Any, AfterValidator(_scalar)]
Api = Annotated[str, AfterValidator(_known_api)]
Kind = Annotated[str, _one_of(KINDS)]
Role = Annotated[str, _one_of(ROLES)]
Price = Annotated[int, Field(ge=1)]
KieCost = Annotated[float, Field(ge=0)]
Duration = Annotated[int, Field(gt=0)]
Interval = Annotated[float, Field(gt=0)]
PromptLimit = Annotated[int, Field(ge=1)]


class _Spec(BaseModel):
    # Strict: TOML has its own types, and "40" for a price is a mistake, not a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ChoiceSpec(_Spec):
    """`"16:9"` alone (its own label), or `{value = "10", label = "10 s", price_factor = 2}`."""

    value: Scalar
    label: Text | None = None
    price_factor: Annotated[int, Field(ge=1)] = 1
    surcharge: Annotated[int, Field(ge=0)] = 0
    input: dict[str, Any] | None = None

    def build(self) -> Choice:
        label = self.label if self.label is not None else str(self.value)
        return Choice(self.value, label, self.price_factor, self.surcharge, self.input)


class OptionSpec(_Spec):
    key: OptionKey
    field: Text
    title: Text
    choices: Annotated[list[ChoiceSpec], Field(min_length=1)]
    default: Scalar

    @field_validator("choices", mode="before")
    @classmethod
    def _bare_values(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [raw if isinstance(raw, dict) else {"value": raw} for raw in value]

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[ChoiceSpec]) -> list[ChoiceSpec]:
        if (twice := _repeated([choice.value for choice in choices])) is not None:
            raise ValueError(f"the value {twice!r} is there twice")
        return choices

    @field_validator("default")
    @classmethod
    def _among_choices(cls, value: Any, info: ValidationInfo) -> Any:
        choices = info.data.get("choices")
        if choices is not None and value not in [choice.value for choice in choices]:
            raise ValueError(f"{value!r} is not one of the choices "
                             f"({', '.join(repr(choice.value) for choice in choices)})")
        return value

    def build(self) -> Option:
        return Option(self.key, self.field, self.title,
                      tuple(choice.build() for choice in self.choices), self.default)


def _distinct_keys(options: list[OptionSpec]) -> list[OptionSpec]:
    if (twice := _repeated([option.key for option in options])) is not None:
        raise ValueError(f"the key {twice!r} is there twice")
    return options


Options = Annotated[list[OptionSpec], AfterValidator(_distinct_keys)]


class ImageSpec(_Spec):
    """The Kie input field that takes the picture's URL; `many`: a list of URLs."""

    field: Text
    many: bool

    def build(self) -> ImageSlot:
        return ImageSlot(self.field, self.many)


class PictureSpec(_Spec):
    """`[models.picture]`: the same menu entry, run by another Kie id when a picture is given.
    It says what differs; the rest is the text model's (its name, kind, "good for"...)."""

    kie_model: Text
    image: ImageSpec
    api: Api | None = None
    price: Price | None = None
    kie_cost: KieCost | None = None
    expected_seconds: Duration | None = None
    poll_interval: Interval | None = None
    max_prompt: PromptLimit | None = None
    prompt_field: Text | None = None
    options: Options | None = None
    fixed_input: dict[str, Any] | None = None

    def variant_of(self, model: Model) -> Model:
        changes = {name: getattr(self, name) for name in self.model_fields_set - {"image"}}
        if self.options is not None:
            changes["options"] = tuple(option.build() for option in self.options)
        return dataclasses.replace(model, **changes, id=model.id + PICTURE_SUFFIX,
                                   menu_id=model.id, image=self.image.build())


class ModelSpec(_Spec):
    id: ModelId
    kind: Kind
    api: Api
    kie_model: Text
    name: Text
    price: Price
    kie_cost: KieCost
    expected_seconds: Duration
    poll_interval: Interval = 3.0
    max_prompt: PromptLimit = 5000
    prompt_field: Text = "prompt"
    improve: bool = True
    deadline: Kind | None = None  # unset: the model's kind
    options: Options = []
    fixed_input: dict[str, Any] = {}
    image: ImageSpec | None = None
    picture: PictureSpec | None = None
    good_for: dict[str, Text]
    # A follow-up (⬆️ Upscale, ➕ Extend): run on a delivered result of the models it applies
    # to (none named: every model of its kind), the result in `source_field`; no picker.
    role: Role | None = None
    source_field: Text | None = None
    applies_to: list[ModelId] = []

    @model_validator(mode="after")
    def _a_follow_up(self) -> ModelSpec:
        if self.role is None:
            for name in ("source_field", "applies_to"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name} is for a follow-up (a model with a role)")
            return self
        if self.kind not in ROLE_KINDS[self.role]:
            raise ValueError(f"a model with the role {self.role!r} is of kind "
                             f"{' or '.join(ROLE_KINDS[self.role])}, not {self.kind!r}")
        if self.source_field is None:
            raise ValueError("a follow-up needs source_field (the Kie field that takes the result)")
        if self.options or self.image is not None or self.picture is not None:
            raise ValueError("a follow-up has no options, image or picture (fixed_input sets "
                             "its fields)")
        return self

    @field_validator("picture")
    @classmethod
    def _of_a_text_model(cls, value: PictureSpec | None,
                         info: ValidationInfo) -> PictureSpec | None:
        if value is not None and info.data.get("image") is not None:
            raise ValueError("a model that needs a picture (image) has no picture variant")
        return value

    @field_validator("good_for")
    @classmethod
    def _every_language(cls, value: dict[str, str]) -> dict[str, str]:
        wanted = languages()
        if missing := [language for language in wanted if language not in value]:
            raise ValueError(f"has no line in {', '.join(missing)} "
                             f"(one for each language in locales/: {', '.join(wanted)})")
        return value

    def build(self) -> list[Model]:
        """The model, and its picture variant after it."""
        model = Model(
            id=self.id, kie_model=self.kie_model, kind=self.kind, name=self.name,
            price=self.price, kie_cost=self.kie_cost, expected_seconds=self.expected_seconds,
            deadline=self.deadline or self.kind, poll_interval=self.poll_interval,
            max_prompt=self.max_prompt, prompt_field=self.prompt_field, improve=self.improve,
            options=tuple(option.build() for option in self.options),
            fixed_input=self.fixed_input, api=self.api,
            image=self.image.build() if self.image is not None else None,
            good_for=Localized(self.good_for), role=self.role, source_field=self.source_field,
            applies_to=tuple(self.applies_to))
        return [model] if self.picture is None else [model, self.picture.variant_of(model)]


class MoneySpec(_Spec):
    """`[money]`: what the margin in /stats counts in US dollars."""

    kie_credit_usd: Annotated[float, Field(gt=0)]
    star_usd: Annotated[float, Field(gt=0)]


class CatalogSpec(_Spec):
    """The whole file: the models, in menu order (the first of a kind is its default). Each is
    checked on its own (ModelSpec), so that an error names it. `money` unset: the shipped
    file's."""

    models: Annotated[list[dict[str, Any]], Field(min_length=1)]
    money: MoneySpec | None = None
    # ✨ Improve's chat model and system prompts; a file without it keeps the shipped one's.
    improve: ImproveSpec | None = None


def _read(path: Path) -> CatalogSpec:
    """The file at `path`, parsed and checked as a whole (each model is checked on its own)."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as error:
        raise CatalogError(f"{path} cannot be read: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path} is not valid TOML: {error}") from None
    try:
        return CatalogSpec.model_validate(raw)
    except ValidationError as error:
        raise CatalogError(f"{path}, {_describe(error)}") from None


def read_improve(path: Path) -> ImproveSpec | None:
    """The file's `[improve]` table, checked (None: the file has none)."""
    return _read(path).improve


def read_catalog(path: Path) -> tuple[Model, ...]:
    """The catalog in the file at `path`, checked; CatalogError: one line saying what is wrong."""
    entries = _read(path).models
    models: list[Model] = []
    for number, entry in enumerate(entries, start=1):
        name = f'"{entry["id"]}"' if isinstance(entry.get("id"), str) else f"#{number} (no id)"
        try:
            built = ModelSpec.model_validate(entry).build()
        except ValidationError as error:
            raise CatalogError(f"{path}, model {name}, {_describe(error)}") from None
        for model in built:
            if any(model.id == other.id for other in models):
                field = "id" if model.menu_id is None else "picture"
                raise CatalogError(f"{path}, model {name}, field {field}: the id {model.id!r} "
                                   "is another model's too")
            models.append(model)
    _check_applies_to(path, models)
    return tuple(models)


def _check_applies_to(path: Path, models: list[Model]) -> None:
    """Each model a follow-up names is in the file, of its kind, and no follow-up itself."""
    for follow_up in models:
        for name in follow_up.applies_to:
            if not any(follow_up.follows(model) and name in (model.id, model.entry)
                       for model in models):
                raise CatalogError(f'{path}, model "{follow_up.id}", field applies_to: '
                                   f"{name!r} is no {follow_up.kind} model of this file")


def read_money(path: Path, default: Money | None = None) -> Money:
    """The file's `[money]` rates, checked; `default` where it has none (CatalogError without
    one)."""
    money = _read(path).money
    if money is not None:
        return Money(money.kie_credit_usd, money.star_usd)
    if default is None:
        raise CatalogError(f"{path} has no [money] table")
    return default


def _describe(error: ValidationError) -> str:
    """`field options[1].choices[0].price_factor: <what is wrong>`, from the first error; an
    unknown field first, as a misspelt one is also a missing one."""
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    message = ("is not a field the catalog knows" if first["type"] == "extra_forbidden"
               else first["msg"].removeprefix("Value error, "))
    return f"field {where}: {message}" if where else message
