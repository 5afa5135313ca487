"""Pydantic models of Kie.ai's wire format (kie-api.md); field names live here and nowhere else."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Envelope(BaseModel):
    """`{"code", "msg", "data"}`; some answers say `message` instead of `msg`."""

    model_config = ConfigDict(extra="ignore")

    code: int
    msg: str | None = None
    message: str | None = None
    data: Any = None

    @property
    def text(self) -> str:
        return self.msg or self.message or ""


class CreateTaskRequest(BaseModel):
    model: str
    input: dict[str, Any]
    callback_url: str | None = Field(default=None, serialization_alias="callBackUrl")


class TaskCreated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_id: str = Field(alias="taskId", min_length=1)


def _parse_json_string(value: Any) -> Any:
    """`param` and `resultJson` are JSON strings inside the JSON: parse them a second time."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else None
    return value


class TaskResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    result_urls: list[str] = Field(default_factory=list, alias="resultUrls")


class TaskRecord(BaseModel):
    """One `recordInfo` answer's `data`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    model: str | None = None
    state: str
    param: dict[str, Any] | None = None
    result: TaskResult | None = Field(default=None, alias="resultJson")
    fail_code: str | None = Field(default=None, alias="failCode")
    fail_msg: str | None = Field(default=None, alias="failMsg")
    create_time: int | None = Field(default=None, alias="createTime")
    complete_time: int | None = Field(default=None, alias="completeTime")

    @field_validator("param", "result", mode="before")
    @classmethod
    def _nested_json(cls, value: Any) -> Any:
        return _parse_json_string(value)

    @field_validator("fail_code", mode="before")
    @classmethod
    def _code_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @property
    def result_urls(self) -> list[str]:
        return self.result.result_urls if self.result else []


class DownloadUrlRequest(BaseModel):
    url: str


class UploadedFile(BaseModel):
    """The upload host's `data`; the model is given `download_url`."""

    model_config = ConfigDict(extra="ignore")

    file_name: str | None = Field(default=None, alias="fileName")
    download_url: str = Field(alias="downloadUrl")
    file_size: int | None = Field(default=None, alias="fileSize")
    mime_type: str | None = Field(default=None, alias="mimeType")
