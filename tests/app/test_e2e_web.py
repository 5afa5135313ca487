"""End to end: the bot's web server — /healthz, Kie.ai callbacks (they only wake the tracker,
which confirms with Kie), forged callbacks changing nothing, and a task whose id the bot never
stored delivered free when its callback comes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from bot.services.callback_url import path_secret
from bot.store import GenerationState
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person
from testkit.e2e import WEBHOOK_SECRET, charges, free_port, generate, refunds
from testkit.fakes.kie import TaskPlan

HMAC_KEY = "kie-hmac-test-key"


def web_settings(tmp_path, tg, kie, **overrides: Any):
    port = free_port()
    values: dict[str, Any] = {
        "web_host": "127.0.0.1", "web_port": port,
        "kie_callback_url": f"http://127.0.0.1:{port}/kie/callbacks",
        # No poll before the first fallback read (2 × the model's usual time): what moves a
        # task is its callback.
        "kie_poll_interval": None, **overrides}
    return make_settings(tmp_path, tg, kie, **values)


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def post(url: str, body: Any = None, *, data: bytes | None = None,
               headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, \
            session.post(url, json=body if data is None else None, data=data,
                         headers=headers) as response:
        return response.status


def reads_of(kie, task_id: str) -> int:
    return sum(1 for r in kie.requests if r.path.endswith(("recordInfo", "record-info"))
               and r.query.get("taskId") == task_id)


async def running_task(store, kie) -> tuple[int, str]:
    """The one generation, once Kie has its task and the bot has stored the task id."""
    for _ in range(200):
        [generation] = await store.generations_in(list(GenerationState)) or [None]
        if generation is not None and generation.task_id:
            return generation.id, generation.task_id
        await asyncio.sleep(0.02)
    raise AssertionError("no running task")


async def test_healthz_answers_and_says_503_when_the_database_is_gone(tg, kie, tmp_path, start_bot):
    running = await start_bot(web_settings(tmp_path, tg, kie))
    url = f"http://127.0.0.1:{running.settings.web.port}/healthz"
    for _ in range(100):  # the tracker's first pass ends just after the start
        status, body = await get_json(url)
        if body["tracker"]["last_run"] is not None:
            break
        await asyncio.sleep(0.02)
    assert status == 200 and body["ok"] and body["database"]
    assert body["tracker"]["alive"] and body["open_generations"] == 0
    assert body["tracker"]["last_run"] is not None
    reads = len(kie.requests)
    await running.app.parts.store.close()  # the database goes away under the running bot
    status, body = await get_json(url)
    assert status == 503 and not body["ok"] and not body["database"]
    assert len(kie.requests) == reads  # /healthz never calls Kie


async def test_a_callback_delivers_with_exactly_one_status_read(tg, kie, tmp_path, start_bot, store):
    await start_bot(web_settings(tmp_path, tg, kie))
    kie.default_plan = TaskPlan(reads_before_done=0)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "called back")
    _, task_id = await running_task(store, kie)
    await asyncio.sleep(0.3)
    assert reads_of(kie, task_id) == 0  # the fallback poll is far off
    kie.finish(task_id)
    assert await kie.send_callback(task_id) == 200
    await tg.wait_for("sendPhoto")
    await asyncio.sleep(0.3)
    assert reads_of(kie, task_id) == 1
    assert len(kie.requests) == 3  # the start-up check of the key, the create and that one read
    assert len(tg.calls_of("sendPhoto")) == 1 and len(await charges(store, 42)) == 1


async def test_suno_stage_callbacks_cost_no_read_only_the_last_one_does(
        tg, kie, tmp_path, start_bot, store):
    """Suno calls back at "text", "first" and "complete": only the last is worth a read."""
    await start_bot(web_settings(tmp_path, tg, kie))
    kie.auto_callbacks = True
    kie.default_plan = TaskPlan(finish_after=0.6)  # through TEXT_SUCCESS and FIRST_SUCCESS
    alice = Person(tg, 42, "Alice")
    await generate(alice, "a song, called back", "Suno v4.5", command="/music")
    _, task_id = await running_task(store, kie)
    await tg.wait_for("sendMediaGroup")
    stages = [c.stage for c in kie.callback_log if c.task_id == task_id]
    assert stages == ["text", "first", "complete"]
    await asyncio.sleep(0.3)
    assert reads_of(kie, task_id) == 1
    assert len(tg.calls_of("sendMediaGroup")) == 1 and len(await charges(store, 42)) == 1


async def test_a_callback_names_the_task_the_bot_sent(tg, kie, tmp_path, start_bot, store):
    settings = web_settings(tmp_path, tg, kie)
    await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "where to call")
    generation_id, _ = await running_task(store, kie)
    [create] = kie.creates
    assert create["callBackUrl"] == (f"http://127.0.0.1:{settings.web.port}/kie/callbacks/"
                                     f"{path_secret(settings.bot.token)}/{generation_id}")
    assert settings.bot.token.get_secret_value() not in create["callBackUrl"]


@pytest.mark.parametrize("forgery", ["wrong secret", "unknown generation", "not json",
                                     "no task id", "another task"])
async def test_forged_callbacks_change_nothing(tg, kie, tmp_path, start_bot, store, forgery):
    settings = web_settings(tmp_path, tg, kie)
    await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    await generate(alice, "forged")
    generation_id, task_id = await running_task(store, kie)
    kie.finish(task_id)
    base = f"http://127.0.0.1:{settings.web.port}/kie/callbacks"
    secret = path_secret(settings.bot.token)
    status = {
        "wrong secret": lambda: post(f"{base}/{'0' * 32}/{generation_id}", {"data": {"taskId": task_id}}),
        "unknown generation": lambda: post(f"{base}/{secret}/99999", {"data": {"taskId": task_id}}),
        "not json": lambda: post(f"{base}/{secret}/{generation_id}", data=b"<html>"),
        "no task id": lambda: post(f"{base}/{secret}/{generation_id}", {"data": {}}),
        "another task": lambda: post(f"{base}/{secret}/{generation_id}", {"data": {"taskId": "x1"}}),
    }[forgery]
    expected = {"wrong secret": 404, "unknown generation": 200, "not json": 400,
                "no task id": 400, "another task": 200}[forgery]
    assert await status() == expected
    await asyncio.sleep(0.3)
    assert reads_of(kie, task_id) == 0 and tg.calls_of("sendPhoto") == []
    assert (await store.get_generation(generation_id)).state is GenerationState.RUNNING


@pytest.mark.parametrize("signature", ["missing", "wrong", "stale", "valid"])
async def test_signed_callbacks_need_a_fresh_valid_signature(tg, kie, tmp_path, start_bot, store,
                                                             signature):
    await start_bot(web_settings(tmp_path, tg, kie, kie_webhook_hmac_key=HMAC_KEY))
    await generate(Person(tg, 42, "Alice"), "signed")
    _, task_id = await running_task(store, kie)
    kie.finish(task_id)
    if signature == "missing":
        status = await kie.send_callback(task_id)
    elif signature == "wrong":
        status = await kie.send_callback(task_id, hmac_key="not-the-key")
    elif signature == "stale":
        status = await kie.send_callback(task_id, hmac_key=HMAC_KEY, timestamp=int(time.time()) - 600)
    else:
        status = await kie.send_callback(task_id, hmac_key=HMAC_KEY)
    if signature == "valid":
        assert status == 200
        await tg.wait_for("sendPhoto")
        assert reads_of(kie, task_id) == 1
    else:
        assert status == 401
        await asyncio.sleep(0.3)
        assert reads_of(kie, task_id) == 0 and tg.calls_of("sendPhoto") == []


async def test_a_repeated_callback_after_delivery_does_nothing(tg, kie, tmp_path, start_bot, store):
    await start_bot(web_settings(tmp_path, tg, kie))
    await generate(Person(tg, 42, "Alice"), "twice")
    _, task_id = await running_task(store, kie)
    kie.finish(task_id)
    assert await kie.send_callback(task_id) == 200
    await tg.wait_for("sendPhoto")
    await asyncio.sleep(0.2)
    assert await kie.send_callback(task_id, shape="flat") == 200
    await asyncio.sleep(0.3)
    assert reads_of(kie, task_id) == 1 and len(tg.calls_of("sendPhoto")) == 1


async def test_a_lost_callback_is_made_up_for_by_the_fallback_poll(tg, kie, tmp_path, start_bot, store):
    # KIE_POLL_INTERVAL still decides the first read with callbacks on; later reads are rare.
    await start_bot(web_settings(tmp_path, tg, kie, kie_poll_interval=0.3,
                                 kie_poll_max_interval=0.2))
    kie.default_plan = TaskPlan(reads_before_done=1)
    await generate(Person(tg, 42, "Alice"), "lost call")
    _, task_id = await running_task(store, kie)
    await tg.wait_for("sendPhoto", timeout=10)  # no callback at all
    assert reads_of(kie, task_id) == 2


@pytest.mark.parametrize(("lost", "failure", "told"), [
    ("the bot died", "interrupted", "the bot restarted before the task was sent"),
    ("the answer broke off", "unanswered", "Kie.ai did not answer in time"),
])
async def test_a_task_whose_id_was_never_stored_is_delivered_free_when_it_calls_back(
        lost, failure, told, tg, kie, tmp_path, start_bot, store):
    """Kie made the task, but the bot never learned its id: it died before storing Kie's
    answer, or the answer never came (the connection broke). The charge is refunded, saying
    why; a callback naming the task later delivers its result after all, free."""
    settings = web_settings(tmp_path, tg, kie)
    first = await start_bot(settings)
    alice = Person(tg, 42, "Alice")
    if lost == "the bot died":
        kie.latency = 1.0  # Kie takes the create, but its answer is still on the way...
        await generate(alice, "lost answer")
        for _ in range(200):
            if kie.tasks:
                break
            await asyncio.sleep(0.02)
        await first.kill()  # ...when the bot dies
        kie.latency = 0.0
        await start_bot(settings)  # the charge is refunded as interrupted
    else:
        kie.broken_create_answers = 1
        await generate(alice, "lost answer")
    await alice.told(told)
    [task_id] = kie.tasks
    [generation] = await store.generations_in([GenerationState.FAILED])
    assert generation.failure == failure and generation.task_id is None
    assert len(kie.creates) == 1 and len(await refunds(store, 42)) == 1  # never sent twice

    kie.finish(task_id)
    assert await kie.send_callback(task_id) == 200
    [photo] = await tg.wait_for("sendPhoto")
    assert photo.params["chat_id"] == 42
    recovered = await store.get_generation(generation.id)
    assert recovered.task_id == task_id and recovered.failure_detail == "recovered by callback"
    assert await charges(store, 42) and len(await refunds(store, 42)) == 1  # free: refund stands
    user = await store.get_user(42)
    assert user.balance == 100 == await store.ledger_sum(42)
    assert await kie.send_callback(task_id) == 200  # again: nothing more
    await asyncio.sleep(0.3)
    assert len(tg.calls_of("sendPhoto")) == 1


def webhook_settings(tmp_path, tg, kie, **overrides: Any):
    port = free_port()
    return make_settings(tmp_path, tg, kie, web_host="127.0.0.1", web_port=port,
                         webhook_url=f"http://127.0.0.1:{port}/telegram",
                         webhook_secret=WEBHOOK_SECRET, **overrides)


async def test_webhook_mode_takes_updates_by_post_and_never_polls(tg, kie, tmp_path, start_bot, store):
    await start_bot(webhook_settings(tmp_path, tg, kie))
    [hook] = tg.calls_of("setWebhook")
    assert hook.params["secret_token"] == WEBHOOK_SECRET
    assert {"message", "callback_query", "pre_checkout_query"} <= set(hook.params["allowed_updates"])
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi, Alice!")
    await generate(alice, "by webhook")
    await tg.wait_for("sendPhoto")
    await tg.wait_webhook_idle()
    assert tg.calls_of("getUpdates") == []
    delivered = tg.webhook_delivered
    assert len(delivered) == len(set(delivered)) >= 4  # /start, /image, two presses, ✅
    assert len(await charges(store, 42)) == 1


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
async def test_webhook_refuses_a_request_without_the_right_secret(tg, kie, tmp_path, start_bot,
                                                                  store, secret):
    await start_bot(webhook_settings(tmp_path, tg, kie))
    forged = {"update_id": 900001, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 66, "type": "private"},
        "from": {"id": 66, "is_bot": False, "first_name": "Mallory"}, "text": "/start"}}
    assert await tg.post_to_webhook(forged, secret=secret) == 401
    await asyncio.sleep(0.3)
    assert await store.get_user(66) is None and tg.sent_to(66) == []


async def test_a_repeated_webhook_update_is_harmless(tg, kie, tmp_path, start_bot, store):
    await start_bot(webhook_settings(tmp_path, tg, kie))
    alice, admin = Person(tg, 42, "Alice"), Person(tg, ADMIN_ID, "Admin")
    alice.say("/start")
    await alice.told("Hi")
    command = admin.say("/topup 42 50")
    await admin.told("Added 50 credits")
    tg.redeliver(command)
    await tg.wait_webhook_idle()
    await asyncio.sleep(0.3)
    assert (await store.get_user(42)).balance == 150 == await store.ledger_sum(42)
    assert len([c for c in tg.calls_of("sendMessage") if "Added 50" in c.params["text"]]) == 1


async def test_a_webhook_payment_is_credited_before_telegram_gets_its_answer(
        tg, kie, tmp_path, start_bot, store):
    """Once Telegram has its 200 it never sends the update again: the payment must be in the
    ledger by then. Here the handler never runs (an earlier, killed run recorded the update id
    before crediting), so only crediting ahead of the answer can save the money."""
    await start_bot(webhook_settings(tmp_path, tg, kie))
    alice = Person(tg, 42, "Alice")
    assert await store.first_sight_of_update(tg.next_update_id)
    charge_id, payment = tg.pay(alice.user, currency="XTR", total_amount=50,
                                invoice_payload="100:50")
    for _ in range(200):
        if any(post.ok for post in tg.webhook_posts_of(payment)):
            break
        await asyncio.sleep(0.01)
    assert await store.get_purchase(charge_id) is not None  # at the moment of the 200
    assert (await store.get_user(42)).balance == 100 + 100 == await store.ledger_sum(42)


async def test_a_webhook_payment_the_store_refuses_gets_500_and_is_credited_on_the_retry(
        tg, kie, tmp_path, start_bot, store):
    running = await start_bot(webhook_settings(tmp_path, tg, kie))
    parts = running.app.parts
    assert parts is not None
    record, refusals = parts.store.record_purchase, []

    async def refuse_once(*args: Any, **kwargs: Any) -> Any:
        if not refusals:
            refusals.append(args)
            raise OSError("disk I/O error")
        return await record(*args, **kwargs)

    parts.store.record_purchase = refuse_once  # type: ignore[method-assign]
    alice = Person(tg, 42, "Alice")
    charge_id, payment = tg.pay(alice.user, currency="XTR", total_amount=50,
                                invoice_payload="100:50")
    await alice.told("Payment received: 100 credits added")
    assert [post.status for post in tg.webhook_posts_of(payment)] == [500, 200]
    assert refusals and (await store.get_purchase(charge_id)) is not None
    assert (await store.get_user(42)).balance == 200 == await store.ledger_sum(42)


async def test_polling_drops_a_leftover_webhook_and_starts_even_if_that_is_refused(
        tg, kie, tmp_path, start_bot):
    tg.webhook_url = "https://old.example/hook"  # left by an earlier run in webhook mode
    await start_bot(make_settings(tmp_path, tg, kie))
    assert tg.webhook_url == "" and tg.calls_of("deleteWebhook")
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")


@pytest.mark.parametrize("method, error_code, description", [
    ("deleteWebhook", 404, "Not Found: method not found"),  # a Bot API server without it
    ("setMyCommands", 500, "Internal Server Error"),  # the menu is a convenience
])
async def test_a_refused_start_up_call_does_not_stop_the_bot(tg, kie, tmp_path, start_bot, method,
                                                              error_code, description):
    tg.fail_next(method, error_code=error_code, description=description)
    await start_bot(make_settings(tmp_path, tg, kie))
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")
