"""KieClient against the fake Kie.ai: error mapping, retries, parsing, uploads, secrecy."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import bot.kie.client as client_module
from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET
from bot.kie.errors import (
    KieAuthError,
    KieError,
    KieGenerationFailed,
    KieInsufficientCredits,
    KieModelDisabled,
    KieNotFound,
    KieProtocolError,
    KieRateLimited,
    KieTimeout,
    KieUnavailable,
    KieValidationError,
)
from bot.kie.ratelimit import RateLimiter
from bot.kie.schemas import TaskRecord, TaskStatus
from testkit.bot import KIE_KEY, WINDOW
from testkit.fakes.kie import FakeKie, TaskPlan

CREATE = "/jobs/createTask"
RECORD = "/jobs/recordInfo"
MODEL = "google/imagen4"
INPUT = {"prompt": "A cat astronaut", "aspect_ratio": "1:1"}

# Every documented envelope code and the exception it must become (kie-api.md, Errors).
ERRORS: list[tuple[int, type[KieError]]] = [
    (401, KieAuthError), (402, KieInsufficientCredits), (404, KieNotFound),
    (422, KieValidationError), (429, KieRateLimited), (455, KieUnavailable),
    (500, KieUnavailable), (501, KieGenerationFailed), (505, KieModelDisabled),
]
ERROR_IDS = [str(code) for code, _ in ERRORS]

MakeClient = Callable[..., KieClient]


@pytest.fixture(autouse=True)
def short_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 pauses the limiter; keep that pause short so the file stays fast."""
    monkeypatch.setattr(client_module, "RATE_LIMIT_PAUSE", 0.05)


@pytest.fixture
async def make_client(kie: FakeKie) -> AsyncIterator[MakeClient]:
    """Build clients the way the app does, pointed at the fake; all closed afterwards."""
    clients: list[KieClient] = []

    def make(key: str = KIE_KEY, *, base_url: str | None = None, timeout: float = 5.0,
             read_attempts: int = 4, backoff: float = 0.01) -> KieClient:
        client = KieClient(SecretStr(key), base_url=base_url or kie.url, upload_url=base_url or kie.url,
                           limiter=RateLimiter(20, WINDOW), timeout=timeout,
                           read_attempts=read_attempts, backoff=backoff)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: MakeClient) -> KieClient:
    return make_client()


async def new_task(client: KieClient, kie: FakeKie, plan: TaskPlan) -> str:
    kie.default_plan = plan
    return await client.start(API_MARKET, MODEL, INPUT)


# -- error mapping -----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "error"), ERRORS, ids=ERROR_IDS)
async def test_envelope_code_with_http_200_maps_to_exception(
        kie: FakeKie, make_client: MakeClient, code: int, error: type[KieError]) -> None:
    """A `code` in a 200-OK envelope becomes its exception, carrying Kie's msg and the code."""
    client = make_client(read_attempts=1)
    kie.fail_create_next(code, msg=f"kie says {code}")
    with pytest.raises(error) as info:
        await client.start(API_MARKET, MODEL, INPUT)
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.message == f"kie says {code}"


@pytest.mark.parametrize(("code", "error"), ERRORS, ids=ERROR_IDS)
async def test_read_envelope_code_maps_to_exception(
        kie: FakeKie, make_client: MakeClient, code: int, error: type[KieError]) -> None:
    """The same mapping holds on status reads (after the retries for retryable codes)."""
    client = make_client(read_attempts=2)
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    kie.fail_reads_next(code, times=2, msg=f"read says {code}")
    with pytest.raises(error) as info:
        await client.status(API_MARKET, task_id)
    assert (info.value.code, info.value.message) == (code, f"read says {code}")


@pytest.mark.parametrize(("code", "error"), ERRORS, ids=ERROR_IDS)
async def test_http_status_without_json_maps_to_exception(
        kie: FakeKie, make_client: MakeClient, code: int, error: type[KieError]) -> None:
    """With a non-JSON body (a proxy's HTML page) the HTTP status alone picks the exception."""
    client = make_client(read_attempts=1)
    kie.fail_create_next(code, http_status=code, raw_body=f"<html><body>{code}</body></html>")
    with pytest.raises(error) as info:
        await client.start(API_MARKET, MODEL, INPUT)
    assert type(info.value) is error
    assert info.value.code == code


