"""Suno's own wire format (kie-api.md, Music and speech): its request body and its record-info."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.kie import constants as api
from bot.kie.schemas import (
    CodeText,
    ResultFile,
    StatusRecord,
    TaskStatus,
    done,
    duration_or_none,
    flat_body,
)


def generate_body(model: str, input: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    """The generate (or extend) request: the catalog's input is the body itself (`customMode`,
    `instrumental`, `prompt`, …; an extend's `audioId`, `defaultParamFlag`); the catalog's model
    id (`V4_5`) goes into `model`, the callback into `callBackUrl`."""
    callback = callback_url if callback_url is not None else api.SUNO_CALLBACK_FALLBACK
    return flat_body(input, model=model, callback_url=callback)


class SunoTrack(BaseModel):
    """One of `data.response.sunoData[]`; `audioUrl` is empty until the track is ready."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = None
    audio_url: str | None = Field(default=None, alias="audioUrl")
    image_url: str | None = Field(default=None, alias="imageUrl")
    title: str | None = None
    tags: str | None = None
    duration: float | None = None  # seconds

    @field_validator("id", "audio_url", "image_url", "title", "tags", mode="before")
    @classmethod
    def _text_or_none(cls, value: Any) -> Any:
        """A number or an object where Kie should give a string loses that detail (or, for the
        audio, that track), not the other tracks."""
        return value if isinstance(value, str) else None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return duration_or_none(value)

    def to_file(self) -> ResultFile | None:
        if not self.audio_url:
            return None
        return ResultFile(self.audio_url, title=self.title or None, tags=self.tags or None,
                          duration=self.duration, image_url=self.image_url or None,
                          audio_id=self.id or None)


class SunoResponse(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    suno_data: list[SunoTrack] = Field(default_factory=list, alias="sunoData")

    @field_validator("suno_data", mode="before")
    @classmethod
    def _tracks_only(cls, value: Any) -> Any:
        """Null is no tracks; a null (or any non-object) among them is no track."""
        if value is None:
            return []
        if isinstance(value, list):
            return [track for track in value if isinstance(track, dict)]
        return value


class SunoRecord(StatusRecord):
    """One `generate/record-info` answer's `data`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    status: str
    response: SunoResponse | None = None
    error_code: CodeText = Field(default=None, alias="errorCode")
    error_message: str | None = Field(default=None, alias="errorMessage")

    @property
    def tracks(self) -> list[SunoTrack]:
        return self.response.suno_data if self.response else []

    def to_status(self) -> TaskStatus:
        if self.status == api.SUNO_STATE_SUCCESS:
            return done([f for t in self.tracks if (f := t.to_file()) is not None], self.status)
        if self.status in api.SUNO_STATES_FAIL:
            return TaskStatus("fail", self.status, message=self.error_message or None,
                              code=self.error_code or None)
        # PENDING, TEXT_SUCCESS, FIRST_SUCCESS (one track ready: not done), or unknown.
        return TaskStatus("running", self.status)
