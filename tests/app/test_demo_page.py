"""The demo's chat page over the fake Bot API, with the test playing the bot through the Bot
API itself: a person's messages, photos, presses and payments become updates; what the bot sends,
edits, deletes and answers shows in the chat's snapshot; media come through the page, and only
from loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from demo.page import ChatPage, Person
from testkit.e2e import free_port
from testkit.fakes.telegram import FakeTelegram

ALICE = Person(4242, "Alice", "person", ("/start",))
ADMIN = Person(1000, "Admin", "admin", ("/stats",))


class Page:
    def __init__(self, chat: ChatPage, url: str, client: aiohttp.ClientSession, tg: FakeTelegram) -> None:
        self.chat, self.url, self.client, self.tg = chat, url, client, tg

    async def post(self, path: str, **body: Any) -> tuple[int, Any]:
        async with self.client.post(f"{self.url}{path}", json={"user": ALICE.id, **body}) as response:
            ok = response.status == 200
            return response.status, await response.json() if ok else await response.text()

    async def bot(self, method: str, **params: Any) -> Any:
        """A call of the bot's to the fake Bot API."""
        async with self.client.post(f"{self.tg.url}/bot{self.tg.token}/{method}", json=params) as response:
            body = await response.json()
            assert body["ok"], body
            return body["result"]

    def shown(self) -> dict[str, Any]:
        return self.chat.snapshot(ALICE)


@pytest.fixture
async def page(tg: FakeTelegram) -> AsyncIterator[Page]:
    chat = ChatPage(tg, [ALICE, ADMIN])
    port = free_port()
    await chat.start(port)
    try:
        async with aiohttp.ClientSession() as client:
            yield Page(chat, f"http://127.0.0.1:{port}", client, tg)
    finally:
        await chat.stop()


async def test_messages_commands_and_photos_become_updates(page: Page) -> None:
    assert (await page.post("/api/send", text="/image a fox"))[0] == 200
    assert (await page.post("/api/photo", caption="/image make it snowy"))[0] == 200
    first, second = (u["message"] for u in page.tg.update_log)
    assert first["text"] == "/image a fox" and first["entities"][0]["type"] == "bot_command"
    assert first["from"]["id"] == ALICE.id and first["chat"]["id"] == ALICE.id
    assert second["caption"] == "/image make it snowy" and second["photo"]
    status, text = await page.post("/api/send", text="  ")
    assert status == 400 and "type something" in text
    status, _ = await page.post("/api/send", text="hi", reply_to=999)
    assert status == 400
    async with page.client.post(f"{page.url}/api/send", json={"user": 7, "text": "hi"}) as response:
        assert response.status == 400  # only the demo's two people


async def test_hostile_text_is_escaped_and_formatting_kept(page: Page) -> None:
    await page.post("/api/send", text='<img src=x onerror="alert(1)">')
    await page.bot("sendMessage", chat_id=ALICE.id, parse_mode="HTML",
                   text="<b>Hi</b> &lt;script&gt;alert(1)&lt;/script&gt; <i>there</i>")
    mine, bot = page.shown()["messages"]
    assert mine["mine"] and mine["html"] == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    assert not bot["mine"]
    assert bot["html"] == "<b>Hi</b> &lt;script&gt;alert(1)&lt;/script&gt; <i>there</i>"


async def test_edits_deletions_replies_and_force_reply_show(page: Page) -> None:
    request = page.tg.send_message(page.tg.users[ALICE.id], "/image")
    sent = await page.bot("sendMessage", chat_id=ALICE.id, text="Choose:",
                          reply_parameters={"message_id": request["message_id"]})
    await page.bot("editMessageText", chat_id=ALICE.id, message_id=sent["message_id"], text="⏳ 0:03")
    question = await page.bot("sendMessage", chat_id=ALICE.id, text="What should it show?",
                              reply_markup={"force_reply": True, "input_field_placeholder": "a fox"})
    gone = await page.bot("sendMessage", chat_id=ALICE.id, text="soon gone")
    await page.bot("deleteMessage", chat_id=ALICE.id, message_id=gone["message_id"])
    shown = {m["id"]: m for m in page.shown()["messages"]}
    assert gone["message_id"] not in shown
    status = shown[sent["message_id"]]
    assert status["edited"] and status["html"] == "⏳ 0:03"
    assert status["reply"] == {"id": request["message_id"], "text": "/image"}
    assert shown[question["message_id"]]["force_reply"] == "a fox"
    assert "force_reply" not in status
    assert page.chat.snapshot(ADMIN)["messages"] == []  # each person sees their own chat


