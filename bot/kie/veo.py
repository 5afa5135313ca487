"""Veo 3.1's own wire format (kie-api-more.md §1): its record-info and its 1080p extra.

The create body is flat (schemas.body_with_model): `prompt`, `imageUrls` (camelCase),
`aspect_ratio` (snake_case), `generationType`, `resolution` … as the catalog's input gives them.

The 1080p version: Kie makes it after the video, on request (`get-1080p-video`), for videos that
are not already 1080p and were not made by its fallback model. The adapter offers it as a family
of its own, API_VEO_1080P: the same create and status, but a finished video is delivered in
1080p — KieClient.status asks for it, keeps the task running (VEO_1080P_PENDING_STATE) while Kie
answers that it is processing, and delivers the video as made where Kie does not offer it. A
catalog entry picks API_VEO or API_VEO_1080P (the upgrade may cost Kie credits of its own).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.kie import constants as api
from bot.kie.schemas import FlagRecord, ResultFile, TaskStatus, url_list


class VeoResponse(BaseModel):
    """`data.response`: null while running."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    result_urls: list[str] = Field(default_factory=list, alias="resultUrls")
    resolution: str | None = None

    @field_validator("result_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return url_list(value)


class VeoRecord(FlagRecord):
    """One `veo/record-info` answer's `data`."""

    response: VeoResponse | None = None
    fallback_flag: bool | None = Field(default=None, alias="fallbackFlag")

    def files(self) -> list[ResultFile]:
        return [ResultFile(url) for url in (self.response.result_urls if self.response else [])]

    def to_status(self) -> TaskStatus:
        status = super().to_status()
        if status.state == api.FLAG_SUCCESS and not status.files:
            # Kie reports the base render done before the final URL is in [C]: not done yet.
            return TaskStatus("running", status.state)
        return status

    def offers_1080p(self) -> bool:
        """A finished video Kie may still give in 1080p: not 1080p already, and not made by
        the fallback model (whose videos get no 1080p version)."""
        resolution = (self.response.resolution or "") if self.response else ""
        return not self.fallback_flag and resolution.lower() != api.VEO_1080P


class Veo1080p(BaseModel):
    """`get-1080p-video`'s `data` once the 1080p version is ready."""

    model_config = ConfigDict(extra="ignore")

    result_url: str = Field(alias="resultUrl", min_length=1)


def in_1080p(made: TaskStatus, url: str) -> TaskStatus:
    """The finished task with its video (the one at VEO_1080P_INDEX) in 1080p."""
    files = list(made.files)
    files[api.VEO_1080P_INDEX] = ResultFile(url)
    return TaskStatus("success", made.state, files)


def processing_1080p() -> TaskStatus:
    """Made, but its 1080p version not yet: still running."""
    return TaskStatus("running", api.VEO_1080P_PENDING_STATE)
