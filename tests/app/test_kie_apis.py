"""Kie.ai's dedicated APIs behind the one seam (kie-api-more.md §1-4, §8, §9): Veo 3.1 (and its
1080p), Runway, Flux Kontext and 4o Image — each one's state spelling mapped to the one
TaskStatus, then KieClient.start/status against the fake Kie.ai (their create bodies, walks to
success, every failure spelling, a refused field, their callbacks) — and Kie's other refusals:
433, 408, 550."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.kie import client as client_module
from bot.kie import constants
from bot.kie.callbacks import interim, task_id_of
from bot.kie.client import KieClient
from bot.kie.constants import API_FLUX, API_GPT4O, API_RUNWAY, API_VEO, API_VEO_1080P
from bot.kie.errors import (
    KieAuthError,
    KieInsufficientCredits,
    KieKeyCapped,
    KieNoResult,
    KieNotFound,
    KieQueueFull,
    KieUnavailable,
    KieValidationError,
)
from bot.kie.flux import FluxRecord
from bot.kie.gpt4o import Gpt4oRecord
from bot.kie.ratelimit import RateLimiter
from bot.kie.runway import RunwayRecord
from bot.kie.runway import generate_body as runway_body
from bot.kie.schemas import ResultFile, TaskStatus, flat_body
from bot.kie.veo import VeoRecord
from testkit.bot import KIE_KEY, WINDOW
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.server import AppServer

CALLBACK = "http://127.0.0.1:9/kie/callback/s/1"


@dataclass(frozen=True)
class Api:
    """One dedicated API as the catalog would name it, and where the fake expects it."""

    api: str
    model: str
    input: dict[str, Any]
    create: str
    read: str
    sends_model: bool  # whether the API has a model field


VEO = Api(API_VEO, "veo3_fast", {"prompt": "A fox runs through snow", "aspect_ratio": "9:16"},
          "/api/v1/veo/generate", "/api/v1/veo/record-info", sends_model=True)
RUNWAY = Api(API_RUNWAY, "runway", {"prompt": "Waves at night", "duration": 5, "quality": "720p",
                                    "aspectRatio": "16:9"},
             "/api/v1/runway/generate", "/api/v1/runway/record-detail", sends_model=False)
FLUX = Api(API_FLUX, "flux-kontext-max", {"prompt": "A lighthouse at dusk", "aspectRatio": "21:9"},
           "/api/v1/flux/kontext/generate", "/api/v1/flux/kontext/record-info", sends_model=True)
GPT4O = Api(API_GPT4O, "gpt-4o-image", {"prompt": "A watercolor heron", "size": "3:2"},
            "/api/v1/gpt4o-image/generate", "/api/v1/gpt4o-image/record-info", sends_model=False)
APIS = [VEO, RUNWAY, FLUX, GPT4O]
NAMES = [api.api for api in APIS]
# The running states each shows, read by read, with reads_before_done=3.
RUNNING = {API_VEO: ["GENERATING"] * 3, API_FLUX: ["GENERATING"] * 3,
           API_GPT4O: ["GENERATING"] * 3, API_RUNWAY: ["wait", "queueing", "generating"]}
SUCCESS = {API_VEO: "SUCCESS", API_FLUX: "SUCCESS", API_GPT4O: "SUCCESS", API_RUNWAY: "success"}
# Every failure spelling of each API (kie-api-more.md §9).
FAILURES = [(VEO, "CREATE_TASK_FAILED"), (VEO, "GENERATE_FAILED"), (FLUX, "CREATE_TASK_FAILED"),
            (FLUX, "GENERATE_FAILED"), (GPT4O, "CREATE_TASK_FAILED"), (GPT4O, "GENERATE_FAILED"),
            (RUNWAY, "fail")]
VEO_1080P_PATH = "/api/v1/veo/get-1080p-video"


@pytest.fixture(autouse=True)
def short_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "RATE_LIMIT_PAUSE", 0.05)


@pytest.fixture
async def client(kie: FakeKie) -> AsyncIterator[KieClient]:
    client = KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                       limiter=RateLimiter(20, WINDOW), timeout=5.0, backoff=0.01)
    yield client
    await client.aclose()


# -- each API's words, mapped ------------------------------------------------------------------

def veo(flag: Any, urls: Any = None, **more: Any) -> TaskStatus:
    response = None if urls is None else {"taskId": "v", "resultUrls": urls, "resolution": "720p"}
    data = {"taskId": "v", "successFlag": flag, "response": response, "errorCode": None,
            "errorMessage": "", "fallbackFlag": False, **more}
    return VeoRecord.model_validate(data).to_status()


@pytest.mark.parametrize("urls", [["https://k/v.mp4"], '["https://k/v.mp4"]', "https://k/v.mp4"],
                         ids=["list", "json-string", "bare-url"])
def test_veo_success_takes_its_urls_in_any_form(urls: Any) -> None:
    assert veo(1, urls) == TaskStatus("success", "SUCCESS", [ResultFile("https://k/v.mp4")])


@pytest.mark.parametrize("urls", [None, [], [""], "[]"], ids=["no-response", "empty", "blank", "empty-json"])
def test_veo_success_without_a_url_is_still_running(urls: Any) -> None:
    """Kie reports the base render done before the final URL is in [C]."""
    assert veo(1, urls) == TaskStatus("running", "SUCCESS")


@pytest.mark.parametrize(("flag", "state"), [(2, "CREATE_TASK_FAILED"), (3, "GENERATE_FAILED")])
def test_veo_failure_flags_carry_the_error(flag: int, state: str) -> None:
    status = veo(flag, errorCode=400, errorMessage="Your prompt was flagged")
    assert status == TaskStatus("fail", state, message="Your prompt was flagged", code="400")


def test_flags_running_and_unknown() -> None:
    assert veo(0) == TaskStatus("running", "GENERATING") and veo(0).known_state
    unknown = veo(7, ["https://k/v.mp4"])
    assert unknown == TaskStatus("running", "successFlag 7") and not unknown.known_state
    assert veo(None).phase == "running" and not veo(None).known_state


def runway(state: str, **more: Any) -> TaskStatus:
    data = {"taskId": "r", "state": state, "failCode": None, "failMsg": "", "expireFlag": 0,
            "videoInfo": {"videoId": "x", "videoUrl": "https://k/r.mp4", "imageUrl": "https://k/r.png"},
            **more}
    return RunwayRecord.model_validate(data).to_status()


@pytest.mark.parametrize("state", ["wait", "queueing", "generating"])
def test_runway_running_states_are_its_own_spelling(state: str) -> None:
    status = runway(state)
    assert status == TaskStatus("running", state) and status.known_state


def test_runway_success_fail_and_expired() -> None:
    assert runway("success") == TaskStatus("success", "success", [ResultFile("https://k/r.mp4")])
    assert runway("fail", failCode=400, failMsg="Inappropriate content detected") == TaskStatus(
        "fail", "fail", message="Inappropriate content detected", code="400")
    assert runway("success", expireFlag=1) == TaskStatus("fail", "success", message="no result")
    assert runway("success", videoInfo=None) == TaskStatus("fail", "success", message="no result")
    assert not runway("rendering").known_state


def test_flux_gives_its_one_picture() -> None:
    def flux(flag: int, url: Any) -> TaskStatus:
        data = {"taskId": "f", "successFlag": flag, "errorCode": None, "errorMessage": "",
                "response": {"originImageUrl": "https://bfl/o.jpg", "resultImageUrl": url}}
        return FluxRecord.model_validate(data).to_status()
    assert flux(1, "https://k/f.jpg") == TaskStatus("success", "SUCCESS", [ResultFile("https://k/f.jpg")])
    assert flux(1, "") == TaskStatus("fail", "SUCCESS", message="no result")  # never BFL's own URL
    assert flux(0, None) == TaskStatus("running", "GENERATING")


@pytest.mark.parametrize("key", ["resultUrls", "result_urls"])
def test_gpt4o_reads_either_spelling_of_its_urls(key: str) -> None:
    data = {"taskId": "g", "successFlag": 1, "status": "SUCCESS", "progress": "1.00",
            "response": {key: ["https://k/a.png", "https://k/b.png"]}}
    assert Gpt4oRecord.model_validate(data).to_status().urls == ["https://k/a.png", "https://k/b.png"]


@pytest.mark.parametrize("status", ["CREATE_TASK_FAILED", "GENERATE_FAILED"])
def test_gpt4o_status_names_its_one_failure_flag(status: str) -> None:
    data = {"taskId": "g", "successFlag": 2, "status": status, "errorCode": 400,
            "errorMessage": "Your content was flagged by OpenAI"}
    assert Gpt4oRecord.model_validate(data).to_status() == TaskStatus(
        "fail", status, message="Your content was flagged by OpenAI", code="400")
    # Without a status word, the flag alone decides.
    assert Gpt4oRecord.model_validate({**data, "status": None}).to_status().phase == "fail"


def test_runway_callback_fallback_is_one_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runway's docs call callBackUrl required, its schema does not [?]: without a callback the
    body carries RUNWAY_CALLBACK_FALLBACK, when set; and never a model."""
    assert runway_body("runway", RUNWAY.input, None) == RUNWAY.input
    monkeypatch.setattr(constants, "RUNWAY_CALLBACK_FALLBACK", "https://b/none")
    assert runway_body("runway", RUNWAY.input, None) == {**RUNWAY.input, "callBackUrl": "https://b/none"}
    assert runway_body("runway", RUNWAY.input, CALLBACK)["callBackUrl"] == CALLBACK