async def test_http_200_without_json_is_a_protocol_error(kie: FakeKie, make_client: MakeClient) -> None:
    """HTTP 200 with a body that is not Kie's envelope is no success: a protocol error."""
    client = make_client(read_attempts=1)
    kie.fail_create_next(200, http_status=200, raw_body="<html>maintenance page</html>")
    with pytest.raises(KieProtocolError):
        await client.start(API_MARKET, MODEL, INPUT)


async def test_envelope_code_wins_over_http_status(kie: FakeKie, client: KieClient) -> None:
    """When both say something, the JSON code decides (HTTP 500 carrying code 422 is a 422)."""
    kie.fail_create_next(422, msg="prompt too long", http_status=500)
    with pytest.raises(KieValidationError) as info:
        await client.start(API_MARKET, MODEL, INPUT)
    assert info.value.message == "prompt too long"


async def test_unknown_task_is_not_found(kie: FakeKie, client: KieClient) -> None:
    """An unknown task id is KieNotFound with Kie's words, after one read (a 404 is final)."""
    with pytest.raises(KieNotFound) as info:
        await client.status(API_MARKET, "task_does_not_exist")
    assert (info.value.code, info.value.message) == (404, "Task not found")
    assert kie.count(RECORD) == 1


async def test_error_message_read_from_message_key(kie: FakeKie, client: KieClient) -> None:
    """Some answers say `message` instead of `msg`: the exception still carries Kie's words."""
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    kie.fail_reads_next(422, raw_body=json.dumps({"code": 422, "message": "taskId is malformed",
                                                  "data": None}))
    with pytest.raises(KieValidationError) as info:
        await client.status(API_MARKET, task_id)
    assert info.value.message == "taskId is malformed"


async def test_wrong_key_is_auth_error(kie: FakeKie, make_client: MakeClient) -> None:
    """A wrong API key is a KieAuthError on every endpoint, and creates nothing."""
    client = make_client("not-the-key")
    for call in (client.get_credits(), client.start(API_MARKET, MODEL, INPUT),
                 client.status(API_MARKET, "task_x")):
        with pytest.raises(KieAuthError):
            await call
    assert kie.tasks == {}


# -- start -------------------------------------------------------------------------------------

async def test_create_sends_model_and_input_without_callback(kie: FakeKie, client: KieClient) -> None:
    """The body is exactly {model, input}: no callBackUrl key when none is given."""
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    assert task_id in kie.tasks
    assert kie.requests[-1].body == {"model": MODEL, "input": INPUT}


async def test_create_sends_callback_when_given(kie: FakeKie, client: KieClient) -> None:
    """A given callback goes out as `callBackUrl`."""
    url = "http://127.0.0.1:9/kie/callback/secret/7"
    task_id = await client.start(API_MARKET, MODEL, INPUT, callback_url=url)
    assert kie.tasks[task_id].body == {"model": MODEL, "input": INPUT, "callBackUrl": url}


async def test_create_not_retried_after_timeout(kie: FakeKie, make_client: MakeClient) -> None:
    """A create whose answer never came raises KieTimeout and is never sent twice."""
    client = make_client(timeout=0.2)
    kie.create_delay = 0.6
    with pytest.raises(KieTimeout):
        await client.start(API_MARKET, MODEL, INPUT)
    assert kie.count(CREATE) == 1
    assert len(kie.tasks) == 1  # it did reach Kie: a retry would have made a second task


async def test_a_create_whose_answer_broke_off_is_unanswered_and_never_sent_twice(
        kie: FakeKie, client: KieClient) -> None:
    """Kie made the task, then the connection broke before its answer: KieTimeout, whose
    refund says Kie did not answer (the task may exist: a callback can still recover it)."""
    kie.broken_create_answers = 1
    with pytest.raises(KieTimeout) as info:
        await client.start(API_MARKET, MODEL, INPUT)
    assert info.value.reason == "unanswered"
    assert kie.count(CREATE) == 1 and len(kie.tasks) == 1


