"""End to end through the bot: a model on each of Kie.ai's dedicated APIs — Veo 3.1 (and its
1080p), Runway, Flux Kontext, 4o Image — from /video or /image to ✅, the create in the API's own
body, its status reads, the result delivered (from a photo too), a failure refunded once, a
callback of each shape waking exactly one read; and Kie's other refusals: 433 (a key's cap),
408 (no result for 10 minutes) and 550 (a full queue).

This file's own models (their test prices and options) come first in its catalog, loaded as
CATALOG_PATH's is (`offered`): the pickers list them before the shipped file's models of the
same names, so a press by name finds them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.catalog import MODELS, SHIPPED, load_catalog
from bot.kie.client import key_id
from bot.kie.constants import API_FLUX, API_GPT4O, API_RUNWAY, API_VEO, API_VEO_1080P
from bot.store import GenerationState
from testkit.bot import ADMIN_ID, KIE_KEY, WINDOW, make_settings
from testkit.chat import Person, buttons
from testkit.e2e import charges, free_port, generate, refunds, states_become
from testkit.fakes.kie import FakeKie, TaskPlan
from testkit.fakes.telegram import tiny_png

PHOTO = tiny_png(800, 600)

# One model on each dedicated API, each with its picture variant, in the catalog file's format.
DEDICATED = """
[[models]]
id = "tveo"
kind = "video"
api = "veo"
kie_model = "veo3_fast"
name = "Veo 3.1 Fast"
price = 120
kie_cost = 60
expected_seconds = 1
good_for = { en = "a test's Veo", ru = "Veo для теста" }

[[models.options]]
key = "ar"
field = "aspect_ratio"
title = "Aspect ratio"
choices = ["16:9", "9:16"]
default = "16:9"

[models.picture]
kie_model = "veo3_fast"
image = { field = "imageUrls", many = true }

[[models]]
id = "tveohd"
kind = "video"
api = "veo-1080p"
kie_model = "veo3"
name = "Veo 3.1 HD"
price = 200
kie_cost = 255
expected_seconds = 1
good_for = { en = "a test's Veo in 1080p", ru = "Veo в 1080p для теста" }

[[models]]
id = "trunway"
kind = "video"
api = "runway"
kie_model = "runway"
name = "Runway"
price = 60
kie_cost = 12
expected_seconds = 1
max_prompt = 1800
good_for = { en = "a test's Runway", ru = "Runway для теста" }

[[models.options]]
key = "m"
field = "duration"
title = "Duration"
choices = [
    { value = "5-720", label = "5 s · 720p", input = { duration = 5, quality = "720p" } },
{ value = "10-720", label = "10 s · 720p", price_factor = 2, input = { duration = 10, quality = "720p" } },
    { value = "5-1080", label = "5 s · 1080p", surcharge = 20, input = { duration = 5, quality = "1080p" } },
]
default = "5-720"

[[models.options]]
key = "ar"
field = "aspectRatio"
title = "Aspect ratio"
choices = ["16:9", "9:16", "1:1"]
default = "16:9"

[models.picture]
kie_model = "runway"
image = { field = "imageUrl", many = false }

[[models.picture.options]]
key = "m"
field = "duration"
title = "Duration"
choices = [
    { value = "5-720", label = "5 s · 720p", input = { duration = 5, quality = "720p" } },
{ value = "10-720", label = "10 s · 720p", price_factor = 2, input = { duration = 10, quality = "720p" } },
]
default = "5-720"

[[models]]
id = "tflux"
kind = "image"
api = "flux-kontext"
kie_model = "flux-kontext-pro"
name = "Flux Kontext"
price = 20
kie_cost = 5
expected_seconds = 1
good_for = { en = "a test's Flux", ru = "Flux для теста" }

[[models.options]]
key = "ar"
field = "aspectRatio"
title = "Aspect ratio"
choices = ["16:9", "1:1", "9:16"]
default = "16:9"

[models.picture]
kie_model = "flux-kontext-pro"
image = { field = "inputImage", many = false }
options = []

[[models]]
id = "tgpt4o"
kind = "image"
api = "gpt4o-image"
kie_model = "gpt-4o-image"
name = "GPT-4o Image"
price = 30
kie_cost = 6
expected_seconds = 1
good_for = { en = "a test's 4o Image", ru = "4o Image для теста" }

[[models.options]]
key = "ar"
field = "size"
title = "Aspect ratio"
choices = ["1:1", "3:2", "2:3"]
default = "1:1"

