"""Kie.ai's chat models in the fake (kie-api-more.md §7), mounted by FakeKie at
`POST /{model}/v1/chat/completions`: OpenAI's chat-completions format, the model in the path,
refusals as `{"error": {"message", "type"}}` with the HTTP status (400, 401, 429, 500).

The fake's middleware counts each request in the key's rate window and checks the key, as for
any other Kie call. Beyond that: the body must be a JSON object with `messages` (each a role
and text content), `stream` must be sent as false (Kie's default true streams SSE: a client that
forgets it would get no JSON; here a 400 says so), `include_thoughts`, when sent, a boolean.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# The chat models Kie documents in the OpenAI format (kie-api-more.md §7).
CHAT_MODELS = frozenset({"gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro", "gemini-3.1-pro",
                         "gemini-3-flash", "gpt-5-2"})
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               429: "rate_limit_error", 500: "server_error"}


@dataclass
class ChatScript:
    """One scripted answer: `content` (the model's text), or an error `status` (with `message`),
    or `raw` (a 200 whose body is this text: garbage). `delay`: seconds before answering."""

    content: str | None = None
    status: int | None = None
    message: str = "Error"
    raw: str | None = None
    delay: float = 0.0


def default_answer(prompt: str) -> str:
    """What the fake's model makes of a prompt when nothing is scripted."""
    return f"{prompt}, highly detailed, dramatic lighting"


class FakeChat:
    def __init__(self) -> None:
        # knobs tests turn
        self.answer: Callable[[str], str] = default_answer  # the user message -> the content
        self.scripts: collections.deque[ChatScript] = collections.deque()
        # what happened: (model, body) of every request that reached the endpoint
        self.requests: list[tuple[str, Any]] = []

    def answer_next(self, *scripts: ChatScript) -> None:
        self.scripts.extend(scripts)

    def fail_next(self, status: int, message: str | None = None, times: int = 1) -> None:
        self.scripts.extend([ChatScript(status=status,
                                        message=message or ERROR_TYPES.get(status, "Error"))] * times)

    @property
    def user_messages(self) -> list[str]:
        return [_text(m) for _, body in self.requests for m in body["messages"]
                if m.get("role") == "user"]

    @staticmethod
    def is_chat(path: str) -> bool:
        return path.endswith("/v1/chat/completions")

    async def handle(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append((model, body))
        if model not in CHAT_MODELS:
            return _error(404, f"model {model} is not available")
        problem = _validate(body)
        if problem is not None:
            return _error(400, problem)
        script = self.scripts.popleft() if self.scripts else ChatScript()
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.status is not None:
            return _error(script.status, script.message)
        if script.raw is not None:
            return web.Response(text=script.raw, status=200, content_type="text/plain")
        users = [m for m in body["messages"] if m["role"] == "user"]
        content = script.content if script.content is not None \
            else self.answer(_text(users[-1]) if users else "")
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90}})


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("stream") is not False:
        return "stream must be false for a JSON answer (the default, true, streams SSE)"
    if "include_thoughts" in body and not isinstance(body["include_thoughts"], bool):
        return "include_thoughts must be a boolean"
    return _validate_messages(body.get("messages"))


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages is required"
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
                "system", "user", "assistant", "developer"):
            return f"messages[{number}].role is invalid"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages[{number}].content must be text or parts"
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error")}},
        status=status)
