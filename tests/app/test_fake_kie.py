"""The Kie.ai fake itself behaves like kie-api.md says Kie does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from testkit.fakes.kie import FakeKie, Req, TaskPlan
from testkit.fakes.server import AppServer

KEY = "kie-test-key"
CREATE = "/api/v1/jobs/createTask"
RECORD = "/api/v1/jobs/recordInfo"


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    async with FakeKie() as fake:
        yield fake


@pytest.fixture
async def http(kie: FakeKie) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kie.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


async def create(http: httpx.AsyncClient, model: str = "google/imagen4", **input: Any) -> dict[str, Any]:
    input.setdefault("prompt", "A cat astronaut")
    return (await http.post(CREATE, json={"model": model, "input": input})).json()


async def read(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await http.get(RECORD, params={"taskId": task_id})
    assert response.status_code == 200
    return response.json()


async def test_auth_missing_or_wrong_is_code_401_in_http_200(kie: FakeKie) -> None:
    async with httpx.AsyncClient(base_url=kie.url) as anon:
        r = await anon.get("/api/v1/chat/credit")
        assert r.status_code == 200
        assert r.json() == {"code": 401, "msg": "You do not have access permissions", "data": None}
        r = await anon.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": "x"}},
                            headers={"Authorization": "Bearer wrong"})
        assert r.json()["code"] == 401
        # The upload host answers with a real HTTP status.
        r = await anon.post("/api/file-base64-upload", json={"base64Data": "AA==", "uploadPath": "a"})
        assert r.status_code == 401 and r.json()["success"] is False
    assert kie.creates == [] and kie.requests[0].code == 401


@pytest.mark.parametrize("model,input", [
    ("google/imagen4", {"aspect_ratio": "16:9", "negative_prompt": "blur", "seed": "42"}),
    ("bytedance/seedream", {"image_size": "square_hd", "guidance_scale": 2.5, "seed": 7,
                            "enable_safety_checker": True}),
    ("grok-imagine/text-to-image", {"aspect_ratio": "3:2"}),
])
async def test_create_valid(http: httpx.AsyncClient, kie: FakeKie, model: str, input: dict[str, Any]) -> None:
    body = await create(http, model, **input)
    assert body["code"] == 200 and body["msg"] == "success"
    task_id = body["data"]["taskId"]
    assert task_id.startswith("task_") and kie.tasks[task_id].model == model
    assert kie.creates[0]["input"]["prompt"] == "A cat astronaut"


@pytest.mark.parametrize("model,input,needle", [
    ("google/imagen4", {"image_size": "square_hd"}, "image_size"),
    ("grok-imagine/text-to-image", {"image_size": "square"}, "image_size"),
    ("google/imagen4", {"aspect_ratio": "2:3"}, "aspect_ratio"),
    ("grok-imagine/text-to-image", {"aspect_ratio": "16:9"}, "aspect_ratio"),
    ("bytedance/seedream", {"aspect_ratio": "1:1"}, "aspect_ratio"),
    ("bytedance/seedream", {"guidance_scale": 11}, "guidance_scale"),
    ("bytedance/seedream", {"image_size": "huge"}, "image_size"),
    ("google/imagen4", {"seed": 42}, "seed"),
    ("google/imagen4", {"prompt": ""}, "prompt"),
    ("google/imagen4", {"prompt": "x" * 5001}, "prompt"),
    ("flux-2/pro", {}, "flux-2/pro"),
])
async def test_create_invalid_is_422(http: httpx.AsyncClient, kie: FakeKie, model: str,
                                     input: dict[str, Any], needle: str) -> None:
    body = await create(http, model, **input)
    assert body["code"] == 422 and body["data"] is None and needle in body["msg"]
    assert kie.creates == []


async def test_create_needs_prompt_and_json(http: httpx.AsyncClient, kie: FakeKie) -> None:
    r = await http.post(CREATE, json={"model": "google/imagen4", "input": {}})
    assert r.json()["code"] == 422 and "prompt" in r.json()["msg"]
    r = await http.post(CREATE, content=b"model=google/imagen4")
    assert r.json()["code"] == 422
    kie.extra_models.add("suno/anything")
    assert (await http.post(CREATE, json={"model": "suno/anything", "input": {"x": 1}})).json()["code"] == 200


async def test_task_walks_states_to_success_and_serves_png(http: httpx.AsyncClient, kie: FakeKie) -> None:
    task_id = (await create(http, aspect_ratio="1:1"))["data"]["taskId"]
    states = []
    for _ in range(4):
        body = await read(http, task_id)
        assert body["code"] == 200 and body["message"] == "success" and "msg" not in body
        states.append(body["data"]["state"])
        if body["data"]["state"] != "success":
            assert body["data"]["resultJson"] == "" and "costTime" not in body["data"]
    assert states == ["waiting", "queuing", "generating", "success"]
    data = body["data"]
    assert json.loads(data["param"])["input"]["aspect_ratio"] == "1:1"
    assert isinstance(data["resultJson"], str)
    urls = json.loads(data["resultJson"])["resultUrls"]
    assert len(urls) == 1 and data["failCode"] == "" and isinstance(data["completeTime"], int)
    async with httpx.AsyncClient() as anon:  # result files need no key
        r = await anon.get(urls[0])
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert r.headers["content-type"] == "image/png" and int(r.headers["content-length"]) == len(r.content)
    assert kie.tasks[task_id].reads == 4


async def test_fail_plan_never_plan_and_unknown_task(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.plan_by_prompt["nsfw"] = TaskPlan(outcome="fail", reads_before_done=0, fail_code="400",
                                          fail_msg="content policy")
    kie.plan_by_prompt["stuck"] = TaskPlan(outcome="never", reads_before_done=1, state_override="mystery")
    failing = (await create(http, prompt="something nsfw"))["data"]["taskId"]
    data = (await read(http, failing))["data"]
    assert data["state"] == "fail" and data["failCode"] == "400" and data["failMsg"] == "content policy"
    assert data["resultJson"] == ""
    stuck = (await create(http, prompt="stuck forever"))["data"]["taskId"]
    assert [(await read(http, stuck))["data"]["state"] for _ in range(3)] == ["mystery"] * 3
    body = await read(http, "task_nope")
    assert body["code"] == 404 and body["data"] is None


async def test_plan_callable_and_several_urls(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.plan = lambda body: TaskPlan(reads_before_done=0, urls=3, file_size=1000, content_type="image/jpeg")
    task_id = (await create(http))["data"]["taskId"]
    urls = json.loads((await read(http, task_id))["data"]["resultJson"])["resultUrls"]
    assert len(urls) == 3 and urls[0].endswith(".jpg")
    r = await http.get(urls[2])
    assert r.headers["content-type"] == "image/jpeg" and len(r.content) == 1000


async def test_credit_is_a_bare_number(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.credits = 1234
    assert (await http.get("/api/v1/chat/credit")).json() == {"code": 200, "msg": "success", "data": 1234}


async def test_download_url_and_403_fallback(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, file_status=403)
    task_id = (await create(http))["data"]["taskId"]
    file_url = json.loads((await read(http, task_id))["data"]["resultJson"])["resultUrls"][0]
    direct = await http.get(file_url)
    assert direct.status_code == 403 and direct.headers["content-type"].startswith("text/html")
    body = (await http.post("/api/v1/common/download-url", json={"url": file_url})).json()
    assert body["code"] == 200 and isinstance(body["data"], str) and body["data"] != file_url
    fresh = await http.get(body["data"])
    assert fresh.status_code == 200 and fresh.content.startswith(b"\x89PNG")
    assert (await http.get(file_url + "?token=forged")).status_code == 403
    foreign = (await http.post("/api/v1/common/download-url", json={"url": "https://example.com/a.png"})).json()
    assert foreign["code"] == 422 and foreign["data"] is None


async def test_uploads(http: httpx.AsyncClient, kie: FakeKie) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    for b64 in ("data:image/png;base64," + base64.b64encode(png).decode(), base64.b64encode(png).decode()):
        r = await http.post("/api/file-base64-upload",
                            json={"base64Data": b64, "uploadPath": "bot/inputs", "fileName": "a.png"})
        body = r.json()
        assert r.status_code == 200 and body["success"] is True and body["code"] == 200
        data = body["data"]
        assert data["fileSize"] == len(png) and data["mimeType"] == "image/png"
        assert data["filePath"] == "bot/inputs/a.png" and data["fileName"] == "a.png"
        assert (await http.get(data["downloadUrl"])).content == png
    assert kie.uploads == {"bot/inputs/a.png": png}

    r = await http.post("/api/file-stream-upload", data={"uploadPath": "bot/inputs", "fileName": "b.jpg"},
                        files={"file": ("photo.jpg", b"\xff\xd8\xffjpeg", "image/jpeg")})
    assert r.json()["data"]["mimeType"] == "image/jpeg"
    assert (await http.get(r.json()["data"]["downloadUrl"])).content == b"\xff\xd8\xffjpeg"
    assert kie.requests[-1].body["file"]["size"] == 7

    r = await http.post("/api/file-url-upload",
                        json={"fileUrl": "https://example.com/x.png", "uploadPath": "u"})
    assert r.json()["success"] is True and kie.url_uploads == ["https://example.com/x.png"]

    r = await http.post("/api/file-base64-upload", json={"base64Data": "AA=="})
    assert r.status_code == 400 and r.json()["success"] is False and r.json()["code"] == 400
    r = await http.post("/api/file-base64-upload", json={"base64Data": "AA==", "uploadPath": "/lead"})
    assert r.status_code == 400


async def test_telegram_file_urls_are_refused(http: httpx.AsyncClient, kie: FakeKie) -> None:
    leak = "https://api.telegram.org/file/bot123456:ABC/photos/1.jpg"
    r = await http.post("/api/file-url-upload", json={"fileUrl": leak, "uploadPath": "u"})
    assert r.status_code == 400
    body = await create(http, "google/nano-banana-edit", image_urls=[leak])
    assert body["code"] == 422 and len(kie.token_leaks) == 2 and kie.creates == []


async def test_injected_failures_and_delays(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.fail_create_next(402)
    assert await create(http) == {"code": 402, "msg": "Credits insufficient", "data": None}
    kie.fail_create_next(500, http_status=502, raw_body="<html>Bad Gateway</html>")
    r = await http.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": "x"}})
    assert r.status_code == 502 and r.text.startswith("<html>")
    assert kie.creates == []
    task_id = (await create(http))["data"]["taskId"]
    kie.fail_reads_next(500, times=2)
    kie.fail_reads_next(429)
    codes = [(await http.get(RECORD, params={"taskId": task_id})).json()["code"] for _ in range(3)]
    assert codes == [500, 500, 429]
    assert kie.requests[-1].status == 429 and kie.rate_limited == 0  # injected, not the limiter
    assert kie.tasks[task_id].reads == 0
    assert (await read(http, task_id))["data"]["state"] == "waiting"

    kie.create_delay = 0.3
    with pytest.raises(httpx.ReadTimeout):
        await http.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": "slow"}}, timeout=0.05)
    assert kie.creates[-1]["input"]["prompt"] == "slow"  # Kie got it even though the answer was lost


async def test_rate_limit() -> None:
    async with FakeKie(rate_limit=5, window=0.5) as kie, \
            httpx.AsyncClient(base_url=kie.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        answers = [await http.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": f"p{i}"}})
                   for i in range(8)]
        statuses = [r.status_code for r in answers]
        assert statuses == [200] * 5 + [429] * 3
        assert answers[-1].json() == {"code": 429, "msg": "Rate limited", "data": None}
        assert kie.rate_limited == 3 and len(kie.creates) == 5  # rejected creates were not queued
        assert kie.max_in_window() == 8 and kie.count("/createTask") == 8
        # The window after the last request: then a request is taken again.
        await asyncio.sleep(max(kie.requests[-1].time + 0.5 - time.monotonic(), 0) + 0.02)
        r = await http.get("/api/v1/chat/credit")
        assert r.status_code == 200 and r.json()["code"] == 200


async def test_calls_counted_per_api_by_role_and_task_and_peaks_per_key() -> None:
    """Each request is put on its endpoint's API as a create, a status read or another call,
    with the task it is about (a create's from its answer; download-url's from its file's URL):
    what a load reads to give Kie calls per generation per API."""
    other_key = f"{KEY}-2"
    async with FakeKie(api_key=KEY, rate_limit=3, window=60, more_keys=[other_key]) as kie, \
            httpx.AsyncClient(base_url=kie.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        kie.default_plan = TaskPlan(reads_before_done=0, hd_pending_reads=0)
        veo = (await http.post("/api/v1/veo/generate", json={"prompt": "a boat"})).json()["data"]["taskId"]
        await http.get("/api/v1/veo/record-info", params={"taskId": veo})
        await http.get("/api/v1/veo/get-1080p-video", params={"taskId": veo, "index": 0})
        refused = await http.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": "p"}})
        auth = {"Authorization": f"Bearer {other_key}"}
        market = (await http.post(CREATE, json={"model": "google/imagen4", "input": {"prompt": "p"}},
                                  headers=auth)).json()["data"]["taskId"]
        await http.get(RECORD, params={"taskId": market}, headers=auth)
        url = kie.tasks[market].result_urls[0]
        await http.post("/api/v1/common/download-url", json={"url": url}, headers=auth)
        await http.get("/api/v1/chat/credit")  # KEY's window is full: 429 too
    assert refused.status_code == 429
    assert [(r.api, r.role, r.task_id) for r in kie.requests] == [
        ("veo", "create", veo), ("veo", "read", veo), ("veo", "other", veo),
        ("market", "create", None),  # refused: no task
        ("market", "create", market), ("market", "read", market), ("market", "other", market),
        ("", "other", None)]
    assert kie.calls_per_api() == {
        "veo": {"create": 1, "read": 1, "other": 1, "429": 0},
        "market": {"create": 2, "read": 1, "other": 1, "429": 1}, "": {"other": 1, "429": 1}}
    assert kie.calls_per_api(kie.requests[:1]) == {"veo": {"create": 1, "429": 0}}
    assert kie.peak_per_key() == {KEY: 5, other_key: 3}  # each key's account counts on its own


async def test_latency_each_way_and_counted_on_arrival() -> None:
    """`latency` delays a request on its way in and its answer on its way out; the request is
    recorded, and counted against the rate limit, when it arrives."""
    async with FakeKie(api_key=KEY, rate_limit=1, window=0.1) as kie, \
            httpx.AsyncClient(base_url=kie.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        kie.latency = 0.1
        sent = time.monotonic()
        first, second = await asyncio.gather(http.get("/api/v1/chat/credit"), http.get("/api/v1/chat/credit"))
        answered = time.monotonic()
        # (Lower bounds only: how much later depends on the machine's load.)
        assert kie.requests[0].time - sent >= 0.1
        assert answered - sent >= 0.2
        assert sorted([first.status_code, second.status_code]) == [200, 429]  # both arrived in one window
        kie.latency = (0.02, 0.06)
        sent = time.monotonic()
        third = await http.get("/api/v1/chat/credit")
        assert third.status_code == 200  # it arrived over a window after the first
        assert kie.requests[-1].time - sent >= 0.02
        assert time.monotonic() - sent >= 0.04


def test_max_in_window_counts() -> None:
    kie = FakeKie(window=1.0)
    kie.requests = [Req("GET", "/api/v1/chat/credit", {}, None, t)
                    for t in (0.0, 0.2, 0.9, 1.0, 1.1, 1.95, 3.0)]
    assert kie.max_in_window() == 4  # 0.2, 0.9, 1.0, 1.1 (1.95 - 0.9 > 1; 1.0 - 0.0 is not < 1)
    assert kie.max_in_window(0.5) == 3  # 0.9, 1.0, 1.1
    assert kie.max_in_window(10) == 7
    assert FakeKie().max_in_window() == 0


async def test_callback_signed(http: httpx.AsyncClient, kie: FakeKie) -> None:
    received: list[tuple[dict[str, str], Any]] = []

    async def receiver(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/kie/callback/{secret}", receiver)
    async with AppServer(app) as server:
        body = {"model": "google/imagen4", "input": {"prompt": "x"},
                "callBackUrl": f"{server.url}/kie/callback/s3cret"}
        task_id = (await http.post(CREATE, json=body)).json()["data"]["taskId"]
        assert kie.finish(task_id) == "success"
        assert await kie.send_callback(task_id, hmac_key="k", timestamp=1700000000) == 200
        assert await kie.send_callback(task_id, shape="flat") == 200
    headers, wrapped = received[0]
    assert wrapped["data"]["taskId"] == task_id and wrapped["data"]["state"] == "success"
    expected = base64.b64encode(
        hmac.new(b"k", f"{task_id}.1700000000".encode(), hashlib.sha256).digest()).decode()
    assert headers["X-Webhook-Signature"] == expected and headers["X-Webhook-Timestamp"] == "1700000000"
    assert received[1][1]["taskId"] == task_id and "X-Webhook-Signature" not in received[1][0]
    assert kie.callbacks_sent == [(task_id, 200), (task_id, 200)]
    assert len(kie.requests) == 1  # callbacks are not Kie API requests


async def test_unknown_endpoint_and_wrong_method(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/nope")).json()["code"] == 404
    assert (await http.get(CREATE)).json()["code"] == 404


# -- video and speech models -------------------------------------------------------------------

IMG = "https://x/a.png"

@pytest.mark.parametrize("model,input", [
    ("kling/v2-1-master-text-to-video", {"duration": "10", "cfg_scale": 0.5}),
    ("kling/v2-1-pro", {"image_url": "https://x/a.png", "duration": "5"}),
    ("kling-2.6/text-to-video", {"sound": False, "duration": "5", "aspect_ratio": "9:16"}),
    ("sora-2-text-to-video", {"aspect_ratio": "portrait", "n_frames": "10"}),
    ("sora-2-pro-image-to-video", {"image_urls": ["https://x/a.png"], "size": "high"}),
    ("hailuo/2-3-image-to-video-pro", {"image_url": IMG, "resolution": "1080P", "duration": "6"}),
    ("hailuo/02-text-to-video-pro", {"resolution": "768P", "duration": "10"}),
    ("wan/2-2-a14b-image-to-video-turbo", {"image_url": "https://x/a.png", "aspect_ratio": "auto"}),
    ("bytedance/v1-pro-text-to-video", {"resolution": "1080p", "duration": "10", "seed": -1}),
])
async def test_video_create_valid(http: httpx.AsyncClient, model: str, input: dict[str, Any]) -> None:
    assert (await create(http, model, **input))["code"] == 200


@pytest.mark.parametrize("model,input,needle", [
    ("hailuo/2-3-image-to-video-pro", {"image_url": IMG, "resolution": "1080P", "duration": "10"}, "1080P"),
    ("hailuo/02-text-to-video-pro", {"resolution": "1080P", "duration": "10"}, "1080P"),
    ("hailuo/2-3-image-to-video-standard", {"image_url": "https://x/a.png", "duration": 6}, "duration"),
    ("kling/v2-1-pro", {"image_urls": ["https://x/a.png"]}, "image_url is required"),
    ("kling-2.6/text-to-video", {"duration": "5"}, "sound"),
    ("kling-2.6/text-to-video", {"sound": True, "duration": "5", "prompt": "x" * 1001}, "prompt"),
    ("sora-2-pro-text-to-video", {"aspect_ratio": "16:9"}, "aspect_ratio"),
    ("sora-2-text-to-video", {"size": "high"}, "size"),  # only the pro ids take a size
    ("sora-2-image-to-video", {"image_url": "https://x/a.png"}, "image_urls"),
    ("wan/2-2-a14b-text-to-video-turbo", {"resolution": "1080p"}, "resolution"),
    ("wan/2-2-a14b-text-to-video-turbo", {"aspect_ratio": "auto"}, "aspect_ratio"),
    ("bytedance/v1-pro-text-to-video", {"prompt": "x" * 10001}, "prompt"),
    ("bytedance/v1-pro-image-to-video", {"image_url": "not a url"}, "image_url"),
    ("elevenlabs/text-to-speech-multilingual-v2", {"voice": "Rachel"}, "text is required"),
    ("elevenlabs/text-to-speech-multilingual-v2", {"text": "hi", "voice": "Bob"}, "voice"),
    ("elevenlabs/text-to-speech-multilingual-v2", {"text": "x" * 5001}, "text"),
    ("elevenlabs/text-to-speech-multilingual-v2", {"text": "hi", "speed": 1.5}, "speed"),
])
async def test_video_and_speech_invalid_is_422(http: httpx.AsyncClient, kie: FakeKie, model: str,
                                               input: dict[str, Any], needle: str) -> None:
    input.setdefault("prompt", "A cat astronaut")
    if model.startswith("elevenlabs/"):
        input.pop("prompt")
    body = (await http.post(CREATE, json={"model": model, "input": input})).json()
    assert body["code"] == 422 and needle in body["msg"], body
    assert kie.creates == []


@pytest.mark.parametrize("model,input,content_type,ext", [
    ("google/imagen4", {"prompt": "x"}, "image/png", ".png"),
    ("kling/v2-1-master-text-to-video", {"prompt": "x"}, "video/mp4", ".mp4"),
    ("elevenlabs/text-to-speech-multilingual-v2", {"text": "Hello", "voice": "Aria"}, "audio/mpeg", ".mp3"),
])
async def test_result_files_typed_by_the_models_kind(http: httpx.AsyncClient, kie: FakeKie, model: str,
                                                     input: dict[str, Any], content_type: str,
                                                     ext: str) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0)
    task_id = (await http.post(CREATE, json={"model": model, "input": input})).json()["data"]["taskId"]
    url = json.loads((await read(http, task_id))["data"]["resultJson"])["resultUrls"][0]
    r = await http.get(url)
    assert url.endswith(ext) and r.headers["content-type"] == content_type


async def test_explicit_content_type_wins_over_kind(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, content_type="image/jpeg")
    task_id = (await create(http, "sora-2-text-to-video"))["data"]["taskId"]
    url = json.loads((await read(http, task_id))["data"]["resultJson"])["resultUrls"][0]
    assert (await http.get(url)).headers["content-type"] == "image/jpeg"


# -- Suno --------------------------------------------------------------------------------------

GENERATE = "/api/v1/generate"
SUNO_RECORD = "/api/v1/generate/record-info"
SIMPLE = {"model": "V4_5", "customMode": False, "instrumental": False, "prompt": "A calm song about rain"}
CUSTOM = {"model": "V4_5", "customMode": True, "instrumental": False, "title": "Rain",
          "style": "lo-fi", "prompt": "[Verse] drops"}


async def suno_read(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await http.get(SUNO_RECORD, params={"taskId": task_id})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("body", [
    SIMPLE,
    CUSTOM,
    {**CUSTOM, "instrumental": True, "prompt": ""},
    {k: v for k, v in {**CUSTOM, "instrumental": True}.items() if k != "prompt"},
    {**CUSTOM, "model": "V5", "style": "s" * 1000, "prompt": "p" * 5000, "title": "t" * 80},
    {**CUSTOM, "model": "V4", "style": "s" * 200, "prompt": "p" * 3000, "vocalGender": "f",
     "negativeTags": "metal"},
    {**SIMPLE, "prompt": "p" * 500, "callBackUrl": "http://127.0.0.1:9/cb"},
])
async def test_suno_generate_valid(http: httpx.AsyncClient, kie: FakeKie, body: dict[str, Any]) -> None:
    answer = (await http.post(GENERATE, json=body)).json()
    assert answer["code"] == 200 and answer["msg"] == "success"
    assert kie.creates == [body]


@pytest.mark.parametrize("body,needle", [
    ({**SIMPLE, "model": "V3_5"}, "model"),
    ({k: v for k, v in SIMPLE.items() if k != "model"}, "model"),
    ({k: v for k, v in SIMPLE.items() if k != "customMode"}, "customMode is required"),
    ({k: v for k, v in SIMPLE.items() if k != "instrumental"}, "instrumental is required"),
    ({**SIMPLE, "instrumental": "false"}, "instrumental"),
    ({**SIMPLE, "prompt": "p" * 501}, "prompt"),
    ({k: v for k, v in SIMPLE.items() if k != "prompt"}, "prompt is required"),
    ({k: v for k, v in CUSTOM.items() if k != "title"}, "title is required"),
    ({k: v for k, v in CUSTOM.items() if k != "style"}, "style is required"),
    ({k: v for k, v in CUSTOM.items() if k != "prompt"}, "prompt is required"),  # lyrics unless instrumental
    ({**CUSTOM, "title": "t" * 81}, "title"),
    ({**CUSTOM, "model": "V4", "style": "s" * 201}, "style"),
    ({**CUSTOM, "model": "V4", "prompt": "p" * 3001}, "prompt"),
    ({**CUSTOM, "model": "V5", "prompt": "p" * 5001}, "prompt"),
    ({**CUSTOM, "vocalGender": "x"}, "vocalGender"),
    ({**SIMPLE, "callBackUrl": "ftp://x"}, "callBackUrl"),
])
async def test_suno_generate_invalid_is_422(http: httpx.AsyncClient, kie: FakeKie, body: dict[str, Any],
                                            needle: str) -> None:
    answer = (await http.post(GENERATE, json=body)).json()
    assert answer["code"] == 422 and answer["data"] is None and needle in answer["msg"], answer
    assert kie.creates == []


async def test_suno_callback_requirement_is_a_knob(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.suno_require_callback = True
    assert (await http.post(GENERATE, json=SIMPLE)).json()["code"] == 422
    answer = await http.post(GENERATE, json={**SIMPLE, "callBackUrl": "http://127.0.0.1:9/cb"})
    assert answer.json()["code"] == 200


async def test_suno_walks_to_two_tracks(http: httpx.AsyncClient, kie: FakeKie) -> None:
    task_id = (await http.post(GENERATE, json=CUSTOM)).json()["data"]["taskId"]
    answers = [await suno_read(http, task_id) for _ in range(4)]
    assert [a["data"]["status"] for a in answers] == ["PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"]
    assert all(a["code"] == 200 and a["msg"] == "success" for a in answers)
    assert answers[0]["data"]["response"] is None
    assert [t["audioUrl"] for t in answers[1]["data"]["response"]["sunoData"]] == ["", ""]
    first = answers[2]["data"]["response"]["sunoData"]
    assert first[0]["audioUrl"] and first[1]["audioUrl"] == ""
    data = answers[3]["data"]
    assert json.loads(data["param"]) == CUSTOM and data["errorMessage"] is None
    tracks = data["response"]["sunoData"]
    assert len(tracks) == 2 and {t["title"] for t in tracks} == {"Rain"} and tracks[0]["tags"] == "lo-fi"
    assert all(isinstance(t["duration"], float) for t in tracks)
    audio = await http.get(tracks[1]["audioUrl"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert audio.content.startswith(b"ID3") and tracks[1]["audioUrl"].endswith(".mp3")
    cover = await http.get(tracks[0]["imageUrl"])
    assert cover.headers["content-type"] == "image/jpeg"
    assert (await read(http, task_id))["code"] == 404  # the market API does not know Suno's tasks


async def test_suno_failure_plan(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.plan_by_prompt["nasty"] = TaskPlan(outcome="fail", reads_before_done=0, fail_code="400",
                                           fail_state="SENSITIVE_WORD_ERROR", fail_msg="Sensitive words")
    task_id = (await http.post(GENERATE, json={**SIMPLE, "prompt": "a nasty song"})).json()["data"]["taskId"]
    data = (await suno_read(http, task_id))["data"]
    assert (data["status"], data["errorCode"], data["errorMessage"]) == (
        "SENSITIVE_WORD_ERROR", 400, "Sensitive words")
    assert data["response"] is None
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=0)
    other = (await http.post(GENERATE, json=SIMPLE)).json()["data"]["taskId"]
    assert (await suno_read(http, other))["data"]["status"] == "GENERATE_AUDIO_FAILED"


async def test_garbage_knobs_spoil_only_the_finished_record(http: httpx.AsyncClient, kie: FakeKie) -> None:
    kie.default_plan = TaskPlan(reads_before_done=0, bad_urls=[None, 7, ""])
    task_id = (await create(http))["data"]["taskId"]
    urls = json.loads((await read(http, task_id))["data"]["resultJson"])["resultUrls"]
    assert urls == [*kie.tasks[task_id].result_urls, None, 7, ""]
    kie.default_plan = TaskPlan(reads_before_done=0, track_duration="NaN")
    song = (await http.post(GENERATE, json=SIMPLE)).json()["data"]["taskId"]
    tracks = (await suno_read(http, song))["data"]["response"]["sunoData"]
    assert [t["duration"] for t in tracks] == ["NaN", "NaN"]


async def test_suno_callback_shape(http: httpx.AsyncClient, kie: FakeKie) -> None:
    received: list[Any] = []

    async def receiver(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/cb", receiver)
    async with AppServer(app) as server:
        body = {**SIMPLE, "callBackUrl": f"{server.url}/cb"}
        task_id = (await http.post(GENERATE, json=body)).json()["data"]["taskId"]
        assert kie.finish(task_id) == "SUCCESS"
        assert await kie.send_callback(task_id) == 200
    data = received[0]["data"]
    assert data["callbackType"] == "complete" and data["task_id"] == task_id
    assert [t["audio_url"] for t in data["data"]] == kie.tasks[task_id].result_urls


# -- automatic callbacks -----------------------------------------------------------------------

class Hook:
    """A callback receiver: records (headers, body, time.monotonic()) and answers `status`."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], Any, float]] = []
        self.status = 200
        app = web.Application()
        app.router.add_post("/kie/cb/{secret}", self.handle)
        self.server = AppServer(app)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.json(), time.monotonic()))
        return web.Response(status=self.status, text="ok")

    @property
    def url(self) -> str:
        return f"{self.server.url}/kie/cb/s3cret"

    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.got]


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    async with h.server:
        yield h


