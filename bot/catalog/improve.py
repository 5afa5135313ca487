"""✨ Improve's part of the catalog file: the `[improve]` table (Kie's chat model, and the
system prompt that tells it how to rewrite a prompt for each kind of model), checked with the
rest of the file (loader.CatalogSpec)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from bot.catalog.models import KINDS
from bot.kie.constants import CHAT_MODEL


def _a_chat_model(value: str) -> str:
    # It becomes a part of the endpoint's path (constants.CHAT_PATH): nothing that could change
    # where the request goes.
    if not value.replace("-", "").replace(".", "").isalnum() or not value.isascii() \
            or value[0] in "-.":
        raise ValueError(f"{value!r} must be a Kie chat model's name, like {CHAT_MODEL!r}")
    return value


class ImproveSpec(BaseModel):
    """`[improve]`: `model` is the chat model (its name is in the endpoint's path, kie-api-more.md
    §7); `[improve.system]` holds one system prompt per kind (image, video, audio)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model: Annotated[str, Field(min_length=1, max_length=64),
                     AfterValidator(_a_chat_model)] = CHAT_MODEL
    system: dict[str, Annotated[str, Field(min_length=1)]]

    @field_validator("system")
    @classmethod
    def _each_kind(cls, value: dict[str, str]) -> dict[str, str]:
        if unknown := [kind for kind in value if kind not in KINDS]:
            raise ValueError(f"{', '.join(unknown)} is not one of {', '.join(KINDS)}")
        if missing := [kind for kind in KINDS if kind not in value]:
            raise ValueError(f"has no system prompt for {', '.join(missing)} "
                             f"(one for each kind: {', '.join(KINDS)})")
        return value
