"""Pydantic models of Kie.ai's wire format (kie-api.md); field names live here and nowhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.kie import constants as api

# Kie's codes come as numbers or strings, by API and by page: always text here.
CodeText = Annotated[str | None, BeforeValidator(lambda value: None if value is None else str(value))]

Phase = Literal["running", "success", "fail"]


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One generated file. Suno's tracks also carry a title, tags, a duration, a cover and
    their id (what Suno's extend takes as `audioId`)."""

    url: str
    title: str | None = None
    tags: str | None = None
    duration: float | None = None  # seconds
    image_url: str | None = None  # Suno's cover picture
    audio_id: str | None = None  # Suno's track id


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task's fate, the same whatever API family ran it. `state` is Kie's raw word (for the
    status line and logs): a `running` phase with a state Kie never documented is worth a log
    line. `files` is non-empty exactly when the phase is `success`. `message` says why it
    failed, `code` is Kie's failure code where it gives one."""

    phase: Phase
    state: str | None = None
    files: list[ResultFile] = field(default_factory=list)
    message: str | None = None
    code: str | None = None

    @property
    def urls(self) -> list[str]:
        return [f.url for f in self.files]

    @property
    def known_state(self) -> bool:
        """False when Kie reported a state outside its documented lifecycle."""
        return self.state in api.KNOWN_STATES


def done(files: list[ResultFile], state: str) -> TaskStatus:
    """Success only with something to deliver: success without a file is a failure."""
    if not files:
        return TaskStatus("fail", state, message=api.NO_RESULT)
    return TaskStatus("success", state, files)


class StatusRecord(BaseModel):
    """A status read's `data`, in one API family's own words."""

    def to_status(self) -> TaskStatus:
        raise NotImplementedError


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


def _usable_urls(value: Any) -> Any:
    """Kie's list of result URLs with only the entries that can be a file: a null, a number or
    an empty string among them must not cost the good files. (Not a list: left to fail.)"""
    if value is None:
        return []
    if isinstance(value, list):
        return [url for url in value if isinstance(url, str) and url.strip()]
    return value


def url_list(value: Any) -> Any:
    """Result URLs given as a list, or as that list in a JSON string (Veo's docs show both), or
    as one bare URL: the usable ones, as a list."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [text]
    return _usable_urls(value)


def flat_body(input: dict[str, Any], *, model: str | None,
              callback_url: str | None) -> dict[str, Any]:
    """A create body without the market's `input` wrapper: the catalog's input is the body
    itself, plus the model id (`model`; None: the API has no model field) and the callback.
    Those two are the client's to set: an input carrying either is a catalog mistake."""
    for key in (api.MODEL_FIELD, api.CALLBACK_FIELD):
        if key in input:
            raise ValueError(f"the input must not carry {key!r}: it is the client's to set")
    body = dict(input)
    if model is not None:
        body[api.MODEL_FIELD] = model
    if callback_url is not None:
        body[api.CALLBACK_FIELD] = callback_url
    return body


def body_with_model(model: str, input: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    """A flat body whose model id goes into `model` (Veo, Flux Kontext)."""
    return flat_body(input, model=model, callback_url=callback_url)


def body_without_model(model: str, input: dict[str, Any],
                       callback_url: str | None) -> dict[str, Any]:
    """A flat body of an API with no model field (4o Image): `model` is the bot's own name for
    it, not sent."""
    return flat_body(input, model=None, callback_url=callback_url)


def duration_or_none(value: Any) -> float | None:
    """A length in seconds as Kie gives it (a number, or a number in a string), or None when it
    is no usable length: "NaN", inf, negative, absurdly long, or not a number at all. A bad
    length only loses a detail; it must not fail the record or every delivery of it."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if 0 <= seconds <= api.MAX_DURATION else None  # (False for NaN)


class TaskResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    result_urls: list[str] = Field(default_factory=list, alias="resultUrls")

    @field_validator("result_urls", mode="before")
    @classmethod
    def _usable(cls, value: Any) -> Any:
        return _usable_urls(value)


class TaskRecord(StatusRecord):
    """One `recordInfo` answer's `data` (the market API)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    model: str | None = None
    state: str
    param: dict[str, Any] | None = None
    result: TaskResult | None = Field(default=None, alias="resultJson")
    fail_code: CodeText = Field(default=None, alias="failCode")
    fail_msg: str | None = Field(default=None, alias="failMsg")
    create_time: int | None = Field(default=None, alias="createTime")
    complete_time: int | None = Field(default=None, alias="completeTime")

    @field_validator("param", "result", mode="before")
    @classmethod
    def _nested_json(cls, value: Any) -> Any:
        return _parse_json_string(value)

    @property
    def result_urls(self) -> list[str]:
        return self.result.result_urls if self.result else []

    def to_status(self) -> TaskStatus:
        if self.state == api.STATE_SUCCESS:
            return done([ResultFile(url) for url in self.result_urls], self.state)
        if self.state == api.STATE_FAIL:
            return TaskStatus("fail", self.state, message=self.fail_msg or None,
                              code=self.fail_code or None)
        return TaskStatus("running", self.state)  # waiting/queuing/generating, or unknown


class FlagRecord(StatusRecord):
    """A status read's `data` of the APIs that say a task's fate in `successFlag` (Veo, Flux
    Kontext, 4o Image): 0 running, 1 done, 2 and 3 failed, with `errorCode`/`errorMessage`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    success_flag: int | None = Field(default=None, alias="successFlag")
    error_code: CodeText = Field(default=None, alias="errorCode")
    error_message: str | None = Field(default=None, alias="errorMessage")

    @property
    def state(self) -> str | None:
        """The flag's name; an undocumented flag is named as it is (and polled again)."""
        if self.success_flag is None:
            return None
        return api.FLAG_STATES.get(self.success_flag, f"successFlag {self.success_flag}")

    def files(self) -> list[ResultFile]:
        raise NotImplementedError

    def to_status(self) -> TaskStatus:
        state = self.state
        if state == api.FLAG_SUCCESS:
            return done(self.files(), state)
        if state in api.FLAG_STATES_FAIL:
            return TaskStatus("fail", state, message=self.error_message or None,
                              code=self.error_code or None)
        return TaskStatus("running", state)


class DownloadUrlRequest(BaseModel):
    url: str


class UploadedFile(BaseModel):
    """The upload host's `data`; the model is given `download_url`."""

    model_config = ConfigDict(extra="ignore")

    file_name: str | None = Field(default=None, alias="fileName")
    download_url: str = Field(alias="downloadUrl")
    file_size: int | None = Field(default=None, alias="fileSize")
    mime_type: str | None = Field(default=None, alias="mimeType")
