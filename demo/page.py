"""The chat page: one HTML page, one JS file, one CSS file, and a small JSON API over the fake
Bot API. A person's messages and presses become updates the bot receives (as Telegram would
send them); what the bot sent into that person's chat comes back as server-sent events, one
snapshot of the chat each time it changes (new messages, edits, deletions, answers to presses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from demo.media import STATIC, sample_photo
from demo.render import Message, to_html
from testkit.fakes.telegram import FakeTelegram, is_loopback

SHOWN = 100  # the last messages of a chat the page shows
TICK = 0.15  # seconds between two looks at a chat for a change
TYPING = 5.0  # seconds a sendChatAction shows "typing…", as Telegram's clients do
CHECKOUT_WAIT = 10.0  # seconds the bot has to answer a pre-checkout query (Telegram's limit)
_MEDIA = ("photo", "video", "animation", "audio", "voice", "video_note", "document", "sticker")


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    role: str  # what the page says they are: "person" or "admin"
    chips: tuple[str, ...]  # example messages the page offers as one-click buttons


class ChatPage:
    def __init__(self, tg: FakeTelegram, people: list[Person]) -> None:
        self.tg = tg
        self.people = {p.id: p for p in people}
        for person in people:
            tg.user(person.id, person.name, username=person.name.lower())
        self._presses: dict[int, list[str]] = {p.id: [] for p in people}  # callback query ids
        self._force_replies: dict[tuple[int, int], str] = {}  # (chat, message) -> placeholder
        self._scanned = 0  # tg.calls read into _force_replies so far
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/api/people", self._people)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/send", self._send)
        app.router.add_post("/api/photo", self._photo)
        app.router.add_post("/api/press", self._press)
        app.router.add_post("/api/pay", self._pay)
        app.router.add_get("/media/{file_id}", self._media)
        return app

    async def start(self, port: int) -> None:
        """Serve on 127.0.0.1:`port` (OSError when it is taken)."""
        self._client = aiohttp.ClientSession()
        # A short shutdown timeout: the pages' event streams are cut rather than waited for.
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    # -- what the page shows ------------------------------------------------------------------

    def _scan_force_replies(self) -> None:
        """The fake keeps no reply keyboard in its messages: which ones asked for a reply
        (ForceReply) is read from the bot's calls, so the page can reply to them as a
        Telegram client does."""
        calls = self.tg.calls
        for call in calls[self._scanned:]:
            markup = call.params.get("reply_markup") if call.ok else None
            if (call.method == "sendMessage" and isinstance(markup, dict)
                    and markup.get("force_reply") and isinstance(call.response, dict)):
                key = (call.response["chat"]["id"], call.response["message_id"])
                self._force_replies[key] = str(markup.get("input_field_placeholder") or "")
        self._scanned = len(calls)

    def _message(self, message: Message) -> dict[str, Any]:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        shown: dict[str, Any] = {
            "id": message_id,
            "mine": message.get("from", {}).get("id") != self.tg.bot_user["id"],
            "edited": "edit_date" in message,
            "html": to_html(message.get("text") or message.get("caption") or "",
                            message.get("entities") or message.get("caption_entities")),
            "media": [],
            "buttons": [[{key: b[key] for key in ("text", "callback_data", "url") if key in b}
                         for b in row] for row in (message.get("reply_markup") or {}).get(
                             "inline_keyboard", [])],
        }
        for kind in _MEDIA:
            if kind in message:
                found = message[kind][-1] if kind == "photo" else message[kind]
                shown["media"].append({"kind": kind, "src": f"/media/{found['file_id']}",
                                       "name": found.get("file_name") or kind})
        if (reply := message.get("reply_to_message")) is not None:
            snippet = reply.get("text") or reply.get("caption") or next(
                (f"[{kind}]" for kind in _MEDIA if kind in reply), "")
            shown["reply"] = {"id": reply["message_id"], "text": snippet[:80]}
        if (invoice := message.get("invoice")) is not None:
            shown["invoice"] = {key: invoice.get(key) for key in ("title", "description",
                                                                    "total_amount", "currency")}
        if (payment := message.get("successful_payment")) is not None:
            shown["html"] = f"⭐ Paid {int(payment['total_amount'])} {payment['currency']}"
        if (placeholder := self._force_replies.get((chat_id, message_id))) is not None:
            shown["force_reply"] = placeholder
        return shown

    def snapshot(self, person: Person) -> dict[str, Any]:
        self._scan_force_replies()
        stored = self.tg.messages.get(person.id, {})
        messages = [self._message(stored[i]) for i in sorted(stored)[-SHOWN:]]
        answers = [{"id": query, "text": answer["text"], "alert": bool(answer.get("show_alert"))}
                   for query in self._presses[person.id]
                   if (answer := self.tg.callback_answers.get(query)) and answer.get("text")]
        return {"messages": messages, "answers": answers, "typing": self._typing(person.id)}

    def _typing(self, chat_id: int) -> bool:
        since = time.monotonic() - TYPING
        for call in reversed(self.tg.calls):
            if call.time < since:
                return False
            if call.method == "sendChatAction" and call.params.get("chat_id") == chat_id:
                return True
        return False

    # -- HTTP ---------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _people(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": p.id, "name": p.name, "role": p.role, "chips": p.chips}
                                  for p in self.people.values()])

    def _person(self, value: Any) -> Person:
        try:
            return self.people[int(value)]
        except (TypeError, ValueError, KeyError):
            raise web.HTTPBadRequest(text="unknown person") from None

    async def _body(self, request: web.Request) -> tuple[Person, dict[str, Any]]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="a JSON body, please") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="a JSON object, please")
        return self._person(body.get("user")), body

    def _stored(self, person: Person, message_id: Any) -> Message | None:
        if message_id is None:
            return None
        try:
            found = self.tg.message(person.id, int(message_id))
        except (TypeError, ValueError):
            found = None
        if found is None:
            raise web.HTTPBadRequest(text="that message is gone")
        return found

    async def _events(self, request: web.Request) -> web.StreamResponse:
        person = self._person(request.query.get("user"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        last = ""
        with contextlib.suppress(ConnectionError):
            while True:
                shown = json.dumps(self.snapshot(person), ensure_ascii=False)
                if shown != last:
                    await response.write(f"data: {shown}\n\n".encode())
                    last = shown
                await asyncio.sleep(TICK)
        return response

    async def _send(self, request: web.Request) -> web.Response:
        person, body = await self._body(request)
        text = str(body.get("text") or "").strip()
        if not text:
            raise web.HTTPBadRequest(text="type something first")
        reply_to = self._stored(person, body.get("reply_to"))
        self.tg.send_message(self.tg.users[person.id], text, reply_to=reply_to)
        return web.json_response({"ok": True})

    async def _photo(self, request: web.Request) -> web.Response:
        person, body = await self._body(request)
        reply_to = self._stored(person, body.get("reply_to"))
        self.tg.send_message(self.tg.users[person.id], str(body.get("caption") or "").strip(),
                             photo=sample_photo(), reply_to=reply_to)
        return web.json_response({"ok": True})

    async def _press(self, request: web.Request) -> web.Response:
        person, body = await self._body(request)
        message = self._stored(person, body.get("message_id"))
        assert message is not None
        data = str(body.get("data") or "")
        if data not in {b.get("callback_data") for row in (message.get("reply_markup") or {})
                        .get("inline_keyboard", []) for b in row}:
            raise web.HTTPBadRequest(text="that button is gone")
        query = self.tg.press(self.tg.users[person.id], message, data)
        self._presses[person.id].append(query["id"])
        return web.json_response({"ok": True})

    async def _pay(self, request: web.Request) -> web.Response:
        """Pay an invoice as Telegram does: a pre-checkout query the bot must accept, then the
        successful payment."""
        person, body = await self._body(request)
        invoice = self._stored(person, body.get("message_id"))
        assert invoice is not None
        user = self.tg.users[person.id]
        query = self.tg.pre_checkout(user, invoice)
        deadline = time.monotonic() + CHECKOUT_WAIT
        while (answer := self.tg.checkout_answers.get(query["id"])) is None:
            if time.monotonic() > deadline:
                return web.json_response({"ok": False, "error": "the bot did not answer in time"})
            await asyncio.sleep(0.05)
        if not answer.get("ok"):
            return web.json_response({"ok": False, "error": str(answer.get("error_message") or "")})
        self.tg.pay(user, invoice)
        return web.json_response({"ok": True})

    async def _media(self, request: web.Request) -> web.Response:
        """A file in a chat: the bytes the fake holds, or the file at the (loopback) URL the
        bot sent, fetched from the fake Kie.ai. Nothing else is ever fetched."""
        data, url, mime = self.tg.file_content(request.match_info["file_id"])
        if data is not None:
            return web.Response(body=data, content_type=_sniff(data) or mime or "application/octet-stream")
        if url is None or not is_loopback(urllib.parse.urlsplit(url).hostname) or self._client is None:
            raise web.HTTPNotFound()
        async with self._client.get(url) as upstream:
            if upstream.status != 200:
                raise web.HTTPNotFound()
            return web.Response(body=await upstream.read(), content_type=upstream.content_type)


def _sniff(data: bytes) -> str | None:
    """People's photos are PNGs the fake files as JPEG: the browser is told what they are."""
    return "image/png" if data.startswith(b"\x89PNG") else None