async def test_a_create_that_never_connected_is_kie_unavailable(make_client: MakeClient) -> None:
    """No connection at all: retried (nothing left), then Kie is unavailable; nothing was made,
    so the refund says so rather than that an answer was lost."""
    dead = make_client(base_url=f"http://127.0.0.1:{_free_port()}", read_attempts=2, backoff=0.01)
    with pytest.raises(KieUnavailable) as info:
        await dead.start(API_MARKET, MODEL, INPUT)
    assert info.value.reason is None


async def test_create_500_not_retried(kie: FakeKie, client: KieClient) -> None:
    """A 500 on create may have started a task: raise at once, one request only."""
    kie.fail_create_next(500, times=3)
    with pytest.raises(KieUnavailable):
        await client.start(API_MARKET, MODEL, INPUT)
    assert kie.count(CREATE) == 1


async def test_create_429_retried_then_succeeds(kie: FakeKie, client: KieClient) -> None:
    """A 429'd create was not queued by Kie, so it is sent again and succeeds once."""
    kie.fail_create_next(429, times=2)
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    assert kie.count(CREATE) == 3
    assert list(kie.tasks) == [task_id]


async def test_create_429_gives_up_after_attempts(kie: FakeKie, make_client: MakeClient) -> None:
    """Endless 429s end in KieRateLimited after read_attempts tries."""
    client = make_client(read_attempts=3)
    kie.fail_create_next(429, times=10)
    with pytest.raises(KieRateLimited):
        await client.start(API_MARKET, MODEL, INPUT)
    assert kie.count(CREATE) == 3


# -- the shared budget -------------------------------------------------------------------------

async def test_slot_held_until_the_answer_is_back(kie: FakeKie) -> None:
    """With the whole budget (one slot) on a slow read, the next request leaves only a window
    after that read's answer came back, not a window after the read was sent."""
    window, answer_delay = 0.1, 0.3
    client = KieClient(SecretStr(KIE_KEY), base_url=kie.url, upload_url=kie.url,
                       limiter=RateLimiter(1, window), timeout=5.0)
    try:
        task_id = await client.start(API_MARKET, MODEL, INPUT)
        kie.read_delay = answer_delay
        reading = asyncio.create_task(client.status(API_MARKET, task_id))
        while kie.count(RECORD) == 0:
            await asyncio.sleep(0.005)
        await client.get_credits()
        await reading
    finally:
        await client.aclose()
    read, credit = kie.requests[1:]
    assert read.path.endswith(RECORD) and credit.path.endswith("/credit")
    assert credit.time - read.time >= answer_delay + window


# -- status ------------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", [500, 455, 429, "timeout"])
async def test_read_retried_then_succeeds(kie: FakeKie, make_client: MakeClient, failure: Any) -> None:
    """A status read survives a 500, 455, 429 or timeout by trying again."""
    client = make_client(timeout=0.2)
    task_id = await new_task(client, kie, TaskPlan(reads_before_done=0))
    if failure == "timeout":
        kie.read_delay = 0.6
        reading = asyncio.create_task(client.status(API_MARKET, task_id))
        while kie.count(RECORD) == 0:
            await asyncio.sleep(0.01)
        kie.read_delay = 0
        status = await reading
    else:
        kie.fail_reads_next(failure)
        status = await client.status(API_MARKET, task_id)
    assert (status.phase, status.state) == ("success", "success")
    assert status.urls == kie.tasks[task_id].result_urls
    assert kie.count(RECORD) == 2


async def test_read_retries_mixed_failures(kie: FakeKie, make_client: MakeClient) -> None:
    """500, 455 and 429 in a row still end in success on the fourth (last allowed) read."""
    client = make_client(read_attempts=4)
    task_id = await new_task(client, kie, TaskPlan(reads_before_done=0))
    for code in (500, 455, 429):
        kie.fail_reads_next(code)
    assert (await client.status(API_MARKET, task_id)).phase == "success"
    assert kie.count(RECORD) == 4