@pytest.mark.parametrize("key", ["model", "callBackUrl"])
def test_a_flat_body_refuses_the_clients_keys_in_input(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        flat_body({"prompt": "x", key: "y"}, model="m", callback_url=None)


# -- start and status against the fake ---------------------------------------------------------

@pytest.mark.parametrize("api", APIS, ids=NAMES)
async def test_start_sends_a_flat_body_to_the_apis_own_path(kie: FakeKie, client: KieClient,
                                                            api: Api) -> None:
    task_id = await client.start(api.api, api.model, api.input, callback_url=CALLBACK)
    request = kie.requests[-1]
    assert (request.method, request.path) == ("POST", api.create)
    model = {"model": api.model} if api.sends_model else {}
    assert request.body == {**api.input, **model, "callBackUrl": CALLBACK}
    assert kie.tasks[task_id].input == api.input
    await client.start(api.api, api.model, api.input)
    assert "callBackUrl" not in kie.requests[-1].body


@pytest.mark.parametrize("api", APIS, ids=NAMES)
async def test_status_walks_from_running_to_success_with_the_result(kie: FakeKie, client: KieClient,
                                                                    api: Api) -> None:
    kie.default_plan = TaskPlan(reads_before_done=3)
    task_id = await client.start(api.api, api.model, api.input)
    statuses = [await client.status(api.api, task_id) for _ in range(4)]
    assert [(s.phase, s.state) for s in statuses] == [
        *(("running", state) for state in RUNNING[api.api]), ("success", SUCCESS[api.api])]
    assert statuses[-1].urls == kie.tasks[task_id].result_urls and len(statuses[-1].urls) == 1
    assert all(s.known_state for s in statuses)
    last = kie.requests[-1]
    assert (last.method, last.path, last.query) == ("GET", api.read, {"taskId": task_id})


@pytest.mark.parametrize(("api", "fail_state"), FAILURES,
                         ids=[f"{a.api}-{s}" for a, s in FAILURES])
async def test_each_failure_spelling_is_a_failure_with_kies_message(
        kie: FakeKie, client: KieClient, api: Api, fail_state: str) -> None:
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1, fail_state=fail_state,
                                fail_code="400", fail_msg="Your prompt was flagged")
    task_id = await client.start(api.api, api.model, api.input)
    assert (await client.status(api.api, task_id)).phase == "running"
    assert await client.status(api.api, task_id) == TaskStatus(
        "fail", fail_state, message="Your prompt was flagged", code="400")