[models.picture]
kie_model = "gpt-4o-image"
image = { field = "filesUrl", many = true }
"""


@pytest.fixture(autouse=True)
def offered(tmp_path: Path) -> Iterator[None]:
    """This file's models and the shipped catalog, loaded as `python -m bot` loads CATALOG_PATH's;
    the catalog's own objects back afterwards."""
    path = tmp_path / "dedicated.toml"
    path.write_text(DEDICATED + SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    saved = tuple(MODELS)
    load_catalog(path)
    yield
    MODELS.replace(saved)


@dataclass(frozen=True)
class Case:
    name: str  # the model's, on its picker button
    api: str
    command: str
    options: tuple[str, ...]  # pressed after the model
    body: dict[str, Any]  # what Kie is sent, callBackUrl aside
    path: str  # where
    sent_as: str  # the Bot API method the result goes out with
    price: int


CASES = [
    Case("Veo 3.1 Fast", API_VEO, "/video", ("9:16",),
         {"prompt": "a fox in snow", "aspect_ratio": "9:16", "model": "veo3_fast"},
         "/api/v1/veo/generate", "sendVideo", 120),
    Case("Runway", API_RUNWAY, "/video", ("10 s · 720p", "1:1"),
         {"prompt": "a fox in snow", "duration": 10, "quality": "720p", "aspectRatio": "1:1"},
         "/api/v1/runway/generate", "sendVideo", 120),
    Case("Flux Kontext", API_FLUX, "/image", ("1:1",),
         {"prompt": "a fox in snow", "aspectRatio": "1:1", "model": "flux-kontext-pro"},
         "/api/v1/flux/kontext/generate", "sendPhoto", 20),
    Case("GPT-4o Image", API_GPT4O, "/image", ("2:3",), {"prompt": "a fox in snow", "size": "2:3"},
         "/api/v1/gpt4o-image/generate", "sendPhoto", 30),
]
IDS = [case.api for case in CASES]


@pytest.fixture
async def rich(tg, kie, tmp_path, start_bot):
    """A bot whose people start with 1000 credits."""
    return await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000))


async def choose(person: Person, case: Case, prompt: str = "a fox in snow", **attach: Any) -> dict:
    """The picker walked to ✅ for the case's model and options; returns the person's request."""
    request, picker = await person.ask(f"{case.command} {prompt}", **attach)
    await person.press(picker, case.name)
    for option in case.options:
        await person.press(person.refreshed(picker), option)
    [go] = [b["text"] for b in buttons(person.refreshed(picker)) if b["text"].startswith("✅")]
    assert f"{case.price} credits" in go
    await person.press(person.refreshed(picker), "✅")
    return request


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_each_api_creates_its_own_body_and_delivers(tg, kie, rich, store, case):
    kie.default_plan = TaskPlan(reads_before_done=2)
    alice = Person(tg, 42, "Alice")
    request = await choose(alice, case)
    [sent] = await tg.wait_for(case.sent_as)
    assert sent.params["reply_parameters"]["message_id"] == request["message_id"]
    [task] = kie.tasks.values()
    assert task.api == case.api and task.body == case.body
    [create] = [r for r in kie.requests if r.method == "POST" and r.path.startswith("/api/v1/")
                and not r.path.endswith("download-url")]
    assert create.path == case.path
    assert task.reads == 3  # running, running, done: read in the API's own record
    assert sent.params[case.sent_as.removeprefix("send").lower()] == task.result_urls[0]
    [charge] = await charges(store, 42)
    assert charge.amount == -case.price and await refunds(store, 42) == []


