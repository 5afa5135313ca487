"""A fake Kie.ai for tests: the market task API, Suno's API, the dedicated APIs of Veo 3.1, Runway,
Flux Kontext and 4o Image (kie-api-more.md), the upload host and result files on one local server.

It enforces the wire format of the shared kie-api.md exactly, so a bot that passes against it
speaks Kie's dialect: the `{"code", "msg", "data"}` envelope answered with HTTP 200 even for errors
(recordInfo says `message`, not `msg`), `param` and `resultJson` as JSON *strings*, a bare number
for `chat/credit`, a bare string for `download-url`, real HTTP statuses plus `success` on the
upload host, and a sliding-window rate limit per key over every /api/* call (`rate_scope`
"all"), or over creates only ("creates"; reads then under `read_limit`, if any). Suno's tasks walk PENDING →
TEXT_SUCCESS → FIRST_SUCCESS → SUCCESS and end with two tracks in `data.response.sunoData`.
The dedicated APIs take flat bodies (no `input` wrapper) checked field by field as their docs
say, and answer in their own words: Veo, Flux Kontext and 4o Image a `successFlag` (4o also a
`status`), Runway a `state` spelled `wait`/`queueing`; each calls back in its documented shape
(Runway's names the task `data.task_id`). Veo's `get-1080p-video` answers "processing" for
`TaskPlan.hd_pending_reads` reads, then the 1080p file.

A task moves one step per status read (`TaskPlan.reads_before_done`), or with
`TaskPlan(finish_after=seconds)` by the clock alone. Callbacks (kie-api.md "Callbacks"):
`send_callback` POSTs one when a test says so; with `auto_callbacks` the fake POSTs them itself when
a task ends (Suno: also at its "text" and "first" stages), signed when `hmac_key` is set, and can
lose, repeat or delay them (`lose_callbacks`, `duplicate_callbacks`, `delay_callbacks`, ...).
`callback_log` records each one.

Nothing here reaches the network: the server binds 127.0.0.1 and only ever calls 127.0.0.1.

    async with FakeKie() as kie:
        kie.plan_by_prompt["explode"] = TaskPlan(outcome="fail", fail_msg="content policy")
        settings = ...(kie_api_url=kie.url, kie_upload_url=kie.url, kie_api_key=kie.api_key)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import hmac
import json
import mimetypes
import random
import re
import secrets
import struct
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
from aiohttp import web

from testkit.fakes.kie_chat import FakeChat
from testkit.fakes.server import LocalServer

# -- what the fake answers ---------------------------------------------------------------------

# Kie's wording where known, a plain phrase otherwise (kie-api.md, Errors).
DEFAULT_MESSAGES: dict[int, str] = {
    401: "You do not have access permissions",
    402: "Credits insufficient",
    404: "Task not found",
    422: "Validation error",
    429: "Rate limited",
    455: "Service unavailable",
    500: "Internal error",
    501: "Generation failed",
    505: "Feature disabled",
    # kie-api-more.md §8
    408: "Upstream timeout: no result returned for over 10 minutes",
    433: "Request Limit - Sub-key Usage Exceeds Limit",
    451: "Failed to fetch the image",
    550: "Connection Denied - task rejected due to a full queue",
}

RUNNING_STATES = ("waiting", "queuing", "generating")
# Suno's lifecycle: FIRST_SUCCESS is one track of two ready, still running.
SUNO_RUNNING_STATES = ("PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS")
SUNO_FAIL_STATES = ("CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED", "CALLBACK_EXCEPTION",
                    "SENSITIVE_WORD_ERROR")
SUNO_MODELS = ("V4", "V4_5", "V4_5PLUS", "V5")
KIND_CONTENT_TYPES = {"image": "image/png", "video": "video/mp4", "audio": "audio/mpeg"}

# A Telegram file URL (or a bare bot token) carries the bot token: it must never reach Kie.
TELEGRAM_SECRET = re.compile(r"api\.telegram\.org|/file/bot|\b\d{5,}:[A-Za-z0-9_-]{30,}")
# The only hosts a callback may go to: the fake never reaches the network.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Suno's states that have a callback of their own before the end (callbackType "text", "first").
SUNO_STAGES = {"TEXT_SUCCESS": "text", "FIRST_SUCCESS": "first", "SUCCESS": "complete"}


class _Unset:
    """The default of an argument whose None means something (e.g. "do not sign")."""


UNSET = _Unset()


@dataclass
class Req:
    """One request the fake received (recorded on arrival, status and code filled in after)."""

    method: str
    path: str
    query: dict[str, str]
    # parsed JSON, form fields (a file field becomes {"filename", "content_type", "size"}), text or None
    body: Any
    time: float  # time.monotonic() on arrival
    status: int | None = None  # HTTP status answered
    code: int | None = None  # the envelope's `code` answered, if JSON
    key: str = ""  # the API key it carried (Authorization: Bearer ...)
    # What it was, by its endpoint (ENDPOINTS): the API ("" for none: the credit balance, the
    # upload host) and its role; and the task it is about (a create's: the one it made).
    api: str = ""
    role: Role = "other"
    task_id: str | None = None


@dataclass
class TaskPlan:
    """How a task created on the fake will behave."""

    outcome: Literal["success", "fail", "never"] = "success"  # never = stays running forever
    reads_before_done: int = 3  # status reads answered before the outcome shows; 0 = at once
    urls: int | None = None  # how many result files (Suno: tracks); None = 1, Suno 2
    fail_code: str = "500"  # market and Runway failCode; Suno, Veo, Flux, 4o errorCode; a callback's code
    fail_msg: str = "Internal error"  # market and Runway failMsg; the others' errorMessage
    # The state a failed task reports: None = "fail" (market, Runway), "GENERATE_AUDIO_FAILED" (Suno),
    # "GENERATE_FAILED" (Veo, Flux Kontext, 4o Image: successFlag 3; 4o's is 2).
    # For Suno: CREATE_TASK_FAILED, GENERATE_AUDIO_FAILED, CALLBACK_EXCEPTION, SENSITIVE_WORD_ERROR.
    # For Veo, Flux Kontext, 4o Image: CREATE_TASK_FAILED (successFlag 2) or GENERATE_FAILED.
    fail_state: str | None = None
    # Reported instead of the running states (waiting/queuing/generating; Suno's PENDING,
    # TEXT_SUCCESS, FIRST_SUCCESS).
    state_override: str | None = None
    file_status: int = 200  # what a result URL answers when fetched directly (403: see download-url)
    file_size: int | None = None  # bytes of each result file; None = a small real file
    content_type: str | None = None  # None = by the model's kind: image/png, video/mp4, audio/mpeg
    # Seconds from creation until the task ends (success or fail, as `outcome` says), with or without
    # reads: the running states pass by the clock (thirds of the time; Suno's TEXT_SUCCESS and
    # FIRST_SUCCESS too) and reads do not move it (reads_before_done is not used). None = reads move it.
    finish_after: float | None = None
    # Kie's garbage in a finished record: entries its resultUrls shows after the real ones (None,
    # a number, ""; market only), and what every ready Suno track says its duration is ("NaN",
    # -1, ...; UNSET = a real length).
    bad_urls: list[Any] = field(default_factory=list)
    track_duration: Any = UNSET
    # Veo: made by Kie's fallback model (`fallbackFlag` true; get-1080p-video refuses it), and
    # how many get-1080p-video reads answer 400 "1080P is processing" before the 1080p file.
    fallback: bool = False
    hd_pending_reads: int = 1

    def __post_init__(self) -> None:
        if self.outcome not in ("success", "fail", "never"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.finish_after is not None and (self.finish_after < 0 or self.outcome == "never"):
            raise ValueError("finish_after is a time >= 0, for a task that ends (success or fail)")


API_MARKET, API_SUNO = "market", "suno"
API_VEO, API_RUNWAY, API_FLUX, API_GPT4O = "veo", "runway", "flux-kontext", "gpt4o-image"
FLAT_APIS = (API_VEO, API_RUNWAY, API_FLUX, API_GPT4O)  # no `input` wrapper
# Each dedicated API's create and status read endpoints.
FLAT_ENDPOINTS = (
    (API_VEO, "/api/v1/veo/generate", "/api/v1/veo/record-info"),
    (API_RUNWAY, "/api/v1/runway/generate", "/api/v1/runway/record-detail"),
    (API_FLUX, "/api/v1/flux/kontext/generate", "/api/v1/flux/kontext/record-info"),
    (API_GPT4O, "/api/v1/gpt4o-image/generate", "/api/v1/gpt4o-image/record-info"),
)
VEO_1080P_PATH = "/api/v1/veo/get-1080p-video"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
# What a call to each API endpoint is, for counting calls per API (FakeKie.calls_per_api):
# a create, a status read, or another call about a task (Veo's 1080p; download-url belongs to
# the API of the task it names). Any other call (credit, uploads) is "other" of no API.
Role = Literal["create", "read", "other"]
ENDPOINTS: dict[str, tuple[str, Role]] = {
    "/api/v1/jobs/createTask": (API_MARKET, "create"),
    "/api/v1/jobs/recordInfo": (API_MARKET, "read"),
    "/api/v1/generate": (API_SUNO, "create"),
    "/api/v1/generate/record-info": (API_SUNO, "read"),
    "/api/v1/generate/extend": (API_SUNO, "create"),
    **{create: (api, "create") for api, create, _ in FLAT_ENDPOINTS},
    **{read: (api, "read") for api, _, read in FLAT_ENDPOINTS},
    VEO_1080P_PATH: (API_VEO, "other"),
}
# The successFlag of each state of Veo, Flux Kontext and 4o Image (4o's `status` spells the
# names; its one failure flag is 2).
FLAGS = {"GENERATING": 0, "SUCCESS": 1, "CREATE_TASK_FAILED": 2, "GENERATE_FAILED": 3}
_FLAG_LIFECYCLE = (("GENERATING",), "SUCCESS", "GENERATE_FAILED")
# Per API: the running states in order, the success state, the default failure state.
LIFECYCLE: dict[str, tuple[tuple[str, ...], str, str]] = {
    API_MARKET: (RUNNING_STATES, "success", "fail"),
    API_SUNO: (SUNO_RUNNING_STATES, "SUCCESS", "GENERATE_AUDIO_FAILED"),
    API_VEO: _FLAG_LIFECYCLE,
    API_RUNWAY: (("wait", "queueing", "generating"), "success", "fail"),
    API_FLUX: _FLAG_LIFECYCLE,
    API_GPT4O: _FLAG_LIFECYCLE,
}


@dataclass
class Task:
    task_id: str
    model: str
    body: dict[str, Any]  # the createTask (or Suno's, or a dedicated API's) body, as sent
    plan: TaskPlan
    result_urls: list[str]
    create_time: int  # ms since the epoch, like Kie
    update_time: int
    complete_time: int | None = None
    state: str = "waiting"  # the state last reported (or set by finish())
    reads: int = 0  # status reads of this task that were answered
    step: int = 0  # position in the lifecycle; reads and finish() move it
    api: str = API_MARKET
    content_type: str = "image/png"  # what its result files are served as
    cover_urls: list[str] = field(default_factory=list)  # Suno: one cover picture per track; Runway's
    hd_urls: list[str] = field(default_factory=list)  # Veo: the 1080p version of each video
    hd_reads: int = 0  # Veo: get-1080p-video reads of it answered
    started: float = field(default_factory=time.monotonic)  # time.monotonic() at creation
    progress: float = 0.0  # finish_after plans: the share of finish_after gone by (1 = done)
    finished: bool = False  # ended by finish() or by its finish_after clock
    key: str = ""  # the API key that created it: only that key's account can read it

    @property
    def input(self) -> dict[str, Any]:
        """The model's input: `input` of a createTask body; a flat body (Suno's, a dedicated
        API's) minus model and callback."""
        if self.api == API_MARKET:
            return self.body["input"]
        return {k: v for k, v in self.body.items() if k not in ("model", "callBackUrl")}

    @property
    def files(self) -> list[str]:
        """Every file URL of the task the fake serves."""
        return self.result_urls + self.cover_urls + self.hd_urls

    @property
    def done(self) -> bool:
        if self.plan.outcome == "never":
            return False
        return self.finished or (self.plan.finish_after is None and self.step > self.plan.reads_before_done)

    @property
    def callback_url(self) -> str | None:
        return self.body.get("callBackUrl")


