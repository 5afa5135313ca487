"""A person's side of a chat with the bot, on top of the fake Bot API: send, press, wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from testkit.fakes.telegram import Call, FakeTelegram

Dict = dict[str, Any]


def buttons(message: Dict) -> list[Dict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button(message: Dict, starts_with: str) -> str:
    """The callback data of the button whose text starts with `starts_with`."""
    found = [b for b in buttons(message) if b["text"].startswith(starts_with)]
    assert found, f"no button {starts_with!r} in {[b['text'] for b in buttons(message)]}"
    return found[0]["callback_data"]


class Person:
    def __init__(self, tg: FakeTelegram, user_id: int, name: str = "User",
                 username: str | None = None, language: str = "en") -> None:
        self.tg = tg
        self.user = tg.user(user_id, name, username=username, language_code=language)
        self.id = user_id
        self._since = 0  # told() looks at what the bot did after this person's last action

    def say(self, text: str, chat: Dict | None = None, reply_to: Dict | None = None,
            sender_chat: Dict | None = None, **attach: Any) -> Dict:
        """sender_chat: post on behalf of the group (an anonymous admin) or of a channel;
        `attach`: a photo or document with `text` as its caption (see FakeTelegram.send_message)."""
        self._since = len(self.tg.calls)
        return self.tg.send_message(self.user, text, chat=chat, reply_to=reply_to,
                                    sender_chat=sender_chat, **attach)

    def delete(self, message: Dict) -> None:
        """Delete a message (one's own; in a private chat the bot's too). The bot is not told."""
        self.tg.delete_user_message(message["chat"]["id"], message["message_id"])

    async def told(self, contains: str, chat_id: int | None = None, timeout: float = 10.0) -> Call:
        """Wait for a message or an edit from the bot into this chat containing `contains`,
        sent since this person last said or pressed something."""
        chat_id = self.id if chat_id is None else chat_id
        deadline = time.monotonic() + timeout
        while True:
            for call in self.tg.calls[self._since:]:
                if (call.ok and call.method in ("sendMessage", "editMessageText")
                        and call.params.get("chat_id") == chat_id
                        and contains in call.params.get("text", "")):
                    return call
            if time.monotonic() > deadline:
                raise AssertionError(f"never told {contains!r}\n{self.tg.summary()}")
            await asyncio.sleep(0.01)

    async def ask(self, text: str, chat: Dict | None = None, reply_to: Dict | None = None,
                  **attach: Any) -> tuple[Dict, Dict]:
        """Send a command that opens a picker; returns (request, picker message)."""
        request = self.say(text, chat=chat, reply_to=reply_to, **attach)
        [call] = await self.tg.wait_for(
            "sendMessage", lambda c: (c.params.get("reply_parameters") or {}).get("message_id")
            == request["message_id"] and c.params["chat_id"] == request["chat"]["id"])
        return request, self.message(request["chat"]["id"], call.response["message_id"])

    def message(self, chat_id: int, message_id: int) -> Dict:
        found = self.tg.message(chat_id, message_id)
        assert found is not None
        return found

    async def press(self, message: Dict, starts_with: str, data: str | None = None) -> Dict:
        """Press a button; waits for the bot to answer the press. Returns the answer's params."""
        self._since = len(self.tg.calls)
        query = self.tg.press(self.user, message, data or button(message, starts_with))
        [answer] = await self.tg.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query["id"])
        return answer.params

    def refreshed(self, message: Dict) -> Dict:
        return self.message(message["chat"]["id"], message["message_id"])