async def test_read_gives_up_after_attempts(kie: FakeKie, make_client: MakeClient) -> None:
    """After read_attempts failed reads the last error is raised; no further request."""
    client = make_client(read_attempts=3)
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    kie.fail_reads_next(455, times=10)
    with pytest.raises(KieUnavailable):
        await client.status(API_MARKET, task_id)
    assert kie.count(RECORD) == 3


async def test_read_timeouts_give_up(kie: FakeKie, make_client: MakeClient) -> None:
    """Reads that always time out end in KieTimeout after read_attempts tries."""
    client = make_client(timeout=0.1, read_attempts=2)
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    kie.read_delay = 0.4
    with pytest.raises(KieTimeout):
        await client.status(API_MARKET, task_id)
    assert kie.count(RECORD) == 2


@pytest.mark.parametrize("code", [401, 402, 422, 501, 505])
async def test_read_final_errors_not_retried(kie: FakeKie, client: KieClient, code: int) -> None:
    """Errors a retry cannot fix are raised after one read."""
    task_id = await client.start(API_MARKET, MODEL, INPUT)
    kie.fail_reads_next(code, times=5)
    with pytest.raises(KieError):
        await client.status(API_MARKET, task_id)
    assert kie.count(RECORD) == 1


async def test_task_lifecycle_to_success(kie: FakeKie, client: KieClient) -> None:
    """waiting → queuing → generating → success; the result URLs are the real files."""
    url = "http://127.0.0.1:9/cb"
    kie.default_plan = TaskPlan(reads_before_done=3, urls=2)
    task_id = await client.start(API_MARKET, MODEL, INPUT, callback_url=url)
    statuses = [await client.status(API_MARKET, task_id) for _ in range(4)]
    assert [(s.phase, s.state) for s in statuses] == [
        ("running", "waiting"), ("running", "queuing"), ("running", "generating"), ("success", "success")]
    assert all(s.files == [] for s in statuses[:3])
    done = statuses[-1]
    assert done.urls == kie.tasks[task_id].result_urls and len(done.urls) == 2
    async with httpx.AsyncClient() as http:  # the parsed URLs really are the result files
        assert (await http.get(done.urls[0])).status_code == 200


async def test_record_parses_the_wire_record(kie: FakeKie, client: KieClient) -> None:
    """The fake's recordInfo `data`: resultJson and param are parsed JSON strings, the times and
    ids come through, and to_status() is what status() returned."""
    url = "http://127.0.0.1:9/cb"
    kie.default_plan = TaskPlan(reads_before_done=0, urls=2)
    task_id = await client.start(API_MARKET, MODEL, INPUT, callback_url=url)
    status = await client.status(API_MARKET, task_id)
    record = TaskRecord.model_validate(kie.record(task_id))
    assert record.result_urls == kie.tasks[task_id].result_urls and len(record.result_urls) == 2
    assert record.param == {"model": MODEL, "input": INPUT, "callBackUrl": url}
    assert record.model == MODEL and record.task_id == task_id
    assert record.create_time is not None and record.complete_time is not None
    assert record.to_status() == status


async def test_task_fail_exposes_code_and_msg(kie: FakeKie, client: KieClient) -> None:
    """A failed task shows state 'fail' with failCode/failMsg as code/message and no files."""
    task_id = await new_task(client, kie, TaskPlan(outcome="fail", reads_before_done=0,
                                                   fail_code="400", fail_msg="content policy violation"))
    status = await client.status(API_MARKET, task_id)
    assert status == TaskStatus("fail", "fail", message="content policy violation", code="400")
    assert status.files == []
    record = TaskRecord.model_validate(kie.record(task_id))  # the raw fields, as Kie spells them
    assert (record.fail_code, record.fail_msg) == ("400", "content policy violation")


async def test_junk_among_the_result_urls_costs_only_itself(kie: FakeKie, client: KieClient) -> None:
    """A null, a number, an empty string among resultUrls: the real files are the result."""
    task_id = await new_task(client, kie, TaskPlan(reads_before_done=0, urls=2, bad_urls=[None, 7, ""]))
    status = await client.status(API_MARKET, task_id)
    assert status.phase == "success" and status.urls == kie.tasks[task_id].result_urls