async def create_with_callback(http: httpx.AsyncClient, hook: Hook, prompt: str = "A cat") -> str:
    body = {"model": "google/imagen4", "input": {"prompt": prompt}, "callBackUrl": hook.url}
    return (await http.post(CREATE, json=body)).json()["data"]["taskId"]


async def test_auto_callback_on_success_and_on_failure(http: httpx.AsyncClient, kie: FakeKie,
                                                       hook: Hook) -> None:
    kie.auto_callbacks = True
    kie.plan_by_prompt["bad"] = TaskPlan(outcome="fail", reads_before_done=1, fail_code="400",
                                         fail_msg="content policy")
    ok = await create_with_callback(http, hook)
    bad = await create_with_callback(http, hook, "a bad one")
    for _ in range(3):  # running states: no callback yet
        await read(http, ok)
    await asyncio.sleep(0.05)
    assert hook.got == []
    assert (await read(http, ok))["data"]["state"] == "success"
    await read(http, bad)
    assert (await read(http, bad))["data"]["state"] == "fail"
    await kie.wait_callbacks(2)
    for _ in range(3):  # reads after the end send nothing more
        await read(http, ok)
    await asyncio.sleep(0.05)

    by_task = {body["data"]["taskId"]: body for body in hook.bodies()}
    assert len(hook.got) == 2 and set(by_task) == {ok, bad}
    assert by_task[ok]["code"] == 200 and by_task[ok]["data"]["state"] == "success"
    assert json.loads(by_task[ok]["data"]["resultJson"])["resultUrls"] == kie.tasks[ok].result_urls
    assert by_task[bad]["code"] == 501 and by_task[bad]["msg"] == "content policy"
    assert (by_task[bad]["data"]["state"], by_task[bad]["data"]["failMsg"]) == ("fail", "content policy")
    assert all("X-Webhook-Signature" not in headers for headers, _, _ in hook.got)
    assert sorted(kie.callbacks_sent) == sorted([(ok, 200), (bad, 200)])
    assert {(r.task_id, r.stage, r.status, r.auto, r.signed) for r in kie.callback_log} == {
        (ok, "success", 200, True, False), (bad, "fail", 200, True, False)}