@pytest.mark.parametrize(("case", "options", "body"), [
    (CASES[0], ("9:16",), {"aspect_ratio": "9:16", "model": "veo3_fast", "imageUrls": ["<upload>"]}),
    (CASES[1], ("10 s · 720p",), {"duration": 10, "quality": "720p", "imageUrl": "<upload>"}),
    (CASES[2], (), {"model": "flux-kontext-pro", "inputImage": "<upload>"}),  # edit: its own ratio
    (CASES[3], ("3:2",), {"size": "3:2", "filesUrl": ["<upload>"]}),
], ids=IDS)
async def test_from_a_photo_the_upload_goes_in_the_apis_own_field(tg, kie, rich, case, options,
                                                                  body):
    kie.default_plan = TaskPlan(reads_before_done=1)
    alice = Person(tg, 42, "Alice")
    await choose(alice, dataclasses.replace(case, options=options), photo=PHOTO)
    await tg.wait_for(case.sent_as)
    [task] = kie.tasks.values()
    url = f"{kie.url}/uploads/{next(iter(kie.uploads))}"
    expected = {key: ([url] if value == ["<upload>"] else url if value == "<upload>" else value)
                for key, value in body.items()}
    assert task.body == {"prompt": "a fox in snow", **expected}


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_failure_of_each_api_is_refunded_once(tg, kie, rich, store, case):
    fail_state = "fail" if case.api == API_RUNWAY else "GENERATE_FAILED"
    kie.default_plan = TaskPlan(outcome="fail", reads_before_done=1, fail_state=fail_state,
                                fail_code="400", fail_msg="Inappropriate content detected")
    alice = Person(tg, 42, "Alice")
    await choose(alice, case)
    told = await alice.told(f"❌ {case.name}")
    assert f"{case.price} credits returned" in told.params["text"]
    assert "the content of the request was refused" in told.params["text"]
    await asyncio.sleep(0.3)  # time for a second refund, were there one
    assert len(await refunds(store, 42)) == 1
    assert (await store.get_user(42)).balance == 1000 == await store.ledger_sum(42)
    assert tg.calls_of(case.sent_as) == []


async def test_veo_hd_delivers_the_1080p_file_once_kie_has_it(tg, kie, rich, store):
    kie.default_plan = TaskPlan(reads_before_done=1, hd_pending_reads=2)
    alice = Person(tg, 42, "Alice")
    await choose(alice, Case("Veo 3.1 HD", API_VEO_1080P, "/video", (), {}, "", "sendVideo", 200))
    [video] = await tg.wait_for("sendVideo")
    [task] = kie.tasks.values()
    assert task.body == {"prompt": "a fox in snow", "model": "veo3"}
    assert kie.count("/api/v1/veo/get-1080p-video") == 3  # processing, processing, the file
    assert video.params["video"] == task.hd_urls[0] != task.result_urls[0]
    delivered = {42: GenerationState.DELIVERED}
    assert await states_become(store, delivered) == delivered  # recorded just after the send
    [generation] = await store.generations_in([GenerationState.DELIVERED])
    assert generation.result_urls == task.hd_urls


# -- callbacks ---------------------------------------------------------------------------------

def reads_of(kie: FakeKie, task_id: str) -> int:
    return sum(1 for r in kie.requests if r.method == "GET" and r.query.get("taskId") == task_id)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_callback_of_each_shape_delivers_with_one_read(tg, kie, tmp_path, start_bot, store,
                                                               case):
    """Kie calls back in the API's own shape (Runway: `data.task_id`): the bot finds the task
    and reads it once; no read before (the fallback poll is far off)."""
    port = free_port()
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000, web_host="127.0.0.1",
                                  web_port=port, kie_poll_interval=None,
                                  kie_callback_url=f"http://127.0.0.1:{port}/kie/callbacks"))
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=0.3)
    alice = Person(tg, 42, "Alice")
    await choose(alice, case)
    await tg.wait_for(case.sent_as)
    [task] = kie.tasks.values()
    [callback] = kie.callback_log
    assert callback.status == 200 and callback.task_id == task.task_id
    await asyncio.sleep(0.3)
    assert reads_of(kie, task.task_id) == 1
    assert len(await charges(store, 42)) == 1 and await refunds(store, 42) == []


# -- Kie's other refusals ----------------------------------------------------------------------

SECOND = "kie-second-key-do-not-log"


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    """Two keys, two accounts (only the tests of a key's cap use the second)."""
    async with FakeKie(api_key=KIE_KEY, rate_limit=20, window=WINDOW, more_keys=[SECOND]) as fake:
        yield fake


async def admin_here(tg) -> Person:
    admin = Person(tg, ADMIN_ID, "Admin")
    admin.say("/start")
    await admin.told("Hi")
    return admin


def alerts(tg, text: str) -> list:
    return [c for c in tg.calls_of("sendMessage")
            if c.params["chat_id"] == ADMIN_ID and text in c.params["text"]]


