"""The Kie.ai HTTP client: one shared connection pool, one shared rate budget."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.kie import constants
from bot.kie.budget import Budget, Scope, budget_for
from bot.kie.chat import ChatCompletion, ChatMessage, ChatRequest, chat_answer
from bot.kie.errors import (
    KieAuthError,
    KieError,
    KieProtocolError,
    KieRateLimited,
    KieTimeout,
    KieUnavailable,
    error_for,
)
from bot.kie.flux import FluxRecord
from bot.kie.gpt4o import Gpt4oRecord
from bot.kie.ratelimit import Priority, RateLimiter
from bot.kie.runway import RunwayRecord
from bot.kie.runway import generate_body as runway_body
from bot.kie.schemas import (
    CreateTaskRequest,
    DownloadUrlRequest,
    Envelope,
    StatusRecord,
    TaskCreated,
    TaskRecord,
    TaskStatus,
    UploadedFile,
    body_with_model,
    body_without_model,
)
from bot.kie.suno import SunoRecord
from bot.kie.suno import generate_body as suno_body
from bot.kie.veo import Veo1080p, VeoRecord, in_1080p, processing_1080p

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Awaited just before a request goes out; raises to stop it (see KieClient.start).
Fence = Callable[[], Awaitable[None]]

# How a call's answer is read: (code, message, data), code 200 for success (`_enveloped`: Kie's
# envelope; chat.chat_answer: the chat models' OpenAI format).
Answer = Callable[[httpx.Response], tuple[int, str, Any]]

# Kie gives no Retry-After; how long everyone holds back after a 429.
RATE_LIMIT_PAUSE = 2.0


def _market_body(model: str, input: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    body = CreateTaskRequest(model=model, input=input, callback_url=callback_url)
    return body.model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class _Wire:
    """One API family: where to create and read a task, and how its words are spelled.
    Every one answers a create with `data.taskId`."""

    create_path: str
    record_path: str
    body: Callable[[str, dict[str, Any], str | None], dict[str, Any]]
    record: type[StatusRecord]
    full_hd: bool = False  # a finished Veo video is delivered in 1080p where Kie offers it


_VEO = _Wire(constants.VEO_GENERATE_PATH, constants.VEO_RECORD_INFO_PATH, body_with_model,
             VeoRecord)
_WIRES: dict[str, _Wire] = {
    constants.API_MARKET: _Wire(constants.CREATE_TASK_PATH, constants.RECORD_INFO_PATH,
                                _market_body, TaskRecord),
    constants.API_SUNO: _Wire(constants.SUNO_GENERATE_PATH, constants.SUNO_RECORD_INFO_PATH,
                              suno_body, SunoRecord),
    constants.API_SUNO_EXTEND: _Wire(constants.SUNO_EXTEND_PATH,
                                     constants.SUNO_RECORD_INFO_PATH, suno_body, SunoRecord),
    constants.API_VEO: _VEO,
    constants.API_VEO_1080P: replace(_VEO, full_hd=True),
    constants.API_RUNWAY: _Wire(constants.RUNWAY_GENERATE_PATH,
                                constants.RUNWAY_RECORD_DETAIL_PATH, runway_body,
                                RunwayRecord),
    constants.API_FLUX: _Wire(constants.FLUX_GENERATE_PATH, constants.FLUX_RECORD_INFO_PATH,
                              body_with_model, FluxRecord),
    constants.API_GPT4O: _Wire(constants.GPT4O_GENERATE_PATH, constants.GPT4O_RECORD_INFO_PATH,
                               body_without_model, Gpt4oRecord),
}


def _wire(family: str) -> _Wire:
    try:
        return _WIRES[family]
    except KeyError:
        known = ", ".join(constants.APIS)
        raise ValueError(f"unknown Kie API {family!r}; expected one of {known}") from None


def key_id(key: SecretStr) -> str:
    """A name for a key that does not show it (kept on each generation, told to admins)."""
    return hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:8]


@dataclass
class _Key:
    id: str
    authorization: str
    budget: Budget  # each key is an account with its own rate limit
    retired: bool = False  # Kie refused it (401, 402): no new tasks on it


class KieClient:
    """Kie.ai's API through one key, or a pool of them (`more_keys`): a new task goes to the key
    with the most room in its budget; whatever concerns a task afterwards (its status, its
    files) goes through the key that created it, which callers keep (`key=`)."""

    def __init__(self, api_key: SecretStr, *, base_url: str, upload_url: str,
                 limiter: RateLimiter, more_keys: Sequence[SecretStr] = (), scope: Scope = "all",
                 timeout: float = 30.0, read_attempts: int = 4, backoff: float = 1.0) -> None:
        budget = budget_for(limiter, scope)  # KIE_RATE_SCOPE (bot/kie/budget.py)
        keys = [_Key(key_id(api_key), f"Bearer {api_key.get_secret_value()}", budget)]
        keys += [_Key(key_id(key), f"Bearer {key.get_secret_value()}", budget.sibling())
                 for key in more_keys if key_id(key) not in {k.id for k in keys}]
        self._keys = {key.id: key for key in keys}
        self._primary = keys[0]
        self._read_attempts = read_attempts
        self._backoff = backoff
        self._upload_url = upload_url.rstrip("/")
        self.last_success_at: float | None = None  # the last call Kie answered (for /healthz)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=10.0))

    def pick_key(self) -> str:
        """The key a new task should go to: of those Kie has not refused, the one with the
        most room in its budget now (the first, on a tie)."""
        active = [key for key in self._keys.values() if not key.retired] or [self._primary]
        return max(active, key=lambda key: key.budget.room()).id

    def key_ids(self) -> list[str]:
        """Every key's id, KIE_API_KEY's first."""
        return list(self._keys)

    def retire(self, key: str) -> bool:
        """Kie refused `key` (401, 402): no new task goes to it. True the first time, and only
        while another key is left to use (a lone key stays: its refusals are answered as ever)."""
        found = self._keys.get(key)
        others = [k for k in self._keys.values() if not k.retired and k is not found]
        if found is None or found.retired or not others:
            return False
        found.retired = True
        return True

    def retired(self, key: str) -> bool:
        found = self._keys.get(key)
        return found is not None and found.retired

    def share_budget(self, parts: int, *, polling: bool | None = None) -> None:
        """`parts` instances share the keys: this one spends its part of each key's limit
        (RateLimiter.share; `polling`: with long polling, whether this one polls)."""
        for key in self._keys.values():
            key.budget.share(parts, polling=polling)

    @property
    def rate_limit(self) -> int:
        """Requests this process may make per window, all its keys together."""
        return sum(key.budget.limit for key in self._keys.values() if not key.retired) \
            or self._primary.budget.limit

    @property
    def read_limit(self) -> int:
        """Status reads this process may make per window, all its keys together: the same
        budget as `rate_limit` under KIE_RATE_SCOPE=all, the reads' own under `creates`."""
        return sum(key.budget.read_limit for key in self._keys.values())

    @property
    def scope(self) -> Scope:
        return self._primary.budget.scope

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the calls -------------------------------------------------------------

    async def start(self, api: str, model: str, input: dict[str, Any], *,
                    owner: int | None = None, callback_url: str | None = None,
                    key: str | None = None, fence: Fence | None = None) -> str:
        """Start a task on `api` (one of constants.APIS) through `key` (pick_key's, by
        default); returns its id. Never retried once the request may have reached Kie. `owner`
        (a Telegram user id) shares the budget fairly between users. `fence` is awaited just
        before each try goes out, after the wait for the budget: it raises to stop the create
        (the caller no longer holds the generation). The APIs other than the market's take a
        flat body: `input` is the body itself and `model` goes into its model field where it
        has one (schemas.flat_body; Suno's is its version, `V4_5`)."""
        wire = _wire(api)
        data = await self._send("POST", wire.create_path, Priority.CREATE, owner=owner, key=key,
                                retry_reads=False, fence=fence,
                                json=wire.body(model, input, callback_url))
        return self._parse(TaskCreated, data).task_id

    async def status(self, api: str, task_id: str, *, owner: int | None = None,
                     priority: Priority = Priority.POLL, key: str | None = None,
                     wait: float | None = None) -> TaskStatus:
        """The task's fate in one shape for every API family (see TaskStatus); `key`: the one
        that created it (None: KIE_API_KEY). API_VEO_1080P: a finished video in 1080p (veo.py).
        `wait`: the longest the read waits for the reads' budget before it goes beyond it
        (KIE_RATE_SCOPE=creates: the tracker's, so that no task goes unread too long)."""
        wire = _wire(api)
        key = key or self._primary.id
        data = await self._send("GET", wire.record_path, priority, owner=owner, key=key,
                                wait=wait, params={"taskId": task_id})
        record = self._parse(wire.record, data)
        status = record.to_status()
        if (wire.full_hd and status.phase == "success" and isinstance(record, VeoRecord)
                and record.offers_1080p()):
            return await self._veo_1080p(task_id, status, owner=owner, priority=priority, key=key)
        return status

    async def get_credits(self, key: str | None = None) -> float:
        """The remaining Kie credits of `key`'s account (None: KIE_API_KEY's); `data` is a
        bare number."""
        data = await self._send("GET", constants.CREDIT_PATH, Priority.READ,
                                key=key or self._primary.id)
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise KieProtocolError(f"credit is not a number: {type(data).__name__}")
        return data

    async def download_url(self, url: str, *, key: str | None = None, owner: int | None = None,
                           priority: Priority = Priority.READ) -> str:
        """A fresh direct link (valid 20 minutes) for a file Kie generated, through the key of
        the task that made it (None: KIE_API_KEY), in `owner`'s share of the budget."""
        data = await self._send("POST", constants.DOWNLOAD_URL_PATH, priority, owner=owner,
                                key=key or self._primary.id,
                                json=DownloadUrlRequest(url=url).model_dump())
        if not isinstance(data, str) or not data:
            raise KieProtocolError("download-url answered no link")
        return data

    async def chat(self, model: str, system: str, user: str, *,
                   owner: int | None = None) -> str:
        """One answer of Kie's chat `model` (its name in the path) to a system and a user
        message: its text, "" when it said nothing. In the budget like a create, and retried
        only as a create is (a request Kie may have taken is paid for)."""
        body = ChatRequest(messages=[ChatMessage(role="system", content=system),
                                     ChatMessage(role="user", content=user)])
        data = await self._send("POST", constants.CHAT_PATH.format(model=model), Priority.CREATE,
                                owner=owner, retry_reads=False, answer=chat_answer,
                                json=body.model_dump(), timeout=constants.CHAT_TIMEOUT)
        return self._parse(ChatCompletion, data).text

    async def upload_file(self, content: bytes, *, filename: str, mime_type: str) -> str:
        """Upload an input file; returns the URL to hand to a model (kept by Kie for 3 days).
        Retried like a read: a repeat under the same fileName overwrites, nothing doubles."""
        suffix = filename.rpartition(".")[2] if "." in filename else "bin"
        data = await self._send(
            "POST", f"{self._upload_url}{constants.STREAM_UPLOAD_PATH}", Priority.READ,
            data={"uploadPath": constants.UPLOAD_FOLDER, "fileName": f"{uuid.uuid4().hex}.{suffix}"},
            files={"file": (filename, content, mime_type)},
        )
        return self._parse(UploadedFile, data).download_url

    async def _veo_1080p(self, task_id: str, made: TaskStatus, *, owner: int | None,
                         priority: Priority, key: str) -> TaskStatus:
        """The finished Veo task with its video in 1080p; still running while Kie answers that
        the 1080p is processing; as made where Kie refuses it otherwise (it does not offer one).
        Errors worth another try later (429, 5xx, no answer) and a refused key are raised."""
        try:
            data = await self._send("GET", constants.VEO_1080P_PATH, priority, owner=owner,
                                    key=key, params={"taskId": task_id,
                                                     "index": constants.VEO_1080P_INDEX})
        except KieError as error:
            if error.retryable or isinstance(error, KieAuthError):
                raise
            if error.code in constants.VEO_1080P_PENDING_CODES:
                return processing_1080p()
            log.info("Veo task %s has no 1080p version (%s): the video as made", task_id, error)
            return made
        return in_1080p(made, self._parse(Veo1080p, data).result_url)

    # -- plumbing --------------------------------------------------------------

    async def _send(self, method: str, url: str, priority: Priority, *, owner: int | None = None,
                    key: str | None = None, retry_reads: bool = True, fence: Fence | None = None,
                    wait: float | None = None, **kwargs: Any) -> Any:
        """One call under `key`'s budget (None: pick_key's). Reads retry with backoff on 429,
        5xx and timeouts; other calls retry only when Kie surely did not take the request (429,
        no connection). Under KIE_RATE_SCOPE=creates a status poll's 429 is not retried here
        (Budget.retries_refused)."""
        chosen = self._keys.get(key or self.pick_key(), self._primary)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, url, priority, owner, chosen, fence=fence,
                                        wait=wait, **kwargs)
            except KieError as error:
                may_retry = error.retryable if retry_reads else isinstance(
                    error, KieRateLimited | _NotSent)
                if isinstance(error, KieRateLimited):
                    may_retry = may_retry and chosen.budget.retries_refused(priority)
                if not may_retry or attempt >= self._read_attempts:
                    if isinstance(error, _NotSent):
                        raise error.unwrapped() from error
                    raise error
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning("Kie.ai %s %s failed (%s); retry %d in %.1fs",
                            method, _path(url), error, attempt, delay)
                await asyncio.sleep(delay)

    async def _once(self, method: str, url: str, priority: Priority, owner: int | None,
                    key: _Key, *, fence: Fence | None = None, answer: Answer | None = None,
                    wait: float | None = None, **kwargs: Any) -> Any:
        try:
            # The slot is held until the answer is in: Kie counted the request somewhere before.
            async with key.budget.slot(priority, owner=owner, wait=wait):
                if fence is not None:
                    await fence()
                sent = time.monotonic()
                response = await self._http.request(
                    method, url, headers={"Authorization": key.authorization}, **kwargs)
                code, message, data = (answer or _enveloped)(response)
                # Told before the slot is given back: the next grant counts this answer.
                if code == 429 or response.status_code == 429:
                    key.budget.refused(priority, RATE_LIMIT_PAUSE)
                else:
                    key.budget.accepted(priority, sent)  # whatever it answered, Kie counted it
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise _NotSent(str(error) or type(error).__name__) from error
        except (httpx.TimeoutException, httpx.TransportError) as error:
            raise KieTimeout(type(error).__name__) from error
        if code == 429 or response.status_code == 429:
            raise KieRateLimited(message, 429)
        if code == 200:
            self.last_success_at = time.time()
            return data
        raise error_for(code, message)

    @staticmethod
    def _parse(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise KieProtocolError(f"unexpected {model.__name__}: {error.error_count()} errors") from error


def _enveloped(response: httpx.Response) -> tuple[int, str, Any]:
    """(code, message, data) of an answer in Kie's `{code, msg, data}` envelope: the envelope's
    code first, the HTTP status where it has none (or says 200 wrongly)."""
    try:
        envelope = Envelope.model_validate(response.json())
    except (ValueError, ValidationError):
        envelope = None
    if envelope is None and response.is_success:
        raise KieProtocolError("an answer that is not Kie's JSON envelope")
    code = envelope.code if envelope and envelope.code != 200 else response.status_code
    if code == 200 and envelope is not None:
        return 200, "", envelope.data
    return code, envelope.text if envelope else response.reason_phrase, None


class _NotSent(KieTimeout):
    """The connection failed before the request left: safe to retry even a create."""

    retryable = True

    def unwrapped(self) -> KieUnavailable:
        """What the caller sees after the last try: Kie unreachable, surely nothing created."""
        return KieUnavailable(self.message or "cannot connect", self.code)


def _path(url: str) -> str:
    return httpx.URL(url).path