async def test_gpt4o_several_pictures_in_either_spelling(kie: FakeKie, client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0)
    kie.gpt4o_result_key = "result_urls"
    task_id = await client.start(API_GPT4O, GPT4O.model, {**GPT4O.input, "nVariants": 2})
    status = await client.status(API_GPT4O, task_id)
    assert status.phase == "success" and status.urls == kie.tasks[task_id].result_urls
    assert len(status.urls) == 2


async def test_each_api_reads_only_its_own_tasks(kie: FakeKie, client: KieClient) -> None:
    task_id = await client.start(API_VEO, VEO.model, VEO.input)
    for api in (API_RUNWAY, API_FLUX, API_GPT4O):
        with pytest.raises(KieNotFound):
            await client.status(api, task_id)


# -- a field Kie refuses -----------------------------------------------------------------------

@pytest.mark.parametrize(("api", "input", "refusal"), [
    (VEO, {"prompt": "x", "aspectRatio": "16:9"}, "aspectRatio is not a valid parameter"),
    (VEO, {"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio must be one of"),
    (VEO, {"aspect_ratio": "16:9"}, "prompt is required"),
    (VEO, {"prompt": "x", "enableFallback": True}, "enableFallback is not a valid parameter"),
    (RUNWAY, {**RUNWAY.input, "duration": 10, "quality": "1080p"}, "1080p is not available"),
    (RUNWAY, {"prompt": "x", "duration": 5, "quality": "720p"}, "aspectRatio is required"),
    (RUNWAY, {**RUNWAY.input, "aspect_ratio": "16:9"}, "aspect_ratio is not a valid parameter"),
    (RUNWAY, {**RUNWAY.input, "duration": 8}, "duration must be 5 or 10"),
    (FLUX, {"prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio is not a valid parameter"),
    (FLUX, {"prompt": "x", "inputImage": "not a url"}, "inputImage must be an http"),
    (GPT4O, {"prompt": "x"}, "size is required"),
    (GPT4O, {"prompt": "x", "size": "16:9"}, "size must be one of"),
    (GPT4O, {"size": "1:1", "filesUrl": [f"https://k/{n}.png" for n in range(6)]}, "filesUrl must be"),
    (GPT4O, {"size": "1:1"}, "prompt or filesUrl is required"),
], ids=lambda v: v.api if isinstance(v, Api) else "")
async def test_a_field_kie_refuses_is_a_validation_error(kie: FakeKie, client: KieClient, api: Api,
                                                         input: dict[str, Any], refusal: str) -> None:
    with pytest.raises(KieValidationError, match=refusal):
        await client.start(api.api, api.model, input)
    assert kie.tasks == {} and kie.count(api.create) == 1  # a create is never sent twice


@pytest.mark.parametrize("model", ["veo3", "veo3_fast"])
async def test_veo_reference_frames_are_refused_with_quality(kie: FakeKie, client: KieClient,
                                                             model: str) -> None:
    input = {"prompt": "x", "imageUrls": ["https://k/a.png"], "generationType": "REFERENCE_2_VIDEO"}
    if model == "veo3":
        with pytest.raises(KieValidationError, match="not available with veo3"):
            await client.start(API_VEO, model, input)
    else:
        assert await client.start(API_VEO, model, input) in kie.tasks


async def test_flux_edit_safety_tolerance_out_of_range_is_kies_500(kie: FakeKie, client: KieClient) -> None:
    edit = {"prompt": "make it night", "inputImage": "https://k/in.png", "safetyTolerance": 4}
    with pytest.raises(KieUnavailable, match="tolerance"):
        await client.start(API_FLUX, FLUX.model, edit)
    assert await client.start(API_FLUX, FLUX.model, {**edit, "safetyTolerance": 2}) in kie.tasks


# -- Veo's 1080p -------------------------------------------------------------------------------

async def test_veo_1080p_waits_while_processing_then_gives_the_1080p_file(kie: FakeKie,
                                                                          client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=1, hd_pending_reads=2)
    task_id = await client.start(API_VEO_1080P, "veo3", VEO.input)
    task = kie.tasks[task_id]
    statuses = [await client.status(API_VEO_1080P, task_id) for _ in range(4)]
    assert [(s.phase, s.state) for s in statuses] == [
        ("running", "GENERATING"), ("running", constants.VEO_1080P_PENDING_STATE),
        ("running", constants.VEO_1080P_PENDING_STATE), ("success", "SUCCESS")]
    assert statuses[0].known_state and statuses[1].known_state
    assert statuses[-1].urls == task.hd_urls and task.hd_urls != task.result_urls
    assert [r.query for r in kie.requests if r.path == VEO_1080P_PATH] == [
        {"taskId": task_id, "index": "0"}] * 3
    # The same task read as plain Veo: the video as made, and no 1080p asked.
    assert (await client.status(API_VEO, task_id)).urls == task.result_urls
    assert kie.count(VEO_1080P_PATH) == 3


@pytest.mark.parametrize("case", ["fallback", "already-1080p", "refused"])
async def test_veo_1080p_not_offered_delivers_the_video_as_made(kie: FakeKie, client: KieClient,
                                                                case: str) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, fallback=case == "fallback")
    input = {**VEO.input, "resolution": "1080p"} if case == "already-1080p" else VEO.input
    task_id = await client.start(API_VEO_1080P, "veo3", input)
    if case == "refused":
        kie.fail_1080p_next(422, msg="1080P is not available for this video")
    status = await client.status(API_VEO_1080P, task_id)
    assert status == TaskStatus("success", "SUCCESS", [ResultFile(kie.tasks[task_id].result_urls[0])])
    assert kie.count(VEO_1080P_PATH) == (1 if case == "refused" else 0)


async def test_veo_1080p_retries_kie_being_busy_and_raises_a_refused_key(kie: FakeKie,
                                                                         client: KieClient) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, hd_pending_reads=0)
    task_id = await client.start(API_VEO_1080P, "veo3", VEO.input)
    kie.fail_1080p_next(500)
    kie.fail_1080p_next(429)
    assert (await client.status(API_VEO_1080P, task_id)).urls == kie.tasks[task_id].hd_urls
    assert kie.count(VEO_1080P_PATH) == 3
    kie.fail_1080p_next(401)
    with pytest.raises(KieAuthError):
        await client.status(API_VEO_1080P, task_id)