async def test_433_a_capped_key_leaves_the_pool_and_the_next_key_makes_it(tg, kie, tmp_path,
                                                                          start_bot, store):
    await start_bot(make_settings(tmp_path, tg, kie, kie_api_keys=SECOND))
    await admin_here(tg)
    kie.refused_keys[KIE_KEY] = 433  # after the start-up check
    people = [Person(tg, 500 + n, f"P{n}") for n in range(3)]
    for person in people:
        await generate(person, "a capped fox")
        await tg.wait_for("sendPhoto", lambda c, p=person: c.params["chat_id"] == p.id)
    assert {task.key for task in kie.tasks.values()} == {SECOND}
    capped = [r for r in kie.requests if r.key == KIE_KEY and r.path.endswith("createTask")]
    assert len(capped) == 1  # refused once, then out of the pool
    [alert] = alerts(tg, key_id(SecretStr(KIE_KEY)))
    assert "(433)" in alert.params["text"] and KIE_KEY not in alert.params["text"]
    for person in people:
        assert len(await charges(store, person.id)) == 1 and await refunds(store, person.id) == []


async def test_433_on_the_last_key_refunds_and_tells_admins_of_the_cap(tg, kie, bot, store):
    await admin_here(tg)
    kie.refused_keys[KIE_KEY] = 433
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a capped fox")
    told = await alice.told("❌ Imagen 4")
    assert "temporarily unavailable" in told.params["text"]
    assert len(await refunds(store, 42)) == 1 and (await store.get_user(42)).balance == 100
    [alert] = alerts(tg, "usage cap")
    assert "(433)" in alert.params["text"]


async def test_408_no_result_for_10_minutes_is_refunded_at_once_with_its_reason(tg, kie, rich, store):
    kie.default_plan = TaskPlan(outcome="never")
    alice = Person(tg, 42, "Alice")
    await choose(alice, CASES[0])
    while not kie.tasks or next(iter(kie.tasks.values())).reads == 0:  # made, and running
        await asyncio.sleep(0.01)
    kie.fail_reads_next(408)
    told = await alice.told("❌ Veo 3.1 Fast")
    assert "no result for over 10 minutes" in told.params["text"]
    assert "120 credits returned" in told.params["text"]
    await asyncio.sleep(0.3)
    assert len(await refunds(store, 42)) == 1 and (await store.get_user(42)).balance == 1000
    [generation] = await store.generations_in([GenerationState.FAILED])
    assert generation.failure == "kie_timeout"


async def test_550_a_full_queue_is_refunded_with_its_reason(tg, kie, rich, store):
    kie.fail_create_next(550)
    alice = Person(tg, 42, "Alice")
    await choose(alice, CASES[3])
    told = await alice.told("❌ GPT-4o Image")
    assert "queue at Kie.ai is full" in told.params["text"]
    assert len(await refunds(store, 42)) == 1 and (await store.get_user(42)).balance == 1000
    assert kie.count("/api/v1/gpt4o-image/generate") == 1 and kie.tasks == {}


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_restart_in_the_middle_of_each_apis_task_delivers_it_once(tg, kie, tmp_path,
                                                                         start_bot, store, case):
    """The bot stopped abruptly while Kie runs the task: the next start reads it again in its
    API's own record and delivers it once, charged once."""
    settings = make_settings(tmp_path, tg, kie, starting_credits=1000)
    kie.default_plan = TaskPlan(reads_before_done=1000)
    first = await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    await choose(alice, case)
    while not [t for t in kie.tasks.values() if t.reads]:
        await asyncio.sleep(0.01)
    await first.kill()
    [task] = kie.tasks.values()
    reads_before = task.reads
    kie.finish(task.task_id)

    await start_bot(settings)
    await tg.wait_for(case.sent_as)
    await asyncio.sleep(0.3)  # time for a second delivery, were there one
    assert len(tg.calls_of(case.sent_as)) == 1 and task.reads > reads_before
    assert task.api == case.api and len(kie.tasks) == 1  # read again, not created again
    assert [c.amount for c in await charges(store, 42)] == [-case.price]
    assert await refunds(store, 42) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_each_apis_task_past_its_deadline_is_refunded_once(tg, kie, tmp_path, start_bot,
                                                                 store, case):
    kie.default_plan = TaskPlan(outcome="never")
    await start_bot(make_settings(tmp_path, tg, kie, starting_credits=1000,
                                  kie_deadline_video=1.0, kie_deadline_image=1.0))
    alice = Person(tg, 42, "Alice")
    await choose(alice, case)
    told = await alice.told(f"❌ {case.name}", timeout=5)
    assert "it took too long" in told.params["text"]
    await asyncio.sleep(0.3)  # time for a second refund, were there one
    [refund] = await refunds(store, 42)
    assert refund.amount == case.price and refund.note == "timeout"
    assert (await store.get_user(42)).balance == 1000 == await store.ledger_sum(42)
    assert tg.calls_of(case.sent_as) == []