async def test_callbacks_off_by_default(http: httpx.AsyncClient, kie: FakeKie, hook: Hook) -> None:
    task_id = await create_with_callback(http, hook)
    kie.finish(task_id)
    await asyncio.sleep(0.05)
    assert hook.got == [] and kie.callback_log == [] and kie.callbacks_sent == []


async def test_auto_callback_signed_with_hmac_key(http: httpx.AsyncClient, kie: FakeKie, hook: Hook) -> None:
    kie.auto_callbacks = True
    kie.hmac_key = "webhook-hmac"
    kie.callback_shape = "flat"
    task_id = await create_with_callback(http, hook)
    assert kie.finish(task_id) == "success"
    [record] = await kie.wait_callbacks()
    headers, body, _ = hook.got[0]
    ts = headers["X-Webhook-Timestamp"]
    assert abs(int(ts) - time.time()) < 5
    digest = hmac.new(b"webhook-hmac", f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    assert headers["X-Webhook-Signature"] == expected.decode()
    assert body["taskId"] == task_id and body["state"] == "success"  # flat
    assert record.signed and record.payload == body
    # send_callback signs with the fake's key too, unless told not to
    assert await kie.send_callback(task_id) == 200
    assert await kie.send_callback(task_id, hmac_key=None) == 200
    assert ["X-Webhook-Signature" in headers for headers, _, _ in hook.got] == [True, True, False]
    assert [r.auto for r in kie.callback_log] == [True, False, False]


async def test_finish_after_ends_a_task_without_reads(http: httpx.AsyncClient, kie: FakeKie,
                                                      hook: Hook) -> None:
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=0.6)
    created = time.monotonic()
    task_id = await create_with_callback(http, hook)
    await asyncio.sleep(0.3)
    assert kie.tasks[task_id].state == "queuing" and hook.got == []  # the clock passes the running states
    [record] = await kie.wait_callbacks(timeout=3)
    assert hook.got[0][2] - created >= 0.6  # not before its time (how late depends on the load)
    assert record.stage == "success" and kie.tasks[task_id].reads == 0
    assert kie.record(task_id)["state"] == "success"
    assert (await read(http, task_id))["data"]["state"] == "success"

    kie.default_plan = TaskPlan(outcome="fail", finish_after=0.1, fail_msg="boom", reads_before_done=0)
    failing = await create_with_callback(http, hook)
    assert (await read(http, failing))["data"]["state"] == "waiting"  # reads do not move it
    await kie.wait_callbacks(2, timeout=3)
    assert hook.bodies()[-1]["data"]["state"] == "fail" and hook.bodies()[-1]["data"]["failMsg"] == "boom"
    with pytest.raises(ValueError):
        TaskPlan(outcome="never", finish_after=1)