# -- callbacks ---------------------------------------------------------------------------------

@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[Any]]]:
    """A callback receiver: (its URL, the bodies it got)."""
    bodies: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_post("/cb", receive)
    async with AppServer(app) as server:
        yield f"{server.url}/cb", bodies


@pytest.mark.parametrize("outcome", ["success", "fail"])
@pytest.mark.parametrize("api", APIS, ids=NAMES)
async def test_each_callback_shape_names_its_task_and_is_final(
        kie: FakeKie, client: KieClient, received: tuple[str, list[Any]], api: Api,
        outcome: str) -> None:
    url, bodies = received
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(outcome=outcome, reads_before_done=0, fail_code="400",
                                fail_msg="flagged")
    task_id = await client.start(api.api, api.model, api.input, callback_url=url)
    await client.status(api.api, task_id)
    await kie.wait_callbacks(1)
    [body] = bodies
    assert task_id_of(body) == task_id and not interim(body)
    assert body["code"] == (200 if outcome == "success" else 400)
    if api is RUNWAY:
        assert "task_id" in body["data"] and "taskId" not in body["data"]  # Runway's spelling
    await kie.send_callback(task_id, shape="flat")
    assert task_id_of(bodies[-1]) == task_id and not interim(bodies[-1])


def test_callback_shapes_from_the_docs() -> None:
    """kie-api-more.md's own examples, task id found in each."""
    veo = {"code": 200, "msg": "Veo3.1 video generated successfully.",
           "data": {"taskId": "veo_task_abcdef123456", "info": {"resultUrls": "[\"http://x/v.mp4\"]"},
                    "promptJson": json.dumps({"aspectRatio": "16:9"}), "fallbackFlag": False}}
    runway = {"code": 200, "msg": "All generated successfully.",
              "data": {"task_id": "ee603959-debb-48d1-98c4-a6d1c717eba6", "video_url": "https://x.mp4"}}
    flux = {"code": 200, "msg": "BFL image generated successfully.",
            "data": {"taskId": "task12345", "info": {"resultImageUrl": "https://x.jpg"}}}
    gpt4o_failed = {"code": 400, "msg": "Your content was flagged by OpenAI",
                    "data": {"taskId": "task4o", "info": None}}
    aleph = {"code": 200, "msg": "success", "data": {"result_video_url": "https://x.mp4"},
             "taskId": "aleph1"}
    assert [task_id_of(p) for p in (veo, runway, flux, gpt4o_failed, aleph)] == [
        "veo_task_abcdef123456", "ee603959-debb-48d1-98c4-a6d1c717eba6", "task12345", "task4o", "aleph1"]
    assert not any(interim(p) for p in (veo, runway, flux, gpt4o_failed, aleph))


