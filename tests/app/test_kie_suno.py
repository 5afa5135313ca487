"""One task status for every API family: the market and Suno mappings, and KieClient.start/status
for both APIs against the fake Kie.ai."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.kie import constants
from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET, API_SUNO
from bot.kie.errors import KieNotFound, KieUnavailable, KieValidationError
from bot.kie.ratelimit import Priority, RateLimiter
from bot.kie.schemas import ResultFile, TaskRecord, TaskStatus
from bot.kie.suno import SunoRecord, generate_body
from testkit.bot import KIE_KEY, WINDOW
from testkit.fakes.kie import FakeKie, TaskPlan

MARKET_MODEL = "google/imagen4"
MARKET_INPUT = {"prompt": "A cat astronaut", "aspect_ratio": "1:1"}
SUNO_MODEL = "V4_5"
SUNO_SIMPLE = {"customMode": False, "instrumental": False, "prompt": "A calm piano song about rain"}
SUNO_CUSTOM = {"customMode": True, "instrumental": False, "title": "Rain on Glass",
               "style": "lo-fi, piano", "prompt": "[Verse]\nDrops on the window"}
GENERATE = "/api/v1/generate"
SUNO_RECORD = "/api/v1/generate/record-info"
SUNO_FAILURES = ["CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED", "CALLBACK_EXCEPTION", "SENSITIVE_WORD_ERROR"]


# -- the market mapping ------------------------------------------------------------------------

def market(state: str, *, urls: list[Any] | None = None, fail_msg: str = "",
           fail_code: str = "") -> TaskStatus:
    data = {"taskId": "task_1", "state": state, "param": "",
            "resultJson": json.dumps({"resultUrls": urls}) if urls is not None else "",
            "failCode": fail_code, "failMsg": fail_msg}
    return TaskRecord.model_validate(data).to_status()


@pytest.mark.parametrize("state", ["waiting", "queuing", "generating"])
def test_market_running_states(state: str) -> None:
    assert market(state) == TaskStatus("running", state)


def test_market_success_with_urls() -> None:
    status = market("success", urls=["https://k/0.png", "https://k/1.png"])
    assert status.phase == "success" and status.state == "success" and status.message is None
    assert status.files == [ResultFile("https://k/0.png"), ResultFile("https://k/1.png")]
    assert status.urls == ["https://k/0.png", "https://k/1.png"]


@pytest.mark.parametrize("urls", [None, [], [""]], ids=["no-resultJson", "empty-list", "empty-url"])
def test_market_success_without_urls_is_a_failure(urls: list[str] | None) -> None:
    assert market("success", urls=urls) == TaskStatus("fail", "success", message="no result")


def test_market_fail_carries_fail_msg_and_code() -> None:
    status = market("fail", fail_msg="content policy violation", fail_code="400")
    assert status == TaskStatus("fail", "fail", message="content policy violation", code="400")
    assert market("fail") == TaskStatus("fail", "fail")  # empty strings are no message


@pytest.mark.parametrize("junk", [None, 7, "", "  ", {"url": "https://k/1.png"}, ["https://k/1.png"]],
                         ids=["null", "number", "empty", "blank", "object", "list"])
def test_market_success_keeps_the_good_urls_among_junk(junk: Any) -> None:
    status = market("success", urls=["https://k/0.png", junk, "https://k/2.png"])
    assert status.phase == "success" and status.urls == ["https://k/0.png", "https://k/2.png"]


def test_market_success_with_junk_urls_only_is_a_failure() -> None:
    assert market("success", urls=[None, 7, ""]) == TaskStatus("fail", "success", message="no result")
    data = {"taskId": "task_1", "state": "success", "resultJson": json.dumps({"resultUrls": None})}
    assert TaskRecord.model_validate(data).to_status() == TaskStatus("fail", "success",
                                                                     message="no result")


def test_market_unknown_state_keeps_running() -> None:
    status = market("mystery", urls=["https://k/0.png"])
    assert status == TaskStatus("running", "mystery") and not status.known_state
    assert market("generating").known_state


# -- the Suno mapping --------------------------------------------------------------------------

TRACKS = [
    {"id": "a", "audioUrl": "https://k/a.mp3", "streamAudioUrl": "https://k/a-stream", "imageUrl": "https://k/a.jpg",
     "title": "Rain on Glass", "tags": "lo-fi, piano", "duration": 198.44, "modelName": "chirp-v4-5"},
    {"id": "b", "audioUrl": "https://k/b.mp3", "imageUrl": "https://k/b.jpg",
     "title": "Rain on Glass (2)", "tags": "lo-fi", "duration": 201},
]


def suno(status: str, tracks: list[dict[str, Any]] | None = None, *,
         error: str | None = None, error_code: Any = None) -> TaskStatus:
    data = {"taskId": "suno_1", "status": status, "errorMessage": error, "errorCode": error_code,
            "response": None if tracks is None else {"taskId": "suno_1", "sunoData": tracks}}
    return SunoRecord.model_validate(data).to_status()


@pytest.mark.parametrize(("status", "tracks"), [
    ("PENDING", None),
    ("TEXT_SUCCESS", [{**t, "audioUrl": ""} for t in TRACKS]),
    ("FIRST_SUCCESS", [TRACKS[0], {**TRACKS[1], "audioUrl": ""}]),  # one track ready: not done
    ("FIRST_SUCCESS", TRACKS),  # even with both URLs present, only SUCCESS is done
])
def test_suno_running_states(status: str, tracks: list[dict[str, Any]] | None) -> None:
    assert suno(status, tracks) == TaskStatus("running", status)


def test_suno_success_gives_every_track_with_its_details() -> None:
    status = suno("SUCCESS", TRACKS)
    assert status.phase == "success" and status.state == "SUCCESS"
    assert status.files == [
        ResultFile("https://k/a.mp3", title="Rain on Glass", tags="lo-fi, piano", duration=198.44,
                   image_url="https://k/a.jpg", audio_id="a"),
        ResultFile("https://k/b.mp3", title="Rain on Glass (2)", tags="lo-fi", duration=201,
                   image_url="https://k/b.jpg", audio_id="b"),
    ]


def test_suno_success_skips_tracks_without_audio() -> None:
    assert suno("SUCCESS", [TRACKS[0], {**TRACKS[1], "audioUrl": None}]).urls == ["https://k/a.mp3"]


@pytest.mark.parametrize("tracks", [None, [], [{**TRACKS[0], "audioUrl": ""}]],
                         ids=["no-response", "no-tracks", "no-audio"])
def test_suno_success_without_audio_is_a_failure(tracks: list[dict[str, Any]] | None) -> None:
    assert suno("SUCCESS", tracks) == TaskStatus("fail", "SUCCESS", message="no result")


def test_suno_null_suno_data_is_no_tracks() -> None:
    data = {"taskId": "s", "status": "PENDING", "response": {"sunoData": None}}
    assert SunoRecord.model_validate(data).tracks == []


@pytest.mark.parametrize("status", SUNO_FAILURES)
def test_suno_failures_carry_error_message_and_status(status: str) -> None:
    result = suno(status, error=f"why {status}", error_code=400)
    assert result == TaskStatus("fail", status, message=f"why {status}", code="400")


def test_suno_success_keeps_the_tracks_among_junk() -> None:
    junk = {**TRACKS[1], "audioUrl": 42, "title": 5, "tags": ["x"], "imageUrl": {}}
    status = suno("SUCCESS", [None, TRACKS[0], 7, junk, {**TRACKS[1], "title": 5, "tags": None}])
    assert status.urls == ["https://k/a.mp3", "https://k/b.mp3"]
    assert (status.files[1].title, status.files[1].tags) == (None, None)


@pytest.mark.parametrize("duration", ["NaN", "nan", float("nan"), "inf", float("-inf"), -1, "-0.5",
                                      1e12, "long", True, [], {}, None,
                                      pytest.param(10**400, id="too-large-for-a-float")])
def test_suno_duration_that_is_no_length_is_none(duration: Any) -> None:
    [track] = suno("SUCCESS", [{**TRACKS[0], "duration": duration}]).files
    assert track.url == "https://k/a.mp3" and track.duration is None


@pytest.mark.parametrize(("duration", "seconds"), [("198.5", 198.5), (0, 0.0), (3600, 3600.0)])
def test_suno_duration_as_a_number_or_numeric_text_is_kept(duration: Any, seconds: float) -> None:
    [track] = suno("SUCCESS", [{**TRACKS[0], "duration": duration}]).files
    assert track.duration == seconds


def test_suno_unknown_status_keeps_running() -> None:
    status = suno("COMPOSING", TRACKS)
    assert status == TaskStatus("running", "COMPOSING") and not status.known_state
    assert suno("FIRST_SUCCESS").known_state


# -- Suno's request body -----------------------------------------------------------------------

def test_generate_body_is_the_input_plus_model_and_callback() -> None:
    assert generate_body("V5", SUNO_SIMPLE, None) == {**SUNO_SIMPLE, "model": "V5"}
    assert generate_body("V5", SUNO_SIMPLE, "https://b/cb") == {
        **SUNO_SIMPLE, "model": "V5", "callBackUrl": "https://b/cb"}
    assert "model" not in SUNO_SIMPLE  # the caller's dict is not changed


def test_generate_body_fallback_callback_is_one_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "SUNO_CALLBACK_FALLBACK", "https://b/none")
    assert generate_body("V5", SUNO_SIMPLE, None)["callBackUrl"] == "https://b/none"
    assert generate_body("V5", SUNO_SIMPLE, "https://b/cb")["callBackUrl"] == "https://b/cb"


@pytest.mark.parametrize("key", ["model", "callBackUrl"])
def test_generate_body_refuses_client_keys_in_input(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        generate_body("V5", {**SUNO_SIMPLE, key: "x"}, None)


# -- start/status against the fake ------------------------------------------------------------

@pytest.fixture
async def client(kie: FakeKie) -> AsyncIterator[KieClient]:
    client = KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                       limiter=RateLimiter(20, WINDOW), timeout=5.0, backoff=0.01)
    yield client
    await client.aclose()


async def test_market_start_sends_the_create_body(kie: FakeKie, client: KieClient) -> None:
    task_id = await client.start(API_MARKET, MARKET_MODEL, MARKET_INPUT)
    url = "http://127.0.0.1:9/kie/callback/s/1"
    second = await client.start(API_MARKET, MARKET_MODEL, MARKET_INPUT, callback_url=url)
    assert [r.path for r in kie.requests] == ["/api/v1/jobs/createTask"] * 2
    assert kie.tasks[task_id].body == {"model": MARKET_MODEL, "input": MARKET_INPUT}
    assert kie.tasks[second].body == {"model": MARKET_MODEL, "input": MARKET_INPUT, "callBackUrl": url}


async def test_market_status_walks_to_success(kie: FakeKie, client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=3, urls=2)
    task_id = await client.start(API_MARKET, MARKET_MODEL, MARKET_INPUT)
    statuses = [await client.status(API_MARKET, task_id) for _ in range(4)]
    assert [(s.phase, s.state) for s in statuses] == [
        ("running", "waiting"), ("running", "queuing"), ("running", "generating"), ("success", "success")]
    assert statuses[-1].urls == kie.tasks[task_id].result_urls and len(statuses[-1].files) == 2
    last = kie.requests[-1]
    assert last.path == "/api/v1/jobs/recordInfo" and last.query == {"taskId": task_id}


async def test_market_status_fail(kie: FakeKie, client: KieClient) -> None:
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=0, fail_code="400", fail_msg="NSFW")
    task_id = await client.start(API_MARKET, MARKET_MODEL, MARKET_INPUT)
    assert await client.status(API_MARKET, task_id) == TaskStatus("fail", "fail", message="NSFW", code="400")


@pytest.mark.parametrize("input", [SUNO_SIMPLE, SUNO_CUSTOM], ids=["simple", "custom"])
async def test_suno_start_sends_input_as_body_with_model(kie: FakeKie, client: KieClient,
                                                         input: dict[str, Any]) -> None:
    task_id = await client.start(API_SUNO, SUNO_MODEL, input, owner=5)
    request = kie.requests[-1]
    assert (request.method, request.path) == ("POST", GENERATE)
    assert request.body == {**input, "model": SUNO_MODEL}  # no callBackUrl key when none is given
    assert task_id in kie.tasks and kie.tasks[task_id].input == input


async def test_suno_start_sends_callback(kie: FakeKie, client: KieClient) -> None:
    url = "http://127.0.0.1:9/kie/callback/s/2"
    task_id = await client.start(API_SUNO, "V5", SUNO_CUSTOM, callback_url=url)
    assert kie.tasks[task_id].body == {**SUNO_CUSTOM, "model": "V5", "callBackUrl": url}
    assert kie.tasks[task_id].callback_url == url


async def test_suno_status_first_success_stays_running_then_two_tracks(kie: FakeKie,
                                                                        client: KieClient) -> None:
    task_id = await client.start(API_SUNO, SUNO_MODEL, SUNO_CUSTOM)
    statuses = [await client.status(API_SUNO, task_id) for _ in range(4)]
    assert [(s.phase, s.state) for s in statuses] == [
        ("running", "PENDING"), ("running", "TEXT_SUCCESS"), ("running", "FIRST_SUCCESS"),
        ("success", "SUCCESS")]
    assert all(s.files == [] for s in statuses[:3])
    assert kie.requests[-1].path == SUNO_RECORD and kie.requests[-1].query == {"taskId": task_id}
    files = statuses[-1].files
    assert [f.url for f in files] == kie.tasks[task_id].result_urls and len(files) == 2
    assert all(f.title == "Rain on Glass" and f.tags == "lo-fi, piano" for f in files)
    assert all(f.duration and f.duration > 0 and f.image_url for f in files)
    async with httpx.AsyncClient() as http:  # the tracks really are MP3 files
        answer = await http.get(files[1].url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/mpeg"


async def test_suno_status_with_a_nan_length_gives_the_tracks_without_it(kie: FakeKie,
                                                                         client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, track_duration="NaN")
    task_id = await client.start(API_SUNO, SUNO_MODEL, SUNO_SIMPLE)
    status = await client.status(API_SUNO, task_id)
    assert status.urls == kie.tasks[task_id].result_urls
    assert [f.duration for f in status.files] == [None, None]


async def test_suno_sensitive_words_fail(kie: FakeKie, client: KieClient) -> None:
    kie.plan_by_prompt["forbidden"] = TaskPlan(outcome="fail", reads_before_done=1,
                                               fail_state="SENSITIVE_WORD_ERROR", fail_code="400",
                                               fail_msg="The lyrics contain sensitive words")
    task_id = await client.start(API_SUNO, SUNO_MODEL, {**SUNO_SIMPLE, "prompt": "a forbidden song"})
    assert (await client.status(API_SUNO, task_id)).phase == "running"
    status = await client.status(API_SUNO, task_id)
    assert status == TaskStatus("fail", "SENSITIVE_WORD_ERROR", code="400",
                                message="The lyrics contain sensitive words")


async def test_suno_rejected_input_is_a_validation_error(kie: FakeKie, client: KieClient) -> None:
    with pytest.raises(KieValidationError) as info:
        await client.start(API_SUNO, "V3_5", SUNO_SIMPLE)
    assert "model" in info.value.message and kie.tasks == {}


async def test_suno_create_not_retried_after_500(kie: FakeKie, client: KieClient) -> None:
    """Same rule as the market: a create that may have reached Kie is never sent twice."""
    kie.fail_create_next(500, times=3)
    with pytest.raises(KieUnavailable):
        await client.start(API_SUNO, SUNO_MODEL, SUNO_SIMPLE)
    assert kie.count(GENERATE) == 1


async def test_suno_create_429_retried(kie: FakeKie, client: KieClient) -> None:
    kie.fail_create_next(429, times=2)
    task_id = await client.start(API_SUNO, SUNO_MODEL, SUNO_SIMPLE)
    assert kie.count(GENERATE) == 3 and list(kie.tasks) == [task_id]


async def test_suno_status_read_retried(kie: FakeKie, client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0)
    task_id = await client.start(API_SUNO, SUNO_MODEL, SUNO_SIMPLE)
    kie.fail_reads_next(500)
    kie.fail_reads_next(455)
    assert (await client.status(API_SUNO, task_id)).phase == "success"
    assert kie.count(SUNO_RECORD) == 3


async def test_each_api_reads_only_its_own_tasks(kie: FakeKie, client: KieClient) -> None:
    suno_task = await client.start(API_SUNO, SUNO_MODEL, SUNO_SIMPLE)
    with pytest.raises(KieNotFound):
        await client.status(API_MARKET, suno_task)
    with pytest.raises(KieNotFound):
        await client.status(API_SUNO, "task_does_not_exist")


async def test_unknown_api_sends_nothing(kie: FakeKie, client: KieClient) -> None:
    with pytest.raises(ValueError, match="midjourney"):
        await client.start("midjourney", "mj_txt2img", {"prompt": "x"})
    with pytest.raises(ValueError, match="midjourney"):
        await client.status("midjourney", "task_1")
    assert kie.requests == []


@pytest.mark.parametrize(("api", "model", "input"), [
    (API_MARKET, MARKET_MODEL, MARKET_INPUT), (API_SUNO, SUNO_MODEL, SUNO_SIMPLE)], ids=["market", "suno"])
async def test_start_and_status_pass_owner_and_priority(kie: FakeKie, api: str, model: str,
                                                        input: dict[str, Any]) -> None:
    """start and status pass their owner and priority to the limiter; other calls go as the
    bot's (owner None)."""
    seen: list[tuple[Priority, object]] = []

    class Recording(RateLimiter):
        def slot(self, priority: Priority = Priority.READ, *, owner: object = None) -> Any:
            seen.append((priority, owner))
            return super().slot(priority, owner=owner)

    client = KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                       limiter=Recording(20, WINDOW), timeout=5.0)
    try:
        task_id = await client.start(api, model, input, owner=7)
        await client.status(api, task_id, owner=7)
        await client.status(api, task_id, owner=8, priority=Priority.READ)
        await client.get_credits()
    finally:
        await client.aclose()
    assert seen == [(Priority.CREATE, 7), (Priority.POLL, 7), (Priority.READ, 8), (Priority.READ, None)]