async def test_a_press_is_a_callback_query_and_its_answer_shows(page: Page) -> None:
    picker = await page.bot("sendMessage", chat_id=ALICE.id, text="Choose:", reply_markup={
        "inline_keyboard": [[{"text": "Imagen 4 · 40", "callback_data": "pk:1:m:imagen4"}],
                            [{"text": "Docs", "url": "https://kie.ai"}]]})
    [model, docs] = [row[0] for row in page.shown()["messages"][0]["buttons"]]
    assert model == {"text": "Imagen 4 · 40", "callback_data": "pk:1:m:imagen4"}
    assert docs == {"text": "Docs", "url": "https://kie.ai"}
    assert (await page.post("/api/press", message_id=picker["message_id"], data="pk:9:forged"))[0] == 400
    assert (await page.post("/api/press", message_id=picker["message_id"], data="pk:1:m:imagen4"))[0] == 200
    [update] = page.tg.update_log
    query = update["callback_query"]
    assert query["data"] == "pk:1:m:imagen4" and query["from"]["id"] == ALICE.id
    await page.bot("answerCallbackQuery", callback_query_id=query["id"], text="Not yours", show_alert=True)
    assert page.shown()["answers"] == [{"id": query["id"], "text": "Not yours", "alert": True}]


async def test_an_invoice_is_paid_once_the_bot_accepts_the_checkout(page: Page) -> None:
    invoice = await page.bot("sendInvoice", chat_id=ALICE.id, title="500 credits", description="Credits",
                             payload="500:200", currency="XTR", prices=[{"label": "500", "amount": 200}])
    assert page.shown()["messages"][0]["invoice"]["total_amount"] == 200

    async def accept(ok: bool) -> None:
        while not (queries := [u for u in page.tg.updates if "pre_checkout_query" in u]):
            await asyncio.sleep(0.01)
        page.tg.updates.clear()
        answer: dict[str, Any] = {"ok": ok} if ok else {"ok": False, "error_message": "Banned"}
        await page.bot("answerPreCheckoutQuery",
                       pre_checkout_query_id=queries[-1]["pre_checkout_query"]["id"], **answer)

    (_, refused), _ = await asyncio.gather(page.post("/api/pay", message_id=invoice["message_id"]),
                                           accept(False))
    assert refused == {"ok": False, "error": "Banned"} and not page.tg.charges
    (_, paid), _ = await asyncio.gather(page.post("/api/pay", message_id=invoice["message_id"]),
                                        accept(True))
    assert paid == {"ok": True}
    [charge] = page.tg.charges.values()
    assert charge.user_id == ALICE.id and charge.total_amount == 200
    assert page.shown()["messages"][-1]["html"] == "⭐ Paid 200 XTR"


async def test_media_come_through_the_page_from_loopback_only(page: Page) -> None:
    uploaded = page.tg.send_message(page.tg.users[ALICE.id], "", photo=b"\x89PNG-not-really")
    async with page.client.get(f"{page.url}/media/{uploaded['photo'][-1]['file_id']}") as response:
        assert response.status == 200 and response.content_type == "image/png"
    outside = await page.bot("sendPhoto", chat_id=ALICE.id, photo="https://example.com/fox.png")
    async with page.client.get(f"{page.url}/media/{outside['photo'][-1]['file_id']}") as response:
        assert response.status == 404  # never fetched: the demo reaches no network
    async with page.client.get(f"{page.url}/media/unknown") as response:
        assert response.status == 404
    [media] = page.shown()["messages"][-1]["media"]
    assert media["kind"] == "photo" and media["src"].startswith("/media/photo-")
    async with page.client.get(f"{page.url}/") as response:
        assert response.status == 200 and "/static/app.js" in await response.text()


async def test_the_event_stream_sends_a_snapshot_at_each_change(page: Page) -> None:
    async with page.client.get(f"{page.url}/api/events", params={"user": str(ALICE.id)}) as response:
        assert response.content_type == "text/event-stream"

        async def next_snapshot() -> dict[str, Any]:
            while not (line := (await response.content.readline()).decode()).startswith("data: "):
                pass
            return json.loads(line.removeprefix("data: "))

        assert (await asyncio.wait_for(next_snapshot(), 5))["messages"] == []
        await page.post("/api/send", text="/start")
        [message] = (await asyncio.wait_for(next_snapshot(), 5))["messages"]
        assert message["html"] == "/start" and message["mine"]