# -- Kie's other refusals (kie-api-more.md §8) -------------------------------------------------

async def test_433_a_sub_key_cap_is_answered_like_402(kie: FakeKie, client: KieClient) -> None:
    kie.fail_create_next(433)
    with pytest.raises(KieKeyCapped) as info:
        await client.start(API_GPT4O, GPT4O.model, GPT4O.input)
    assert isinstance(info.value, KieInsufficientCredits) and info.value.code == 433
    assert info.value.reason is None  # the caller's "unavailable", as for 402
    kie.refused_keys[KIE_KEY] = 433  # on every call of the key, status reads too
    with pytest.raises(KieKeyCapped):
        await client.status(API_GPT4O, "task_x")


async def test_408_no_result_for_10_minutes_ends_the_task_unretried(kie: FakeKie,
                                                                    client: KieClient) -> None:
    task_id = await client.start(API_VEO, VEO.model, VEO.input)
    kie.fail_reads_next(408, times=3)
    with pytest.raises(KieNoResult) as info:
        await client.status(API_VEO, task_id)
    assert info.value.reason == "kie_timeout" and not info.value.retryable
    assert kie.count(VEO.read) == 1


async def test_550_a_full_queue_refuses_the_create_unretried(kie: FakeKie, client: KieClient) -> None:
    kie.fail_create_next(550, times=2)
    with pytest.raises(KieQueueFull) as info:
        await client.start(API_GPT4O, GPT4O.model, GPT4O.input)
    assert info.value.reason == "queue_full" and isinstance(info.value, KieUnavailable)
    assert kie.count(GPT4O.create) == 1 and kie.tasks == {}
