"""4o Image's own wire format (kie-api-more.md §4): its record-info.

The create body is flat and has no model field (schemas.body_without_model): `size` (1:1, 3:2,
2:3; required), `prompt`, `filesUrl` (up to 5 pictures), `maskUrl`, `nVariants` [?] … as the
catalog's input gives them. Kie reads a task at most 3 times a second: the tracker's pace.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from bot.kie import constants as api
from bot.kie.schemas import FlagRecord, ResultFile, url_list


class Gpt4oResponse(BaseModel):
    """`data.response`. The schema says `resultUrls`, the examples `result_urls` [?]: both."""

    model_config = ConfigDict(extra="ignore")

    result_urls: list[str] = Field(default_factory=list,
                                   validation_alias=AliasChoices("resultUrls", "result_urls"))

    @field_validator("result_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return url_list(value)


class Gpt4oRecord(FlagRecord):
    """One `gpt4o-image/record-info` answer's `data`. Its `successFlag` has one failure (2); its
    `status` names which (CREATE_TASK_FAILED, GENERATE_FAILED), and wins where it is a name the
    flags know."""

    status: str | None = None
    response: Gpt4oResponse | None = None

    @property
    def state(self) -> str | None:
        if self.status in api.FLAG_STATES.values():
            return self.status
        return super().state

    def files(self) -> list[ResultFile]:
        return [ResultFile(url) for url in (self.response.result_urls if self.response else [])]