@dataclass
class CallbackRecord:
    """One callback the fake POSTed (or lost on purpose, or could not deliver)."""

    task_id: str
    status: int | None  # HTTP status the receiver answered; None: lost, refused, or no answer
    time: float  # time.monotonic() when it was POSTed (lost: when it would have been)
    stage: str  # market: the task's state ("success", "fail"); Suno: callbackType ("text", "first", ...)
    url: str  # where it went (or was meant to go)
    auto: bool = True  # sent by auto_callbacks; False = send_callback
    lost: bool = False  # dropped on purpose (lose_callbacks, callback_loss)
    duplicate: bool = False  # the second copy of a callback sent twice
    delay: float = 0.0  # seconds it was held back before the POST
    elapsed: float = 0.0  # seconds the receiver took to answer
    signed: bool = False  # carried X-Webhook-Timestamp and X-Webhook-Signature
    error: str | None = None  # why there is no status: "lost", "connection refused", "timed out", ...
    payload: Any = field(default=None, repr=False)  # the JSON body


@dataclass
class _Failure:
    code: int
    msg: str
    http_status: int
    raw_body: str | None  # answer this (text/html) instead of an envelope: "no JSON" errors


# -- per-model input rules ---------------------------------------------------------------------

Check = Callable[[Any], str | None]  # a field's value -> an error or None


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def text(max_len: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not v.strip():
            return "must be a non-empty string"
        return f"must be at most {max_len} characters" if len(v) > max_len else None
    return check


def string(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def number(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return "must be a number"
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"
    return check


def integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be an integer"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"
    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be a boolean"


def int_or_string(v: Any) -> str | None:
    return None if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) \
        else "must be an integer or a string"


def refused(v: Any) -> str | None:
    """A key this model does not take, even where the rule is not strict."""
    return "is not a valid parameter for this model"


def http_url(v: Any) -> str | None:
    return None if isinstance(v, str) and v.startswith(("http://", "https://")) else "must be an http(s) URL"


def urls(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not lo <= len(v) <= hi:
            return f"must be a list of {lo} to {hi} URLs"
        return next((f"[{i}] {e}" for i, x in enumerate(v) if (e := http_url(x))), None)
    return check


@dataclass(frozen=True)
class ModelRule:
    fields: dict[str, Check]
    required: frozenset[str] = frozenset({"prompt"})
    # strict: any input key not in `fields` is rejected (Kie refuses e.g. image_size for grok).
    # Rules copied from third-party code (kie-api.md "(3rd)") are not strict: only known keys are checked.
    strict: bool = True
    cross: Callable[[dict[str, Any]], str | None] | None = None  # checks spanning several fields
    kind: Literal["image", "video", "audio"] = "image"  # picks the result files' default content type

    def extend(self, *, strict: bool | None = None, required: frozenset[str] | None = None,
               drop: tuple[str, ...] = (), **more: Check) -> ModelRule:
        fields = {k: v for k, v in self.fields.items() if k not in drop} | more
        return ModelRule(fields, self.required if required is None else required,
                         self.strict if strict is None else strict, self.cross, self.kind)


def _hailuo_cross(inp: dict[str, Any]) -> str | None:
    if inp.get("resolution") == "1080P" and inp.get("duration") == "10":
        return "1080P is not available with a 10 s duration"
    return None


_IMAGEN4 = ModelRule({
    "prompt": text(5000),
    "aspect_ratio": one_of("1:1", "16:9", "9:16", "3:4", "4:3"),
    "negative_prompt": string,
    "seed": string,
})
_SEEDREAM_SIZES = ("square", "square_hd", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9")
_SEEDREAM_V4 = ModelRule({
    "prompt": text(5000),
    "image_size": one_of(*_SEEDREAM_SIZES, "portrait_3_2", "landscape_3_2", "landscape_21_9"),
    "image_resolution": one_of("1K", "2K", "4K"),
    "max_images": integer(1, 6),
    "seed": int_or_string,
    "enable_safety_checker": boolean,
}, strict=False)
_NANO_BANANA = ModelRule({
    "prompt": text(5000),
    "output_format": one_of("png", "jpeg"),
    "image_size": one_of("1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5", "21:9", "auto"),
}, strict=False)
_KLING_21 = ModelRule({
    "prompt": text(5000), "duration": one_of("5", "10"), "negative_prompt": string, "cfg_scale": number(0, 1),
}, strict=False, kind="video")
_KLING_26 = ModelRule({
    "prompt": text(1000), "aspect_ratio": one_of("1:1", "16:9", "9:16"), "sound": boolean,
    "duration": one_of("5", "10"),
}, required=frozenset({"prompt", "sound", "duration"}), strict=False, kind="video")
_SORA_2 = ModelRule({
    "prompt": text(5000), "aspect_ratio": one_of("portrait", "landscape"), "n_frames": one_of("10", "15"),
    "remove_watermark": boolean, "size": refused,  # only the pro ids take `size`
}, strict=False, kind="video")
_HAILUO = ModelRule({
    "prompt": text(5000), "duration": one_of("6", "10"), "resolution": one_of("768P", "1080P"),
}, strict=False, cross=_hailuo_cross, kind="video")
_WAN = ModelRule({
    "prompt": text(5000), "resolution": one_of("480p", "580p", "720p"),
    "aspect_ratio": one_of("16:9", "9:16", "1:1"), "seed": integer(-1, 2**32),
    "enable_prompt_expansion": boolean,
}, strict=False, kind="video")
_SEEDANCE = ModelRule({
    "prompt": text(10000), "aspect_ratio": one_of("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
    "resolution": one_of("480p", "720p", "1080p"), "duration": one_of("5", "10"), "camera_fixed": boolean,
    "seed": integer(-1, 2**32),
}, strict=False, kind="video")
# Kie's newer market models (kie-api-more.md §4-5: the docs' own schemas, so strict; Wan 2.6's
# page is parsed loosely there, so its rule is not).
_SEEDREAM_45 = ModelRule({
    "prompt": text(3000), "aspect_ratio": one_of("1:1", "4:3", "3:4", "16:9", "9:16", "2:3", "3:2", "21:9"),
    "quality": one_of("basic", "high"), "nsfw_checker": boolean,
}, required=frozenset({"prompt", "aspect_ratio", "quality"}))
_GPT_IMAGE_15 = ModelRule({
    "prompt": text(5000), "aspect_ratio": one_of("1:1", "2:3", "3:2"), "quality": one_of("medium", "high"),
}, required=frozenset({"prompt", "aspect_ratio", "quality"}))
_WAN_26 = ModelRule({
    "prompt": text(5000), "duration": one_of("5", "10", "15"), "resolution": one_of("720p", "1080p"),
}, strict=False, kind="video")
_VOICES = ("Rachel", "Aria", "Roger", "Sarah", "Laura", "Charlie", "George", "Callum", "River", "Liam",
           "Charlotte", "Alice", "Matilda", "Will", "Jessica", "Eric", "Chris", "Brian", "Daniel", "Lily",
           "Bill")

# model id -> rule. The first three are Kie's documented image models; the rest are kie-api.md's
# "(3rd)" facts (non-strict). Add a model here; or put its id in FakeKie.extra_models to accept anything.
MODEL_RULES: dict[str, ModelRule] = {
    "google/imagen4": _IMAGEN4,
    "bytedance/seedream": ModelRule({
        "prompt": text(5000),
        "image_size": one_of(*_SEEDREAM_SIZES),
        "guidance_scale": number(1, 10),
        "seed": int_or_string,
        "enable_safety_checker": boolean,
    }),
    "grok-imagine/text-to-image": ModelRule({
        "prompt": text(5000),
        "aspect_ratio": one_of("2:3", "3:2", "1:1"),
    }),
    # images (3rd)
    "google/imagen4-fast": _IMAGEN4.extend(strict=False, num_images=one_of("1", "2", "3", "4")),
    "google/imagen4-ultra": _IMAGEN4.extend(strict=False),
    "google/nano-banana": _NANO_BANANA,
    "google/nano-banana-edit": _NANO_BANANA.extend(
        required=frozenset({"prompt", "image_urls"}), image_urls=urls(1, 10)),
    "bytedance/seedream-v4-text-to-image": _SEEDREAM_V4,
    "bytedance/seedream-v4-edit": _SEEDREAM_V4.extend(
        required=frozenset({"prompt", "image_urls"}), image_urls=urls(1, 10)),
    # video (3rd)
    "kling/v2-1-master-text-to-video": _KLING_21,
    "kling/v2-1-pro": _KLING_21.extend(required=frozenset({"prompt", "image_url"}),
                                       image_url=http_url, tail_image_url=http_url),
    "kling-2.6/text-to-video": _KLING_26,
    "kling-2.6/image-to-video": _KLING_26.extend(
        required=frozenset({"prompt", "image_urls", "sound", "duration"}), image_urls=urls(1, 1)),
    "sora-2-text-to-video": _SORA_2,
    "sora-2-image-to-video": _SORA_2.extend(required=frozenset({"prompt", "image_urls"}),
                                            image_urls=urls(1, 10)),
    "sora-2-pro-text-to-video": _SORA_2.extend(size=one_of("standard", "high")),
    "sora-2-pro-image-to-video": _SORA_2.extend(required=frozenset({"prompt", "image_urls"}),
                                                size=one_of("standard", "high"), image_urls=urls(1, 10)),
    "hailuo/02-text-to-video-pro": _HAILUO,
    "hailuo/2-3-image-to-video-pro": _HAILUO.extend(required=frozenset({"prompt", "image_url"}),
                                                    image_url=http_url),
    "hailuo/2-3-image-to-video-standard": _HAILUO.extend(required=frozenset({"prompt", "image_url"}),
                                                         image_url=http_url),
    "wan/2-2-a14b-text-to-video-turbo": _WAN,
    "wan/2-2-a14b-image-to-video-turbo": _WAN.extend(
        required=frozenset({"prompt", "image_url"}), image_url=http_url,
        aspect_ratio=one_of("16:9", "9:16", "1:1", "auto")),
    "bytedance/v1-pro-text-to-video": _SEEDANCE,
    "bytedance/v1-pro-image-to-video": _SEEDANCE.extend(required=frozenset({"prompt", "image_url"}),
                                                        image_url=http_url),
    # newer (kie-api-more.md §4-5)
    "nano-banana-pro": ModelRule({
        "prompt": text(10000), "image_input": urls(1, 8),
        "aspect_ratio": one_of("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
                               "auto"),
        "resolution": one_of("1K", "2K", "4K"), "output_format": one_of("png", "jpg"),
    }),
    "seedream/4.5-text-to-image": _SEEDREAM_45,
    "seedream/4.5-edit": _SEEDREAM_45.extend(
        required=frozenset({"prompt", "aspect_ratio", "quality", "image_urls"}), image_urls=urls(1, 14)),
    "gpt-image/1.5-text-to-image": _GPT_IMAGE_15,
    "gpt-image/1.5-image-to-image": _GPT_IMAGE_15.extend(
        required=frozenset({"prompt", "aspect_ratio", "quality", "input_urls"}), input_urls=urls(1, 16)),
    "wan/2-6-text-to-video": _WAN_26,
    "wan/2-6-image-to-video": _WAN_26.extend(required=frozenset({"prompt", "image_urls"}),
                                             image_urls=urls(1, 1)),
    # upscalers (kie-api-more.md §5: the docs' own schemas, so strict); no prompt
    "topaz/image-upscale": ModelRule({
        "image_url": http_url, "upscale_factor": one_of("1", "2", "4", "8"),
    }, required=frozenset({"image_url", "upscale_factor"})),
    "recraft/crisp-upscale": ModelRule({"image": http_url}, required=frozenset({"image"})),
    "topaz/video-upscale": ModelRule({
        "video_url": http_url, "upscale_factor": one_of("1", "2", "4"),
    }, required=frozenset({"video_url"}), kind="video"),
    # speech (3rd): `text`, not `prompt`
    "elevenlabs/text-to-speech-multilingual-v2": ModelRule({
        "text": text(5000), "voice": one_of(*_VOICES), "stability": number(0, 1),
        "similarity_boost": number(0, 1), "style": number(0, 1), "speed": number(0.7, 1.2),
        "language_code": string,
    }, required=frozenset({"text"}), strict=False, kind="audio"),
}


def validate_input(model: str, rule: ModelRule, inp: dict[str, Any], prefix: str = "input.") -> str | None:
    """The first reason Kie would refuse this input, or None. `prefix`: how the message names a
    field ("" for a flat body)."""
    for key in sorted(rule.required):
        if key not in inp:
            return f"{prefix}{key} is required"
    for key, value in inp.items():
        check = rule.fields.get(key)
        if check is None:
            if rule.strict:
                return f"{prefix}{key} is not a valid parameter for model {model}"
            continue
        if error := check(value):
            return f"{prefix}{key} {error}"
    return rule.cross(inp) if rule.cross else None


# Suno (kie-api.md, Music and speech): prompt and style limits per version.
SUNO_PROMPT_MAX = {"V4": 3000, "V4_5": 5000, "V4_5PLUS": 5000, "V5": 5000}
SUNO_STYLE_MAX = {"V4": 200, "V4_5": 1000, "V4_5PLUS": 1000, "V5": 1000}
SUNO_SIMPLE_PROMPT_MAX = 500
SUNO_TITLE_MAX = 80


def _suno_head(body: dict[str, Any], require_callback: bool) -> str | None:
    """What every Suno body needs, whatever the mode."""
    if body.get("model") not in SUNO_MODELS:
        return f"model must be one of {', '.join(SUNO_MODELS)}"
    for key in ("customMode", "instrumental"):
        error = boolean(body[key]) if key in body else "is required"
        if error:
            return f"{key} {error}"
    callback = body.get("callBackUrl")
    if callback is None:
        return "callBackUrl is required" if require_callback else None
    return "callBackUrl must be an http(s) URL" if http_url(callback) else None


def _suno_fields(body: dict[str, Any]) -> tuple[list[str], dict[str, Check]]:
    """The keys this mode requires, and the checks of the keys it takes."""
    model, instrumental = body["model"], body["instrumental"]
    checks: dict[str, Check] = {"negativeTags": string, "vocalGender": one_of("m", "f")}
    if not body["customMode"]:  # simple mode: the lyrics are written from the prompt
        return ["prompt"], checks | {"prompt": text(SUNO_SIMPLE_PROMPT_MAX)}
    lyrics = text(SUNO_PROMPT_MAX[model])
    checks |= {"style": text(SUNO_STYLE_MAX[model]), "title": text(SUNO_TITLE_MAX),
               # an instrumental's prompt may be left empty; lyrics may not
               "prompt": (lambda v: None if v == "" else lyrics(v)) if instrumental else lyrics}
    return (["style", "title"] if instrumental else ["style", "title", "prompt"]), checks


def validate_suno(body: Any, *, require_callback: bool = False) -> str | None:
    """The first reason Kie would refuse this Suno generate body, or None. Keys it does not know
    are let through (Suno has more options than kie-api.md lists)."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object (Content-Type: application/json)"
    if error := _suno_head(body, require_callback):
        return error
    required, checks = _suno_fields(body)
    mode = "custom" if body["customMode"] else "simple"
    missing = next((key for key in required if key not in body), None)
    if missing:
        return f"{missing} is required in {mode} mode"
    return next((f"{key} {error}" for key, check in checks.items()
                 if key in body and (error := check(body[key]))), None)


# Suno's extend (kie-api-more.md, "Suno: extend a track"): the track's id and the source's own
# model; with defaultParamFlag true, the new part's words, style, title and where it starts.
SUNO_EXTEND_CUSTOM = ("prompt", "style", "title", "continueAt")


def _suno_extend_cross(body: dict[str, Any]) -> str | None:
    missing = [key for key in SUNO_EXTEND_CUSTOM if key not in body]
    if body["defaultParamFlag"] and missing:
        return f"{missing[0]} is required with defaultParamFlag true"
    return None


SUNO_EXTEND = ModelRule({
    "model": one_of(*SUNO_MODELS), "audioId": text(200), "defaultParamFlag": boolean,
    "callBackUrl": http_url, "prompt": text(3000), "style": text(200),
    "title": text(SUNO_TITLE_MAX), "continueAt": number(0.001, 24 * 3600),
}, required=frozenset({"model", "audioId", "defaultParamFlag"}), strict=False,
    cross=_suno_extend_cross, kind="audio")


def validate_suno_extend(body: Any, *, require_callback: bool = False) -> str | None:
    """The first reason Kie would refuse this extend body on its face, or None (whether the
    track exists is FakeKie's to say)."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object (Content-Type: application/json)"
    rule = SUNO_EXTEND.extend(required=SUNO_EXTEND.required | {"callBackUrl"}) \
        if require_callback else SUNO_EXTEND
    return validate_input("extend", rule, body, prefix="")


# The dedicated APIs (kie-api-more.md §1-4): flat bodies, every documented field and nothing else
# (strict: a market-style `aspect_ratio` sent to Runway, or a `model` to 4o Image, is refused).
# Prompts without a documented limit are checked as non-empty text.
ANY_LENGTH = 100_000
VEO_MODELS = ("veo3", "veo3_fast", "veo3_lite")
VEO_DEFAULT_MODEL = "veo3_fast"
VEO_TYPES = ("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO")
FLUX_MODELS = ("flux-kontext-pro", "flux-kontext-max")
FLUX_TOLERANCE = "The security tolerance level is out of range and should be 0-2 or 0-6"


def ints(*choices: int) -> Check:
    return lambda v: None if v in choices and isinstance(v, int) and not isinstance(v, bool) \
        else f"must be one of {', '.join(map(str, choices))}"


def _runway_duration(v: Any) -> str | None:
    """A number in the schema, a string in its example: 5 or 10 either way."""
    return None if not isinstance(v, bool) and v in (5, 10, "5", "10") else "must be 5 or 10"


def _veo_cross(body: dict[str, Any]) -> str | None:
    kind, images = body.get("generationType"), len(body.get("imageUrls") or [])
    if kind == "TEXT_2_VIDEO" and images:
        return "imageUrls are not taken by TEXT_2_VIDEO"
    if kind == "FIRST_AND_LAST_FRAMES_2_VIDEO" and not 1 <= images <= 2:
        return "FIRST_AND_LAST_FRAMES_2_VIDEO takes 1 or 2 imageUrls"
    if kind == "REFERENCE_2_VIDEO":
        if body.get("model", VEO_DEFAULT_MODEL) == "veo3":
            return "REFERENCE_2_VIDEO is not available with veo3"
        return None if images else "REFERENCE_2_VIDEO takes 1 to 3 imageUrls"
    return "3 imageUrls need REFERENCE_2_VIDEO" if images > 2 else None


def _runway_cross(body: dict[str, Any]) -> str | None:
    if body.get("quality") == "1080p" and str(body.get("duration")) == "10":
        return "1080p is not available with a 10 s duration"
    if "imageUrl" not in body and "aspectRatio" not in body:
        return "aspectRatio is required without imageUrl"
    return None


def _gpt4o_cross(body: dict[str, Any]) -> str | None:
    return None if {"prompt", "filesUrl", "fileUrl"} & body.keys() else "prompt or filesUrl is required"


FLAT_RULES: dict[str, ModelRule] = {
    API_VEO: ModelRule({
        "prompt": text(ANY_LENGTH), "model": one_of(*VEO_MODELS), "imageUrls": urls(1, 3),
        "generationType": one_of(*VEO_TYPES), "aspect_ratio": one_of("16:9", "9:16", "Auto"),
        "resolution": one_of("720p", "1080p", "4k"), "enableTranslation": boolean,
        "watermark": string, "seeds": integer(10000, 99999),
    }, cross=_veo_cross, kind="video"),
    API_RUNWAY: ModelRule({
        "prompt": text(1800), "duration": _runway_duration, "quality": one_of("720p", "1080p"),
        "aspectRatio": one_of("16:9", "4:3", "1:1", "3:4", "9:16"), "imageUrl": http_url,
        "waterMark": string,
    }, required=frozenset({"prompt", "duration", "quality"}), cross=_runway_cross, kind="video"),
    API_FLUX: ModelRule({
        "prompt": text(ANY_LENGTH), "enableTranslation": boolean, "inputImage": http_url,
        "aspectRatio": one_of("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
        "outputFormat": one_of("jpeg", "png"), "promptUpsampling": boolean,
        "model": one_of(*FLUX_MODELS), "safetyTolerance": integer(0, 6), "uploadCn": boolean,
        "watermark": string,
    }),
    API_GPT4O: ModelRule({
        "size": one_of("1:1", "3:2", "2:3"), "prompt": text(ANY_LENGTH), "filesUrl": urls(1, 5),
        "maskUrl": http_url, "nVariants": ints(1, 2, 4), "isEnhance": boolean,
        "enableFallback": boolean, "fallbackModel": one_of("GPT_IMAGE_1", "FLUX_MAX"),
        "uploadCn": boolean, "fileUrl": http_url,
    }, required=frozenset({"size"}), cross=_gpt4o_cross),
}


def validate_flat(api: str, rule: ModelRule, body: Any) -> tuple[int, str] | None:
    """The code and the reason Kie would refuse this dedicated API's create body with, or None."""
    if not isinstance(body, dict):
        return 422, "The request body must be a JSON object (Content-Type: application/json)"
    callback = body.get("callBackUrl")
    if callback is not None and http_url(callback):
        return 422, "callBackUrl must be an http(s) URL"
    fields = {k: v for k, v in body.items() if k != "callBackUrl"}
    tolerance = fields.get("safetyTolerance")
    if api == API_FLUX and isinstance(tolerance, int) and not isinstance(tolerance, bool) \
            and not 0 <= tolerance <= (2 if "inputImage" in fields else 6):
        return 500, FLUX_TOLERANCE  # Kie's own code for it (kie-api-more.md §3)
    error = validate_input(api, rule, fields, prefix="")
    return (422, error) if error else None


# -- files -------------------------------------------------------------------------------------

def make_png(seed: str, size: int = 16) -> bytes:
    """A valid size x size PNG of one colour derived from `seed` (so files differ per task)."""
    rgb = hashlib.sha256(seed.encode()).digest()[:3]
    raw = b"".join(b"\x00" + rgb * size for _ in range(size))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# The first bytes of other types, so sniffing code sees the right kind of file.
_MAGIC: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00",
}


def make_file(seed: str, content_type: str, size: int | None) -> bytes:
    base = make_png(seed) if content_type == "image/png" or content_type not in _MAGIC \
        else _MAGIC[content_type] + hashlib.sha256(seed.encode()).digest()
    if size is None:
        return base
    return base[:size] if size <= len(base) else base + bytes(size - len(base))


def _extension(content_type: str) -> str:
    return {"image/jpeg": ".jpg", "audio/mpeg": ".mp3"}.get(content_type) \
        or mimetypes.guess_extension(content_type) or ".bin"


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    return next((t for t, magic in _MAGIC.items() if data.startswith(magic[:4])), None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _clock_text(ms: int) -> str:
    """A time as Veo and Runway write it: "2025-06-06 10:30:00"."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ms: int) -> str:
    """A time as Flux Kontext writes it: "2024-03-20T10:30:00Z"."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _code(fail_code: str) -> int | str:
    """A failure code as the dedicated APIs give it: a number where it is one."""
    return int(fail_code) if fail_code.isdigit() else fail_code


RateKind = Literal["create", "read"]


def rate_kind(method: str, path: str) -> RateKind:
    """What Kie's rate limit makes of a request: a new generation ("create": every API's
    create, Suno's extend, a chat call: any POST but these two) or anything else ("read":
    status reads, the credit balance, Veo's 1080p, download-url, uploads)."""
    if method == "POST" and path != DOWNLOAD_URL_PATH and not path.startswith("/api/file-"):
        return "create"
    return "read"


def _key_of(request: web.Request) -> str:
    """The API key a request carries."""
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


# -- the server --------------------------------------------------------------------------------

class FakeKie(LocalServer):
    """Kie.ai's API host and upload host in one local aiohttp server (use `url` for both)."""

    def __init__(self, api_key: str = "kie-test-key", rate_limit: int = 20, window: float = 10.0,
                 more_keys: Sequence[str] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        # Every key is an account of its own: its own rate window, its own tasks.
        self.more_keys = list(more_keys)
        self.rate_limit = rate_limit
        self.window = window
        # What `rate_limit` counts (per key): "all" calls, or only "creates" (Kie's Getting
        # Started: "new generation requests"); then reads are refused only above `read_limit`
        # per window (None: never). See rate_kind.
        self.rate_scope: Literal["all", "creates"] = "all"
        self.read_limit: int | None = None

        # knobs tests turn
        self.credits: int = 1000
        self.rules: dict[str, ModelRule] = dict(MODEL_RULES)  # per instance: tests may add or tweak
        self.extra_models: set[str] = set()  # accepted with any input
        self.flat_rules: dict[str, ModelRule] = dict(FLAT_RULES)  # the dedicated APIs' bodies, by API
        # 4o Image's record-info: its schema says `resultUrls`, its examples `result_urls`.
        self.gpt4o_result_key: Literal["resultUrls", "result_urls"] = "resultUrls"
        self.plan: Callable[[dict[str, Any]], TaskPlan] | None = None  # wins over plan_by_prompt
        self.plan_by_prompt: dict[str, TaskPlan] = {}  # first key contained in the prompt wins
        self.default_plan = TaskPlan()
        # Kie's docs mark Suno's callBackUrl required; whether Kie refuses a body without one is
        # unverified. True = refuse it with 422.
        self.suno_require_callback: bool = False
        self.create_delay: float = 0.0  # seconds before answering a create (the task exists already)
        self.read_delay: float = 0.0  # seconds before answering a recordInfo read (the read counted already)
        # The next this many creates make their task, then the connection breaks before the
        # answer (a proxy's reset, or a caller frozen past its timeout): the caller never learns
        # the task id.
        self.broken_create_answers: int = 0
        # Network latency, each way, for every request: seconds, or a (low, high) range drawn per
        # leg. A request counts in the rate window when it arrives, after the way there.
        self.latency: float | tuple[float, float] = 0.0
        # Tasks whose result files are gone (Kie's result URLs live about 24 h): their files
        # answer 404, and download-url refuses them. See expire().
        self.expired: set[str] = set()
        # What a result file holds instead of the generated stand-in: (bytes, content type) for
        # (task, file name), or None for the stand-in (`make demo` serves real media this way).
        self.result_content: Callable[[Task, str], tuple[bytes, str] | None] | None = None

        # what happened
        self.requests: list[Req] = []  # every /api/* request, accepted or not
        self.file_requests: list[Req] = []  # GETs of result files and uploads (no auth, no rate limit)
        self.rate_limited: int = 0  # 429s answered by the rate limiter (injected failures not counted)
        self.rate_limited_by_key: collections.Counter[str] = collections.Counter()
        self.rate_limited_by_kind: collections.Counter[RateKind] = collections.Counter()
        # Keys answered with this code whatever they ask (401: revoked; 402: out of credits).
        self.refused_keys: dict[str, int] = {}
        self.tasks: dict[str, Task] = {}
        self.uploads: dict[str, bytes] = {}  # "uploadPath/fileName" -> bytes
        self.upload_types: dict[str, str] = {}  # "uploadPath/fileName" -> mime type
        self.url_uploads: list[str] = []  # fileUrl values of file-url-upload, in order
        self.token_leaks: list[str] = []  # requests refused for carrying a Telegram file URL or token
        # (task id, HTTP status the bot answered) of every callback that got an answer, in order
        self.callbacks_sent: list[tuple[str, int]] = []
        self.chat = FakeChat()  # the chat models (kie_chat.py): scripts and requests
        self._init_callbacks()

        self._create_failures: collections.deque[_Failure] = collections.deque()
        self._read_failures: collections.deque[_Failure] = collections.deque()
        self._hd_failures: collections.deque[_Failure] = collections.deque()  # get-1080p-video
        self._upload_failures: collections.deque[int] = collections.deque()  # HTTP statuses
        # per key: arrival times within the window
        self._admitted: collections.defaultdict[tuple[str, RateKind], collections.deque[float]] = \
            collections.defaultdict(collections.deque)
        self._tokens: dict[str, str] = {}  # download-url token -> the file path it opens
        self._counter = 0

    def _init_callbacks(self) -> None:
        # knobs tests turn (kie-api.md "Callbacks")
        self.auto_callbacks: bool = False  # POST the callback when a task ends (Suno: at its stages too)
        # Sign callbacks like Kie: X-Webhook-Timestamp, X-Webhook-Signature = base64(HMAC-SHA256(key,
        # taskId + "." + timestamp)). Used by auto callbacks and by send_callback unless it says otherwise.
        self.hmac_key: str | None = None
        self.callback_shape: Literal["wrapped", "flat"] = "wrapped"  # auto callbacks' body
        self.suno_stage_callbacks: bool = True  # auto: Suno's "text" and "first" callbacks before "complete"
        self.callback_delay: float | tuple[float, float] = 0.0  # auto: seconds each is held (or a range)
        self.callback_loss: float = 0.0  # auto: probability that a callback is lost
        self.callback_duplicate: float = 0.0  # auto: probability that a callback is sent twice
        self.callback_timeout: float = 10.0  # seconds to wait for the receiver's answer
        # A loopback base URL ("http://127.0.0.1:8080") to send callbacks to instead of the callBackUrl's
        # scheme, host and port (path and query kept): lets the bot give Kie a public https URL.
        self.deliver_callbacks_to: str | None = None

        # what happened: every callback, sent, lost or failed, in the order they were answered
        self.callback_log: list[CallbackRecord] = []

        self._lose_next = 0
        self._duplicate_next = 0
        self._delay_next: collections.deque[float] = collections.deque()
        self._background: set[asyncio.Task[None]] = set()  # finish_after clocks and auto callbacks
        self._callback_locks: dict[str, asyncio.Lock] = {}  # one task's callbacks go one at a time

    # -- lifecycle ---------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stops the clocks and the callbacks still waiting or in flight, then the server."""
        pending = list(self._background)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._background.clear()
        await super().stop()

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 1024 * 1024)
        r = app.router
        r.add_post("/api/v1/jobs/createTask", self._create_task)
        r.add_get("/api/v1/jobs/recordInfo", self._record_info(API_MARKET, msg_key="message"))
        r.add_post("/api/v1/generate", self._suno_generate)
        r.add_get("/api/v1/generate/record-info", self._record_info(API_SUNO))
        r.add_post("/api/v1/generate/extend", self._suno_extend)
        for api, create, read in FLAT_ENDPOINTS:
            r.add_post(create, self._flat_create(api))
            r.add_get(read, self._record_info(api))
        r.add_get(VEO_1080P_PATH, self._veo_1080p)
        r.add_get("/api/v1/chat/credit", self._credit)
        r.add_post(DOWNLOAD_URL_PATH, self._download_url)
        r.add_post("/api/file-stream-upload", self._stream_upload)
        r.add_post("/api/file-base64-upload", self._base64_upload)
        r.add_post("/api/file-url-upload", self._url_upload)
        r.add_post("/{model}/v1/chat/completions", self.chat.handle)
        r.add_route("*", "/api/{tail:.*}", self._no_endpoint)  # last: also catches a wrong method
        r.add_get("/files/{task_id}/{name}", self._result_file)
        r.add_get("/uploads/{key:.+}", self._uploaded_file)
        return app

    # -- test helpers ------------------------------------------------------------------------

    @property
    def creates(self) -> list[dict[str, Any]]:
        """The bodies of the creates Kie accepted, in order."""
        return [t.body for t in self.tasks.values()]

    def count(self, path_suffix: str) -> int:
        return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    def max_in_window(self, window: float | None = None, key: str | None = None) -> int:
        """The most /api/* requests (accepted or not) that arrived within any `window` seconds;
        of one key's account, or of all together (key None)."""
        window = self.window if window is None else window
        times = sorted(r.time for r in self.requests if key is None or r.key == key)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:  # same half-open window the limiter uses
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def peak_per_key(self) -> dict[str, int]:
        """Per key that made a request: the most requests it made within any window."""
        return {key: self.max_in_window(key=key) for key in dict.fromkeys(r.key for r in self.requests)}

    def calls_per_api(self, requests: Sequence[Req] | None = None) -> dict[str, collections.Counter[str]]:
        """Per API ("" for calls of none): how many of `requests` (default: all) were creates,
        status reads and other calls, and how many of them were answered 429."""
        counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for req in self.requests if requests is None else requests:
            counts[req.api][req.role] += 1
            counts[req.api]["429"] += req.status == 429
        return dict(counts)

    def fail_create_next(self, code: int, msg: str | None = None, times: int = 1,
                         http_status: int = 200, raw_body: str | None = None) -> None:
        """The next `times` creates answer this error and create nothing. `raw_body` answers that
        text (as HTML, status `http_status`) instead of an envelope, like a proxy in front of Kie."""
        failure = _Failure(code, msg or DEFAULT_MESSAGES.get(code, "Error"), http_status, raw_body)
        self._create_failures.extend([failure] * times)

    def fail_reads_next(self, code_or_status: int, times: int = 1, msg: str | None = None,
                        http_status: int | None = None, raw_body: str | None = None) -> None:
        """The next `times` recordInfo reads answer this error and do not advance any task.
        429 is answered with HTTP 429, anything else with HTTP 200 unless `http_status` says."""
        status = http_status if http_status is not None else (429 if code_or_status == 429 else 200)
        failure = _Failure(code_or_status, msg or DEFAULT_MESSAGES.get(code_or_status, "Error"), status,
                           raw_body)
        self._read_failures.extend([failure] * times)

    def fail_1080p_next(self, code: int, times: int = 1, msg: str | None = None) -> None:
        """The next `times` get-1080p-video reads answer this error (HTTP 200, like Kie)."""
        failure = _Failure(code, msg or DEFAULT_MESSAGES.get(code, "Error"), 200, None)
        self._hd_failures.extend([failure] * times)

    def fail_uploads_next(self, http_status: int = 500, times: int = 1) -> None:
        """The next `times` uploads (any of the three ways) answer this HTTP error, storing nothing."""
        self._upload_failures.extend([http_status] * times)

    def finish(self, task_id: str) -> str:
        """Move a task straight to its outcome (as if enough reads had happened); returns its state.
        For callback tests: finish(), then send_callback() (with auto_callbacks, the fake sends it)."""
        task = self.tasks[task_id]
        task.step = max(task.step, task.plan.reads_before_done + 1)
        task.finished = True
        task.progress = 1.0
        self._set_state(task)
        return task.state

    def expire(self, task_id: str) -> None:
        """The task's result files are gone: fetched directly, or by a fresh download-url link
        (even one handed out before), they answer 404; download-url answers 422 for them."""
        self.expired.add(task_id)

    def record(self, task_id: str) -> dict[str, Any]:
        """The task as its status read's `data` shows it now (without advancing it)."""
        task = self.tasks[task_id]
        if task.api == API_SUNO:
            return self._suno_record(task)
        if task.api in FLAT_APIS:
            return self._flat_record(task)
        done = task.state in ("success", "fail")
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "model": task.model,
            "state": task.state,
            "param": json.dumps(task.body),
            "resultJson": json.dumps({"resultUrls": task.result_urls + task.plan.bad_urls})
            if task.state == "success" else "",
            "failCode": task.plan.fail_code if task.state == "fail" else "",
            "failMsg": task.plan.fail_msg if task.state == "fail" else "",
            "createTime": task.create_time,
            "updateTime": task.update_time,
            "completeTime": task.complete_time,
        }
        if done and task.complete_time is not None:
            data["costTime"] = task.complete_time - task.create_time  # absent while running (3rd)
        return data

    async def send_callback(self, task_id: str, *, shape: Literal["wrapped", "flat"] = "wrapped",
                            hmac_key: str | _Unset | None = UNSET, timestamp: int | None = None,
                            url: str | None = None) -> int:
        """POST the task's callback to its callBackUrl (or `url`) like Kie does, now, as the task
        stands; returns the HTTP status (a connection error is raised). wrapped = {"code", "msg",
        "data": record} (seen in working receivers; code 501 and the failMsg for a failed task), flat =
        the record. Suno's `data` is its callback: callbackType, task_id, the tracks. Signed like Kie
        (X-Webhook-Signature = base64(HMAC-SHA256(key, taskId.timestamp))) with `hmac_key`, by default
        the fake's `hmac_key`; None = unsigned. Lost/duplicate/delay faults apply to auto callbacks only."""
        task = self.tasks[task_id]
        target = url or task.callback_url
        if not target:
            raise ValueError(f"task {task_id} has no callBackUrl")
        target = self._callback_target(target, redirect=url is None)
        payload, stage = self._callback_payload(task, shape)
        key = self.hmac_key if isinstance(hmac_key, _Unset) else hmac_key
        record = CallbackRecord(task_id, None, time.monotonic(), stage, target, auto=False, payload=payload)
        await self._post_callback(record, key, timestamp, raise_errors=True)
        assert record.status is not None
        return record.status

    def lose_callbacks(self, n: int = 1) -> None:
        """The next `n` auto callbacks are never sent (recorded in callback_log with lost=True)."""
        self._lose_next += n

    def duplicate_callbacks(self, n: int = 1) -> None:
        """The next `n` auto callbacks are each sent twice, one after the other."""
        self._duplicate_next += n

    def delay_callbacks(self, seconds: float, n: int = 1) -> None:
        """The next `n` auto callbacks are held `seconds` before they are sent (later ones may pass them)."""
        self._delay_next.extend([seconds] * n)

    async def wait_callbacks(self, count: int = 1, predicate: Callable[[CallbackRecord], bool] | None = None,
                             timeout: float = 5.0) -> list[CallbackRecord]:
        """Wait until `count` callbacks that got an HTTP answer (any status) match `predicate`;
        returns all that match."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.callback_log
                     if r.status is not None and (predicate is None or predicate(r))]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {count} answered callback(s); "
                                     f"{len(found)} matched. Callbacks: {self.callback_log}")
            await asyncio.sleep(0.01)

    # -- callbacks ---------------------------------------------------------------------------

    def _callback_target(self, url: str, *, redirect: bool = True) -> str:
        if redirect and self.deliver_callbacks_to:
            base, parts = urllib.parse.urlsplit(self.deliver_callbacks_to), urllib.parse.urlsplit(url)
            url = urllib.parse.urlunsplit((base.scheme, base.netloc, parts.path or "/", parts.query, ""))
        if urllib.parse.urlsplit(url).hostname not in LOCAL_HOSTS:
            raise ValueError(f"refusing to call a non-local callback URL: {url}")
        return url

    def _callback_payload(self, task: Task, shape: Literal["wrapped", "flat"]) -> tuple[Any, str]:
        """The body of the task's callback as it stands, and its stage (see CallbackRecord.stage)."""
        if task.api == API_SUNO:
            data = self._suno_callback(task)
            stage = data["callbackType"]
        elif task.api in FLAT_APIS:
            payload = self._flat_callback(task)
            return (payload["data"] if shape == "flat" else payload), task.state
        else:
            data = self.record(task.task_id)
            stage = data["state"]
        if shape == "flat":
            return data, stage
        failed = task.done and task.plan.outcome == "fail"
        # A failed task's envelope carries 501 "generation failed" (assumed: the docs show no schema).
        code, msg = (501, task.plan.fail_msg) if failed else (200, "success")
        return {"code": code, "msg": msg, "data": data}, stage

    async def _post_callback(self, record: CallbackRecord, key: str | None, timestamp: int | None, *,
                             raise_errors: bool) -> None:
        headers: dict[str, str] = {}
        if key is not None:
            ts = str(int(time.time()) if timestamp is None else timestamp)
            digest = hmac.new(key.encode(), f"{record.task_id}.{ts}".encode(), hashlib.sha256).digest()
            headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": base64.b64encode(digest).decode()}
            record.signed = True
        record.time = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=self.callback_timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(record.url, json=record.payload, headers=headers,
                                 allow_redirects=False) as response:
                await response.read()
                record.status = response.status
        except (aiohttp.ClientError, TimeoutError) as e:
            record.error = "timed out" if isinstance(e, TimeoutError) else \
                "connection refused" if isinstance(e, aiohttp.ClientConnectorError) else type(e).__name__
            if raise_errors:
                raise
        finally:
            record.elapsed = time.monotonic() - record.time
            self.callback_log.append(record)
        if record.status is not None:
            self.callbacks_sent.append((record.task_id, record.status))

    def _state_changed(self, task: Task) -> None:
        """A task reached a new state: with auto_callbacks, its end (and Suno's stages) is called back."""
        if not self.auto_callbacks or not task.callback_url:
            return
        stage = task.api == API_SUNO and self.suno_stage_callbacks and task.state in SUNO_STAGES
        if task.done or stage:
            self._schedule_callback(task)

    def _schedule_callback(self, task: Task) -> None:
        payload, stage = self._callback_payload(task, self.callback_shape)  # the state of this moment
        url = task.callback_url or ""
        try:
            target = self._callback_target(url)
        except ValueError as e:
            self.callback_log.append(CallbackRecord(task.task_id, None, time.monotonic(), stage, url,
                                                    error=str(e), payload=payload))
            return
        lost = self._lose_next > 0 or (self.callback_loss > 0 and random.random() < self.callback_loss)
        if lost:
            self._lose_next = max(self._lose_next - 1, 0)
            self.callback_log.append(CallbackRecord(task.task_id, None, time.monotonic(), stage, target,
                                                    lost=True, error="lost", payload=payload))
            return
        copies = 1
        if self._duplicate_next > 0:
            self._duplicate_next -= 1
            copies = 2
        elif self.callback_duplicate > 0 and random.random() < self.callback_duplicate:
            copies = 2
        if self._delay_next:
            delay = self._delay_next.popleft()
        else:
            low, high = self.callback_delay if isinstance(self.callback_delay, tuple) \
                else (self.callback_delay, self.callback_delay)
            delay = random.uniform(low, high) if high > 0 else 0.0
        self._spawn(self._send_auto_callback(task.task_id, target, payload, stage, delay, copies))

    async def _send_auto_callback(self, task_id: str, target: str, payload: Any, stage: str, delay: float,
                                  copies: int) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._callback_locks.setdefault(task_id, asyncio.Lock()):
            for n in range(copies):
                record = CallbackRecord(task_id, None, time.monotonic(), stage, target, duplicate=n > 0,
                                        delay=delay, payload=payload)
                await self._post_callback(record, self.hmac_key, None, raise_errors=False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_clock(self, task: Task) -> None:
        """A finish_after task's clock: it passes each running state, then ends the task, on time."""
        assert task.plan.finish_after is not None
        stages = len(LIFECYCLE[task.api][0])
        for k in range(1, stages + 1):
            await asyncio.sleep(max(task.started + task.plan.finish_after * k / stages - time.monotonic(), 0))
            if task.finished:
                return
            self._refresh(task, floor=k / stages)

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _is_upload_host(path: str) -> bool:
        return path.startswith("/api/file-")

    @staticmethod
    def _kie(code: int, msg: str, data: Any = None, *, status: int = 200,
             msg_key: str = "msg") -> web.Response:
        return web.json_response({"code": code, msg_key: msg, "data": data}, status=status)

    @staticmethod
    def _upload_error(status: int, msg: str) -> web.Response:
        # The upload host answers errors with real HTTP statuses (kie-api.md).
        return web.json_response({"success": False, "code": status, "msg": msg, "data": None}, status=status)

    def _error(self, path: str, code: int, msg: str) -> web.Response:
        return self._upload_error(code if code >= 400 else 400, msg) if self._is_upload_host(path) \
            else self._kie(code, msg)

    @staticmethod
    def _answer_failure(f: _Failure) -> web.Response:
        if f.raw_body is not None:
            return web.Response(text=f.raw_body, status=f.http_status, content_type="text/html")
        return web.json_response({"code": f.code, "msg": f.msg, "data": None}, status=f.http_status)

    def _admit(self, now: float, key: str, kind: RateKind) -> bool:
        """Sliding window over a key's accepted calls: a refused call does not count against
        later ones. Under rate_scope "creates", creates and reads have a window each."""
        if self.rate_scope == "all":
            kind, limit = "create", self.rate_limit  # one window for every call
        else:
            limit = self.rate_limit if kind == "create" else self.read_limit or 0
            if limit == 0:
                return True
        admitted = self._admitted[key, kind]
        while admitted and now - admitted[0] >= self.window:
            admitted.popleft()
        if len(admitted) >= limit:
            return False
        admitted.append(now)
        return True

    @staticmethod
    async def _read_body(request: web.Request) -> Any:
        """Parse the body for the record; aiohttp caches it, so handlers can read it again."""
        if not request.body_exists:
            return None
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            out: dict[str, Any] = {}
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    value.file.seek(0, 2)
                    out[key] = {"filename": value.filename, "content_type": value.content_type,
                                "size": value.file.tell()}
                    value.file.seek(0)
                else:
                    out[key] = value
            return out
        raw = await request.read()
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    async def _travel(self) -> None:
        """One leg of the simulated network."""
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency, self.latency)
        if high > 0:
            await asyncio.sleep(random.uniform(low, high))

    @web.middleware
    async def _middleware(
            self, request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        await self._travel()
        now = time.monotonic()
        is_api = request.path.startswith("/api/") or FakeChat.is_chat(request.path)
        key = _key_of(request)
        req = Req(request.method, request.path, dict(request.query), await self._read_body(request), now,
                  key=key)
        (self.requests if is_api else self.file_requests).append(req)
        try:
            if not is_api:  # result files and uploads are public links, like Kie's CDN
                response = await handler(request)
            elif not self._admit(now, key, kind := rate_kind(request.method, request.path)):
                self.rate_limited += 1
                self.rate_limited_by_key[key] += 1
                self.rate_limited_by_kind[kind] += 1
                body: dict[str, Any] = {"code": 429, "msg": "Rate limited", "data": None}
                if self._is_upload_host(request.path):
                    body = {"success": False, **body}
                response = web.json_response(body, status=429)
            elif key not in (self.api_key, *self.more_keys):
                response = self._error(request.path, 401, DEFAULT_MESSAGES[401])
            elif key in self.refused_keys:
                code = self.refused_keys[key]
                response = self._error(request.path, code, DEFAULT_MESSAGES[code])
            elif TELEGRAM_SECRET.search(request.query_string + json.dumps(req.body, default=str)):
                self.token_leaks.append(json.dumps(req.body, default=str))
                msg = "Refusing a Telegram file URL or bot token"
                response = self._upload_error(400, msg) if self._is_upload_host(request.path) \
                    else self._kie(422, msg)
            else:
                response = await handler(request)
        except web.HTTPException as exc:
            req.status = exc.status
            raise
        req.status = response.status
        answer: Any = None
        if (isinstance(response, web.Response) and response.content_type == "application/json"
                and response.body):
            with contextlib.suppress(ValueError, AttributeError):
                answer = json.loads(response.body)  # type: ignore[arg-type]
                req.code = answer.get("code")
        if is_api:
            self._classify(req, answer)
        await self._travel()
        return response

    def _classify(self, req: Req, answer: Any) -> None:
        """Fill in the request's API, role and task (see Req): a create's task is the one its
        answer names; a read's (or Veo's 1080p) its taskId; download-url's the task of its file."""
        req.api, req.role = ENDPOINTS.get(req.path, ("", "other"))
        if req.role == "create":
            data = answer.get("data") if isinstance(answer, dict) else None
            task_id = data.get("taskId") if isinstance(data, dict) else None
        elif req.path == DOWNLOAD_URL_PATH and isinstance(req.body, dict) \
                and isinstance(req.body.get("url"), str):  # {"url": ".../files/<task id>/<name>"}
            parts = urllib.parse.urlsplit(req.body["url"]).path.split("/")
            task_id = parts[-2] if len(parts) > 2 else None
        else:
            task_id = req.query.get("taskId")
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is not None:
            req.task_id = task.task_id
            req.api = req.api or task.api

    async def _json(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            return None
        try:
            return await request.json()
        except ValueError:
            return None

    # -- the market API ----------------------------------------------------------------------

    async def _no_endpoint(self, request: web.Request) -> web.Response:
        return self._error(request.path, 404, f"No such endpoint: {request.method} {request.path}")

    def _validate_create(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "The request body must be a JSON object (Content-Type: application/json)"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "model is required"
        inp = body.get("input")
        if not isinstance(inp, dict):
            return "input must be an object"
        callback = body.get("callBackUrl")
        if callback is not None and http_url(callback):
            return "callBackUrl must be an http(s) URL"
        rule = self.rules.get(model)
        if rule is None:
            return None if model in self.extra_models else f"The model {model} is not supported"
        return validate_input(model, rule, inp)

    def _plan_for(self, body: dict[str, Any], inp: dict[str, Any]) -> TaskPlan:
        if self.plan is not None:
            return self.plan(body)
        prompt = str(inp.get("prompt") or inp.get("text") or inp.get("title") or "")
        return next((p for key, p in self.plan_by_prompt.items() if key in prompt), self.default_plan)

    async def _create_task(self, request: web.Request) -> web.Response:
        if self._create_failures:
            return self._answer_failure(self._create_failures.popleft())
        body = await self._json(request)
        if error := self._validate_create(body):
            return self._kie(422, error)
        rule = self.rules.get(body["model"])
        return await self._new_task(request, API_MARKET, body, body["input"], rule.kind if rule else "image",
                                    _key_of(request))

    async def _suno_generate(self, request: web.Request) -> web.Response:
        if self._create_failures:
            return self._answer_failure(self._create_failures.popleft())
        body = await self._json(request)
        if error := validate_suno(body, require_callback=self.suno_require_callback):
            return self._kie(422, error)
        return await self._new_task(request, API_SUNO, body, body, "audio", _key_of(request))

    async def _suno_extend(self, request: web.Request) -> web.Response:
        """An extend: read like any Suno task. Its audioId must be a finished track of this
        account's, and its model the track's own [?] (kie-api-more.md: refused otherwise)."""
        if self._create_failures:
            return self._answer_failure(self._create_failures.popleft())
        body = await self._json(request)
        if error := validate_suno_extend(body, require_callback=self.suno_require_callback):
            return self._kie(422, error)
        source = self._suno_track_task(body["audioId"], _key_of(request))
        if source is None:
            return self._kie(422, f"audioId {body['audioId']} is not a track of this account")
        if source.model != body["model"]:
            return self._kie(422, f"model must be the source audio's model ({source.model})")
        return await self._new_task(request, API_SUNO, body, body, "audio", _key_of(request))

    def _suno_track_task(self, audio_id: str, key: str) -> Task | None:
        """The finished Suno task of this account that made the track `audio_id`."""
        task_id, _, number = audio_id.rpartition("-")
        task = self.tasks.get(task_id)
        if task is None or task.api != API_SUNO or task.key != key or not task.done \
                or task.plan.outcome != "success" or not number.isdigit() \
                or int(number) >= len(task.result_urls):
            return None
        return task

    def _task_id(self, api: str, model: str) -> str:
        """Opaque and unique across fakes, in each API's own style (Runway's are UUIDs)."""
        self._counter += 1
        if api == API_RUNWAY:
            return str(uuid.uuid4())
        prefix = {API_MARKET: "task", API_SUNO: "suno", API_VEO: "veo_task", API_FLUX: "task_flux",
                  API_GPT4O: "task_4o"}[api]
        slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
        return f"{prefix}_{slug}_{self._counter}_{secrets.token_hex(3)}"

    @staticmethod
    def _file_count(api: str, plan: TaskPlan, body: dict[str, Any]) -> int:
        if api in (API_RUNWAY, API_FLUX):  # one video, one picture: nothing else fits their records
            return 1
        if plan.urls is not None:
            return plan.urls
        if api == API_GPT4O:
            return body.get("nVariants") or 1
        return 2 if api == API_SUNO else 1

    async def _new_task(self, request: web.Request, api: str, body: dict[str, Any],
                        inp: dict[str, Any], kind: str, key: str) -> web.Response:
        model = body.get("model") or (VEO_DEFAULT_MODEL if api == API_VEO else
                                      FLUX_MODELS[0] if api == API_FLUX else api)
        task_id = self._task_id(api, model)
        plan = self._plan_for(body, inp)
        content_type = plan.content_type or KIND_CONTENT_TYPES[kind]
        ext = _extension(content_type)
        count = self._file_count(api, plan, body)
        now = _now_ms()
        task = Task(task_id, model, body, plan,
                    [f"{self.url}/files/{task_id}/{n}{ext}" for n in range(count)],
                    create_time=now, update_time=now, api=api, content_type=content_type,
                    state=LIFECYCLE[api][0][0], key=key)
        if api in (API_SUNO, API_RUNWAY):  # a cover picture per track; Runway's video's
            task.cover_urls = [f"{self.url}/files/{task_id}/cover{n}.jpg" for n in range(count)]
        if api == API_VEO:
            task.hd_urls = [f"{self.url}/files/{task_id}/{n}-1080p{ext}" for n in range(count)]
        self.tasks[task_id] = task
        if plan.finish_after is not None:
            self._spawn(self._run_clock(task))
        if self.create_delay:
            # The task exists already: a create whose answer is lost still runs on Kie's side.
            await asyncio.sleep(self.create_delay)
        if self.broken_create_answers > 0:
            self.broken_create_answers -= 1
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("the create's answer was lost")
        return self._kie(200, "success", {"taskId": task_id})

    def _refresh(self, task: Task, floor: float = 0.0) -> None:
        """Bring a task up to date: a finish_after task by the clock (at least `floor` of its time)."""
        plan = task.plan
        if plan.finish_after is not None and not task.finished:
            elapsed = time.monotonic() - task.started
            share = elapsed / plan.finish_after if plan.finish_after > 0 else 1.0
            task.progress = max(task.progress, share, floor)
            task.finished = task.progress >= 1.0
        self._set_state(task)

    def _set_state(self, task: Task) -> None:
        plan = task.plan
        running, success, failure = LIFECYCLE[task.api]
        if task.done:
            state = success if plan.outcome == "success" else plan.fail_state or failure
        elif plan.finish_after is not None:
            state = plan.state_override or running[min(int(task.progress * len(running)), len(running) - 1)]
        elif task.step <= plan.reads_before_done:
            state = plan.state_override or running[min(task.step, len(running)) - 1]
        else:  # outcome "never"
            state = plan.state_override or running[-1]
        if state == task.state:
            return
        if task.api == API_SUNO and task.state in running and (state in running or state == success):
            # A late clock or read skips none of Suno's running stages on the way to a later
            # one: each has its callback ("text", "first") whenever it passes.
            end = running.index(state) if state in running else len(running)
            for passed in running[running.index(task.state) + 1:end]:
                task.state = passed
                task.update_time = _now_ms()
                self._state_changed(task)
        task.state = state
        task.update_time = _now_ms()
        if task.done:
            task.complete_time = task.update_time
        self._state_changed(task)

    def _read_task(self, request: web.Request, api: str) -> Task | web.Response:
        """The task a status read asks for, advanced one step; or the error to answer."""
        if self._read_failures:
            return self._answer_failure(self._read_failures.popleft())
        task_id = request.query.get("taskId")
        if not task_id:
            return self._kie(422, "taskId is required")
        task = self.tasks.get(task_id)
        # Each API knows only its own tasks (assumed), and each account only its own.
        if task is None or task.api != api or task.key != _key_of(request):
            return self._kie(404, DEFAULT_MESSAGES[404])
        task.reads += 1
        task.step += 1
        self._refresh(task)
        return task

    def _suno_tracks(self, task: Task, *, snake: bool = False) -> list[dict[str, Any]]:
        """sunoData as it stands: titles and tags from TEXT_SUCCESS on, the first track's audio
        from FIRST_SUCCESS, every track's on SUCCESS."""
        running, success, _ = LIFECYCLE[API_SUNO]
        if task.state == success:
            ready = len(task.result_urls)
        elif task.state == "FIRST_SUCCESS":
            ready = 1
        elif task.state in running[1:]:
            ready = 0
        else:
            return []
        title = task.body.get("title") or f"Fake song {task.task_id[-6:]}"
        tags = task.body.get("style") or "pop, upbeat"
        tracks = []
        for n, url in enumerate(task.result_urls):
            track = {
                "id": f"{task.task_id}-{n}",
                "audioUrl": url if n < ready else "",
                "streamAudioUrl": f"{url}?stream=1",
                "imageUrl": task.cover_urls[n],
                "prompt": task.body.get("prompt", ""),
                "modelName": task.model,
                "title": title,
                "tags": tags,
                "createTime": task.create_time,
                "duration": (120.5 + 30 * n if isinstance(task.plan.track_duration, _Unset)
                             else task.plan.track_duration) if n < ready else None,
            }
            if snake:  # callbacks spell the keys in snake_case (3rd)
                track = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v
                         for k, v in track.items()}
            tracks.append(track)
        return tracks

    def _suno_record(self, task: Task) -> dict[str, Any]:
        tracks = self._suno_tracks(task)
        failed = task.done and task.plan.outcome == "fail"
        code: Any = task.plan.fail_code
        return {
            "taskId": task.task_id,
            "parentMusicId": "",
            "param": json.dumps(task.body),
            "response": {"taskId": task.task_id, "sunoData": tracks} if tracks else None,
            "status": task.state,
            "type": "GENERATE",
            "operationType": "generate",
            "errorCode": (int(code) if str(code).isdigit() else code) if failed else None,
            "errorMessage": task.plan.fail_msg if failed else None,
        }

    def _suno_callback(self, task: Task) -> dict[str, Any]:
        """Suno's callback `data` (3rd): a stage and the tracks, not the record-info shape."""
        return {"callbackType": SUNO_STAGES.get(task.state, "error"), "task_id": task.task_id,
                "data": self._suno_tracks(task, snake=True)}

    # -- the dedicated APIs: Veo 3.1, Runway, Flux Kontext, 4o Image (kie-api-more.md) ---------

    def _flat_create(self, api: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def create(request: web.Request) -> web.Response:
            if self._create_failures:
                return self._answer_failure(self._create_failures.popleft())
            body = await self._json(request)
            rule = self.flat_rules[api]
            if refusal := validate_flat(api, rule, body):
                return self._kie(*refusal)
            inp = {k: v for k, v in body.items() if k not in ("model", "callBackUrl")}
            return await self._new_task(request, api, body, inp, rule.kind, _key_of(request))
        return create

    def _record_info(self, api: str, msg_key: str = "msg") -> Callable[[web.Request],
                                                                     Awaitable[web.Response]]:
        """An API's status read: the task's record in that API's shape (`msg_key`: the market's
        recordInfo says "message")."""
        async def read(request: web.Request) -> web.Response:
            task = self._read_task(request, api)
            if isinstance(task, web.Response):
                return task
            data = self.record(task.task_id)
            if self.read_delay:
                await asyncio.sleep(self.read_delay)
            return self._kie(200, "success", data, msg_key=msg_key)
        return read

    async def _veo_1080p(self, request: web.Request) -> web.Response:
        """The 1080p version of a finished Veo video: "processing" (400) for the plan's
        hd_pending_reads reads, then `data.resultUrl`. Not a status read: it moves no task."""
        if self._hd_failures:
            return self._answer_failure(self._hd_failures.popleft())
        task = self.tasks.get(request.query.get("taskId", ""))
        if task is None or task.api != API_VEO or task.key != _key_of(request):
            return self._kie(404, DEFAULT_MESSAGES[404])
        index = request.query.get("index", "0")
        if refusal := self._no_1080p(task, index):
            return self._kie(*refusal)
        return self._kie(200, "success", {"resultUrl": task.hd_urls[int(index)]})

    def _no_1080p(self, task: Task, index: str) -> tuple[int, str] | None:
        """Why get-1080p-video gives no file now (code, message), or None. (Wording assumed
        where Kie's docs give none.)"""
        if not index.isdigit() or int(index) >= len(task.hd_urls):
            return 422, "index is out of range"
        self._refresh(task)
        if task.state != LIFECYCLE[API_VEO][1]:
            return 422, "record status is not success"
        if task.plan.fallback:
            return 422, "Videos made by the fallback model have no 1080P version"
        task.hd_reads += 1
        if task.hd_reads <= task.plan.hd_pending_reads:
            return 400, "1080P is processing. It should be ready in 1-2 minutes"
        return None

    def _ended(self, task: Task) -> tuple[bool, bool]:
        """(succeeded, failed) as the task stands."""
        return task.state == LIFECYCLE[task.api][1], task.done and task.plan.outcome == "fail"

    def _flat_record(self, task: Task) -> dict[str, Any]:
        """A dedicated API's status read `data`, in its own words."""
        succeeded, failed = self._ended(task)
        if task.api == API_RUNWAY:
            return self._runway_record(task, succeeded, failed)
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "paramJson": json.dumps(task.input),
            "successFlag": FLAGS.get(task.state, 2 if failed else 0),  # a state_override: running
            "errorCode": _code(task.plan.fail_code) if failed else None,
            "errorMessage": task.plan.fail_msg if failed else "",
        }
        created, completed = task.create_time, task.complete_time
        if task.api == API_VEO:
            return data | {
                "response": {"taskId": task.task_id, "resultUrls": task.result_urls, "originUrls": None,
                             "fullResultUrls": None, "resolution": task.body.get("resolution", "720p")}
                if succeeded else None,
                "createTime": _clock_text(created), "fallbackFlag": task.plan.fallback,
                "completeTime": _clock_text(completed) if completed else None}
        if task.api == API_FLUX:
            # BFL's own URL (originImageUrl) lives 10 minutes: here it is never a file.
            return data | {
                "response": {"originImageUrl": f"{self.url}/files/{task.task_id}/origin.png",
                             "resultImageUrl": task.result_urls[0]} if succeeded else None,
                "createTime": _iso(created), "completeTime": _iso(completed) if completed else None}
        # 4o Image: one failure flag (2); `status` names it. Times in ms; progress a string.
        return data | {
            "successFlag": 2 if failed else data["successFlag"], "status": task.state,
            "response": {self.gpt4o_result_key: task.result_urls} if succeeded else None,
            "createTime": created, "completeTime": completed,
            "progress": "1.00" if task.done else f"{task.progress:.2f}"}

    def _runway_record(self, task: Task, succeeded: bool, failed: bool) -> dict[str, Any]:
        return {
            "taskId": task.task_id,
            "parentTaskId": "",
            "generateParam": {"prompt": task.body.get("prompt"), "imageUrl": task.body.get("imageUrl", ""),
                              "expandPrompt": True},
            "state": task.state,
            "generateTime": _clock_text(task.complete_time or task.create_time),
            "videoInfo": {"videoId": f"{task.task_id}-video", "taskId": task.task_id,
                          "videoUrl": task.result_urls[0], "imageUrl": task.cover_urls[0]}
            if succeeded else None,
            "failCode": _code(task.plan.fail_code) if failed else None,
            "failMsg": task.plan.fail_msg if failed else "",
            "expireFlag": 1 if task.task_id in self.expired else 0,  # kept 14 days
        }

    def _flat_callback(self, task: Task) -> dict[str, Any]:
        """A dedicated API's callback as its docs show it: `{"code", "msg", "data"}`, failures with
        Kie's failure code and message and empty results."""
        succeeded, failed = self._ended(task)
        urls = task.result_urls if succeeded else []
        first = urls[0] if urls else ""
        data: dict[str, Any]
        if task.api == API_VEO:
            data = {"taskId": task.task_id, "fallbackFlag": task.plan.fallback}
            if not failed:
                prompt = {"aspectRatio": task.body.get("aspect_ratio", "16:9"), "model": task.model,
                          "prompt": task.body.get("prompt")}
                data |= {"info": {"resultUrls": urls, "originUrls": [],
                                  "resolution": task.body.get("resolution", "720p")},
                         "promptJson": json.dumps(prompt)}
            message = "Veo3.1 video generated successfully."
        elif task.api == API_RUNWAY:  # snake_case, task_id
            data = {"task_id": task.task_id, "video_id": f"{task.task_id}-video" if urls else "",
                    "video_url": first, "image_url": task.cover_urls[0] if urls else ""}
            message = "All generated successfully."
        elif task.api == API_FLUX:
            data = {"taskId": task.task_id, "info": {"originImageUrl": "", "resultImageUrl": first}}
            message = "BFL image generated successfully."
        else:  # 4o Image: snake_case result_urls here
            data = {"taskId": task.task_id, "info": None if failed else {"result_urls": urls}}
            message = "success"
        code = _code(task.plan.fail_code) if failed else 200
        return {"code": code if isinstance(code, int) else 501,
                "msg": task.plan.fail_msg if failed else message, "data": data}

    async def _credit(self, request: web.Request) -> web.Response:
        return self._kie(200, "success", self.credits)  # a bare number, not an object

    def _result_path(self, file_url: str) -> str | None:
        """The /files/... path if `file_url` is one of this fake's result files."""
        parts = urllib.parse.urlsplit(file_url)
        if f"{parts.scheme}://{parts.netloc}" != self.url:
            return None
        return parts.path if any(parts.path == urllib.parse.urlsplit(u).path
                                 for t in self.tasks.values() for u in t.files) else None

    async def _download_url(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        file_url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(file_url, str) or not file_url:
            return self._kie(422, "url is required")
        path = self._result_path(file_url)
        if path is None:
            return self._kie(422, "The URL is not a file generated by Kie")
        if path.split("/")[2] in self.expired:  # /files/<task id>/<name>
            return self._kie(422, "The file has expired")
        token = secrets.token_urlsafe(12)
        self._tokens[token] = path
        return self._kie(200, "success", f"{self.url}{path}?token={token}")  # data is a string

    async def _result_file(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        name = request.match_info["name"]
        if task is None or task.task_id in self.expired or request.path not in {
                urllib.parse.urlsplit(u).path for u in task.files}:
            return web.Response(status=404, text="<html><body>Not Found</body></html>",
                                content_type="text/html")
        token = request.query.get("token")
        if token is not None:
            if self._tokens.get(token) != request.path:
                return web.Response(status=403, text="<html><body>Bad token</body></html>",
                                    content_type="text/html")
        elif task.plan.file_status != 200:
            return web.Response(status=task.plan.file_status, content_type="text/html",
                                text=f"<html><body>{task.plan.file_status}</body></html>")
        if self.result_content is not None and (content := self.result_content(task, name)):
            return web.Response(body=content[0], content_type=content[1])
        if name.startswith("cover"):  # a Suno cover picture
            return web.Response(body=make_file(f"{task.task_id}/{name}", "image/jpeg", None),
                                content_type="image/jpeg")
        data = make_file(f"{task.task_id}/{name}", task.content_type, task.plan.file_size)
        return web.Response(body=data, content_type=task.content_type)

    # -- the upload host ---------------------------------------------------------------------

    def _store(self, upload_path: Any, file_name: Any, data: bytes, mime: str | None) -> web.Response:
        if self._upload_failures:
            return self._upload_error(self._upload_failures.popleft(), "Injected upload failure")
        if not isinstance(upload_path, str) or not upload_path:
            return self._upload_error(400, "uploadPath is required")
        if upload_path.startswith("/") or upload_path.endswith("/"):
            return self._upload_error(400, "uploadPath must not start or end with '/'")
        if file_name is not None and (not isinstance(file_name, str) or not file_name or "/" in file_name):
            return self._upload_error(400, "fileName must be a plain file name")
        mime = mime or (mimetypes.guess_type(file_name)[0] if file_name else None) or _sniff(data) \
            or "application/octet-stream"
        file_name = file_name or f"{uuid.uuid4().hex}{_extension(mime)}"
        key = f"{upload_path}/{file_name}"
        self.uploads[key] = data  # the same name overwrites, like Kie
        self.upload_types[key] = mime
        return web.json_response({"success": True, "code": 200, "msg": "File uploaded successfully", "data": {
            "fileName": file_name,
            "filePath": key,
            "downloadUrl": f"{self.url}/uploads/{urllib.parse.quote(key)}",
            "fileSize": len(data),
            "mimeType": mime,
            "uploadedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }})

    async def _stream_upload(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            return self._upload_error(400, "Expected multipart/form-data")
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return self._upload_error(400, "file is required")
        data = part.file.read()
        mime = part.content_type if part.content_type not in ("", "application/octet-stream") else None
        # Without fileName the part's own name is used: a bot that always sends "photo.jpg" overwrites.
        return self._store(form.get("uploadPath"), form.get("fileName") or part.filename or None, data, mime)

    async def _base64_upload(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict):
            return self._upload_error(400, "Expected a JSON object")
        b64 = body.get("base64Data")
        if not isinstance(b64, str) or not b64:
            return self._upload_error(400, "base64Data is required")
        mime = None
        if m := re.match(r"data:([\w.+-]+/[\w.+-]+);base64,", b64):
            mime, b64 = m.group(1), b64[m.end():]
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            return self._upload_error(400, "base64Data is not valid base64")
        return self._store(body.get("uploadPath"), body.get("fileName"), data, mime)

    async def _url_upload(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict):
            return self._upload_error(400, "Expected a JSON object")
        file_url = body.get("fileUrl")
        if not isinstance(file_url, str) or http_url(file_url):
            return self._upload_error(400, "fileUrl must be an http(s) URL")
        if not isinstance(body.get("uploadPath"), str) or not body["uploadPath"]:
            return self._upload_error(400, "uploadPath is required")
        self.url_uploads.append(file_url)
        parts = urllib.parse.urlsplit(file_url)
        mime: str | None = None
        if parts.hostname in ("127.0.0.1", "localhost"):  # fetch only local URLs: never the network
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(file_url) as response:
                if response.status != 200:
                    return self._upload_error(500, f"Could not download fileUrl: HTTP {response.status}")
                data = await response.read()
                mime = response.content_type if response.content_type != "application/octet-stream" else None
        else:
            data = make_png(file_url)  # a stand-in: the content of a remote URL is unknown here
        name = body.get("fileName") or urllib.parse.unquote(parts.path.rpartition("/")[2]) or None
        return self._store(body["uploadPath"], name, data, mime)

    async def _uploaded_file(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self.uploads:
            return web.Response(status=404, text="<html><body>Not Found</body></html>",
                                content_type="text/html")
        return web.Response(body=self.uploads[key], content_type=self.upload_types[key])