async def test_junk_result_urls_only_is_a_failed_task(kie: FakeKie, client: KieClient) -> None:
    task_id = await new_task(client, kie, TaskPlan(reads_before_done=0, urls=0, bad_urls=[None]))
    assert await client.status(API_MARKET, task_id) == TaskStatus("fail", "success", message="no result")


# -- other endpoints ---------------------------------------------------------------------------

async def test_get_credits_bare_number(kie: FakeKie, client: KieClient) -> None:
    """chat/credit's `data` is the number itself."""
    kie.credits = 4321
    assert await client.get_credits() == 4321


async def test_download_url_returns_string(kie: FakeKie, client: KieClient) -> None:
    """download-url gives a fresh direct link (a string) that opens the file."""
    task_id = await new_task(client, kie, TaskPlan(reads_before_done=0, file_status=403))
    result_url = (await client.status(API_MARKET, task_id)).urls[0]
    link = await client.download_url(result_url)
    assert isinstance(link, str) and link != result_url and link.startswith(kie.url)
    async with httpx.AsyncClient() as http:
        assert (await http.get(result_url)).status_code == 403
        assert (await http.get(link)).status_code == 200


async def test_download_url_foreign_url_is_validation_error(kie: FakeKie, client: KieClient) -> None:
    """A URL Kie did not generate is refused with 422 → KieValidationError."""
    with pytest.raises(KieValidationError) as info:
        await client.download_url("https://example.com/cat.png")
    assert info.value.code == 422 and info.value.message
    assert kie.count("/common/download-url") == 1


async def test_upload_file_stores_bytes_under_unique_names(kie: FakeKie, client: KieClient) -> None:
    """Uploads land in bot/inputs/<uuid>.<ext>; the same filename twice gives two files."""
    first, second = b"\x89PNG first", b"\x89PNG second"
    url1 = await client.upload_file(first, filename="photo.png", mime_type="image/png")
    url2 = await client.upload_file(second, filename="photo.png", mime_type="image/png")
    assert url1 != url2
    assert len(kie.uploads) == 2
    for key in kie.uploads:
        assert re.fullmatch(r"bot/inputs/[0-9a-f]{32}\.png", key), key
    assert sorted(kie.uploads.values()) == sorted([first, second])
    async with httpx.AsyncClient() as http:  # the returned downloadUrl serves what was sent
        assert (await http.get(url1)).content == first
        assert (await http.get(url2)).content == second


# -- the key stays secret ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_api_key_never_in_exception_text(kie: FakeKie, make_client: MakeClient) -> None:
    """Whatever fails (auth, HTTP errors, timeouts, no connection, bad answers), no exception text
    in the chain holds the API key."""
    client = make_client(timeout=0.1, read_attempts=2)
    wrong = make_client(KIE_KEY + "-wrong")
    dead = make_client(base_url=f"http://127.0.0.1:{_free_port()}", read_attempts=2)
    errors: list[BaseException] = []

    async def collect(call: Any) -> None:
        try:
            await call
        except KieError as error:
            errors.append(error)

    await collect(wrong.get_credits())
    await collect(dead.start(API_MARKET, MODEL, INPUT))
    await collect(dead.status(API_MARKET, "task_x"))
    await collect(client.status(API_MARKET, "task_missing"))
    await collect(client.download_url("https://example.com/x.png"))
    kie.fail_create_next(500, http_status=500, raw_body="<html>oops</html>")
    await collect(client.start(API_MARKET, MODEL, INPUT))
    kie.fail_create_next(200, msg="success")  # an envelope with no taskId: a protocol error
    await collect(client.start(API_MARKET, MODEL, INPUT))
    kie.create_delay = 0.4
    await collect(client.start(API_MARKET, MODEL, INPUT))
    assert len(errors) == 8
    kinds = {type(e) for e in errors}
    assert {KieAuthError, KieTimeout, KieNotFound, KieValidationError, KieUnavailable,
            KieProtocolError} <= kinds
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            assert KIE_KEY not in str(chain) and KIE_KEY not in repr(chain), repr(error)
            chain = chain.__cause__ or chain.__context__