async def test_finish_after_without_auto_callbacks_is_read_only(http: httpx.AsyncClient,
                                                                kie: FakeKie) -> None:
    kie.default_plan = TaskPlan(finish_after=0.1)
    task_id = (await create(http))["data"]["taskId"]
    await asyncio.sleep(0.2)
    assert (await read(http, task_id))["data"]["state"] == "success" and kie.callback_log == []


async def test_suno_stage_callbacks(http: httpx.AsyncClient, kie: FakeKie, hook: Hook) -> None:
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=0.3)
    body = {**CUSTOM, "callBackUrl": hook.url}
    task_id = (await http.post(GENERATE, json=body)).json()["data"]["taskId"]
    await kie.wait_callbacks(3, timeout=3)
    stages = [b["data"]["callbackType"] for b in hook.bodies()]
    assert stages == ["text", "first", "complete"] and kie.tasks[task_id].reads == 0
    first, complete = hook.bodies()[1]["data"], hook.bodies()[2]["data"]
    assert first["task_id"] == task_id and [bool(t["audio_url"]) for t in first["data"]] == [True, False]
    assert [t["audio_url"] for t in complete["data"]] == kie.tasks[task_id].result_urls
    assert [r.stage for r in kie.callback_log] == ["text", "first", "complete"]

    # read-driven, stages off: only "complete"
    kie.suno_stage_callbacks = False
    kie.default_plan = TaskPlan(reads_before_done=3)
    other = (await http.post(GENERATE, json=body)).json()["data"]["taskId"]
    assert [(await suno_read(http, other))["data"]["status"] for _ in range(4)][-1] == "SUCCESS"
    await kie.wait_callbacks(4)
    assert [r.stage for r in kie.callback_log if r.task_id == other] == ["complete"]


