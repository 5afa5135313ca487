"""Kie.ai's chat models (kie-api-more.md §7): OpenAI's chat-completions format, not Kie's
`{code, msg, data}` envelope. One system and one user message in, the answer's text out."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.kie.errors import KieProtocolError
from bot.kie.schemas import Envelope


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """The body. `stream` false: one JSON answer, not an SSE stream (true is Kie's default)."""

    messages: list[ChatMessage]
    stream: Literal[False] = False
    include_thoughts: bool = False


class _AnswerMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str | None = None


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: _AnswerMessage


class ChatCompletion(BaseModel):
    """`{id, object, created, model, choices: [{index, message: {role, content}, finish_reason}],
    usage}`: only what the bot reads."""

    model_config = ConfigDict(extra="ignore")

    choices: list[_Choice] = Field(min_length=1)

    @property
    def text(self) -> str:
        """The first choice's text ("" when the model said nothing)."""
        return self.choices[0].message.content or ""


class _ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = ""


class _ErrorBody(BaseModel):
    """OpenAI's `{"error": {"message", "type"}}`, with the HTTP status as the code."""

    model_config = ConfigDict(extra="ignore")

    error: _ErrorDetail


def chat_answer(response: httpx.Response) -> tuple[int, str, Any]:
    """(code, message, data) of a chat answer, for KieClient: 200 and the completion's JSON, or
    the refusal's code and words. Refusals come as OpenAI's error body with the HTTP status, and
    Kie's gateway may answer in its own envelope (a bad key, the rate limit): both are read."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if response.is_success:
            raise KieProtocolError("a chat answer that is not a JSON object")
        return response.status_code, response.reason_phrase, None
    try:
        refusal = _ErrorBody.model_validate(body)
    except ValidationError:
        pass
    else:
        status = response.status_code
        return (status if status != 200 else 500), refusal.error.message, None
    try:
        envelope = Envelope.model_validate(body)
    except ValidationError:
        envelope = None
    if envelope is not None and envelope.code != 200:
        return envelope.code, envelope.text, None
    if not response.is_success:
        return response.status_code, response.reason_phrase, None
    return 200, "", body
