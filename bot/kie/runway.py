"""Runway's own wire format (kie-api-more.md §2): its create body and its record-detail.

The create body is flat and has no model field (generate_body): `prompt`,
`duration` (5 or 10), `quality` (720p, 1080p; never 1080p with 10 s), `aspectRatio` (required
without a picture), `imageUrl` (one URL), `waterMark` (capital M) as the catalog's input gives
them. Its callback names the task `data.task_id`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.kie import constants as api
from bot.kie.schemas import CodeText, ResultFile, StatusRecord, TaskStatus, done, flat_body


def generate_body(model: str, input: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    """The catalog's input as the body, and the callback (RUNWAY_CALLBACK_FALLBACK without one);
    `model` is the bot's own name for Runway, not sent (Runway has no model field)."""
    callback = callback_url if callback_url is not None else api.RUNWAY_CALLBACK_FALLBACK
    return flat_body(input, model=None, callback_url=callback)


class RunwayVideo(BaseModel):
    """`data.videoInfo`: the video and its cover picture."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    video_url: str | None = Field(default=None, alias="videoUrl")
    image_url: str | None = Field(default=None, alias="imageUrl")


class RunwayRecord(StatusRecord):
    """One `runway/record-detail` answer's `data`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    state: str
    video_info: RunwayVideo | None = Field(default=None, alias="videoInfo")
    fail_code: CodeText = Field(default=None, alias="failCode")
    fail_msg: str | None = Field(default=None, alias="failMsg")
    # 1 once the video is deleted (kept 14 days): nothing left to deliver.
    expire_flag: int = Field(default=0, alias="expireFlag")

    @field_validator("expire_flag", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return 0 if value is None else value

    def files(self) -> list[ResultFile]:
        url = self.video_info.video_url if self.video_info else None
        return [ResultFile(url)] if url and not self.expire_flag else []

    def to_status(self) -> TaskStatus:
        if self.state == api.RUNWAY_STATE_SUCCESS:
            return done(self.files(), self.state)
        if self.state == api.RUNWAY_STATE_FAIL:
            return TaskStatus("fail", self.state, message=self.fail_msg or None,
                              code=self.fail_code or None)
        return TaskStatus("running", self.state)  # wait/queueing/generating, or unknown