async def test_a_late_clock_skips_no_suno_stage(http: httpx.AsyncClient, kie: FakeKie,
                                               hook: Hook) -> None:
    """On a busy machine the task's clock runs late and finds every stage due at once: each is
    still passed, with its callback, in order (the bot reads nothing for the first two)."""
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=0.3)
    task_id = (await http.post(GENERATE, json={**CUSTOM, "callBackUrl": hook.url})).json()["data"]["taskId"]
    time.sleep(0.35)  # noqa: ASYNC251 (the event loop held past the task's whole time, on purpose)
    await kie.wait_callbacks(3, timeout=3)
    assert [b["data"]["callbackType"] for b in hook.bodies()] == ["text", "first", "complete"]
    assert kie.tasks[task_id].state == "SUCCESS"


async def test_lost_duplicated_and_delayed_callbacks(http: httpx.AsyncClient, kie: FakeKie,
                                                     hook: Hook) -> None:
    kie.auto_callbacks = True
    kie.lose_callbacks(1)
    lost = await create_with_callback(http, hook)
    kie.finish(lost)
    twice = await create_with_callback(http, hook)
    kie.duplicate_callbacks()
    kie.finish(twice)
    await kie.wait_callbacks(2)
    assert [body["data"]["taskId"] for body in hook.bodies()] == [twice, twice]
    [gone] = [r for r in kie.callback_log if r.task_id == lost]
    assert (gone.lost, gone.status, gone.error) == (True, None, "lost")
    assert [r.duplicate for r in kie.callback_log if r.task_id == twice] == [False, True]
    assert kie.callbacks_sent == [(twice, 200), (twice, 200)]

    kie.delay_callbacks(0.2)
    late = await create_with_callback(http, hook)
    finished = time.monotonic()
    kie.finish(late)
    [record] = await kie.wait_callbacks(predicate=lambda r: r.task_id == late)
    assert record.delay == 0.2 and record.time - finished >= 0.2

    kie.callback_loss = 1.0  # every one lost
    never = await create_with_callback(http, hook)
    kie.finish(never)
    assert [r.lost for r in kie.callback_log if r.task_id == never] == [True]
    kie.callback_loss, kie.callback_duplicate = 0.0, 1.0  # every one twice
    double = await create_with_callback(http, hook)
    kie.finish(double)
    assert len(await kie.wait_callbacks(2, predicate=lambda r: r.task_id == double)) == 2


async def test_callback_answers_and_failures_are_recorded(http: httpx.AsyncClient, kie: FakeKie,
                                                          hook: Hook) -> None:
    kie.auto_callbacks = True
    hook.status = 401
    task_id = await create_with_callback(http, hook)
    kie.finish(task_id)
    [record] = await kie.wait_callbacks()
    assert (record.status, kie.callbacks_sent) == (401, [(task_id, 401)])

    # nobody listening: recorded with no status, not raised
    closed = AppServer(web.Application())
    await closed.start()
    url = f"{closed.url}/kie/cb/x"
    await closed.stop()
    body = {"model": "google/imagen4", "input": {"prompt": "x"}, "callBackUrl": url}
    down = (await http.post(CREATE, json=body)).json()["data"]["taskId"]
    kie.finish(down)
    for _ in range(200):
        if any(r.task_id == down for r in kie.callback_log):
            break
        await asyncio.sleep(0.01)
    [failed] = [r for r in kie.callback_log if r.task_id == down]
    assert (failed.status, failed.error) == (None, "connection refused")

    # a public callBackUrl is never called; deliver_callbacks_to routes it to a local receiver
    body = {"model": "google/imagen4", "input": {"prompt": "x"}, "callBackUrl": "https://bot.example/kie/cb/s3cret"}
    public = (await http.post(CREATE, json=body)).json()["data"]["taskId"]
    kie.finish(public)
    [refused] = [r for r in kie.callback_log if r.task_id == public]
    assert refused.status is None and "non-local" in (refused.error or "")
    with pytest.raises(ValueError, match="non-local"):
        await kie.send_callback(public)
    kie.deliver_callbacks_to = hook.server.url
    assert await kie.send_callback(public) == 401
    assert kie.callback_log[-1].url == hook.url


async def test_stop_cancels_clocks_and_pending_callbacks(hook: Hook) -> None:
    kie = FakeKie()
    await kie.start()
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=30)
    async with httpx.AsyncClient(base_url=kie.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        await create_with_callback(http, hook)
        kie.default_plan = TaskPlan()
        held = await create_with_callback(http, hook)
        kie.delay_callbacks(30)
        kie.finish(held)
    background = list(kie._background)
    assert len(background) == 2
    started = time.monotonic()
    await kie.stop()
    assert time.monotonic() - started < 2 and all(t.done() for t in background) and hook.got == []
