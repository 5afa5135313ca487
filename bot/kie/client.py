"""The Kie.ai HTTP client: one shared connection pool, one shared rate budget."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.kie import constants as api
from bot.kie.errors import (
    KieError,
    KieProtocolError,
    KieRateLimited,
    KieTimeout,
    error_for,
)
from bot.kie.ratelimit import Priority, RateLimiter
from bot.kie.schemas import (
    CreateTaskRequest,
    DownloadUrlRequest,
    Envelope,
    TaskCreated,
    TaskRecord,
    UploadedFile,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Kie gives no Retry-After; how long everyone holds back after a 429.
RATE_LIMIT_PAUSE = 2.0


class KieClient:
    def __init__(self, api_key: SecretStr, *, base_url: str, upload_url: str,
                 limiter: RateLimiter, timeout: float = 30.0, read_attempts: int = 4,
                 backoff: float = 1.0) -> None:
        self._limiter = limiter
        self._read_attempts = read_attempts
        self._backoff = backoff
        self._upload_url = upload_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key.get_secret_value()}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the calls -------------------------------------------------------------

    async def create_task(self, model: str, input: dict[str, Any],
                          callback_url: str | None = None, *, owner: int | None = None) -> str:
        """Start a task; returns its id. Never retried once the request may have reached Kie.
        `owner` (a Telegram user id) shares the budget fairly between users."""
        body = CreateTaskRequest(model=model, input=input, callback_url=callback_url)
        data = await self._send(
            "POST", api.CREATE_TASK_PATH, Priority.CREATE, owner=owner, retry_reads=False,
            json=body.model_dump(by_alias=True, exclude_none=True),
        )
        return self._parse(TaskCreated, data).task_id

    async def get_task(self, task_id: str, priority: Priority = Priority.POLL, *,
                       owner: int | None = None) -> TaskRecord:
        data = await self._send("GET", api.RECORD_INFO_PATH, priority, owner=owner,
                                params={"taskId": task_id})
        return self._parse(TaskRecord, data)

    async def get_credits(self) -> float:
        """The account's remaining Kie credits (`data` is a bare number)."""
        data = await self._send("GET", api.CREDIT_PATH, Priority.READ)
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise KieProtocolError(f"credit is not a number: {type(data).__name__}")
        return data

    async def download_url(self, url: str) -> str:
        """A fresh direct link (valid 20 minutes) for a file Kie generated."""
        data = await self._send("POST", api.DOWNLOAD_URL_PATH, Priority.READ,
                                json=DownloadUrlRequest(url=url).model_dump())
        if not isinstance(data, str) or not data:
            raise KieProtocolError("download-url answered no link")
        return data

    async def upload_file(self, content: bytes, *, filename: str, mime_type: str) -> str:
        """Upload an input file; returns the URL to hand to a model (kept by Kie for 3 days)."""
        suffix = filename.rpartition(".")[2] if "." in filename else "bin"
        data = await self._send(
            "POST", f"{self._upload_url}{api.STREAM_UPLOAD_PATH}", Priority.READ,
            retry_reads=False,
            data={"uploadPath": api.UPLOAD_FOLDER, "fileName": f"{uuid.uuid4().hex}.{suffix}"},
            files={"file": (filename, content, mime_type)},
        )
        return self._parse(UploadedFile, data).download_url

    # -- plumbing --------------------------------------------------------------

    async def _send(self, method: str, url: str, priority: Priority, *, owner: int | None = None,
                    retry_reads: bool = True, **kwargs: Any) -> Any:
        """One call under the shared budget. Reads retry with backoff on 429, 5xx and timeouts;
        other calls retry only when Kie surely did not take the request (429, no connection)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, url, priority, owner, **kwargs)
            except KieError as error:
                may_retry = error.retryable if retry_reads else isinstance(
                    error, KieRateLimited | _NotSent)
                if not may_retry or attempt >= self._read_attempts:
                    if isinstance(error, _NotSent):
                        raise error.unwrapped() from error
                    raise error
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning("Kie.ai %s %s failed (%s); retry %d in %.1fs",
                            method, _path(url), error, attempt, delay)
                await asyncio.sleep(delay)

    async def _once(self, method: str, url: str, priority: Priority, owner: int | None,
                    **kwargs: Any) -> Any:
        try:
            # The slot is held until the answer is in: Kie counted the request somewhere before.
            async with self._limiter.slot(priority, owner=owner):
                response = await self._http.request(method, url, **kwargs)
        except httpx.ConnectError as error:
            raise _NotSent(str(error) or "cannot connect") from error
        except (httpx.TimeoutException, httpx.TransportError) as error:
            raise KieTimeout(type(error).__name__) from error
        try:
            envelope = Envelope.model_validate(response.json())
        except (ValueError, ValidationError):
            envelope = None
        if envelope is None and response.is_success:
            raise KieProtocolError("an answer that is not Kie's JSON envelope")
        # The envelope's code first; the HTTP status where it has none (or says 200 wrongly).
        code = envelope.code if envelope and envelope.code != 200 else response.status_code
        if code == 200 and envelope is not None:
            return envelope.data
        message = envelope.text if envelope else response.reason_phrase
        if code == 429 or response.status_code == 429:
            self._limiter.pause(RATE_LIMIT_PAUSE)
            raise KieRateLimited(message, 429)
        raise error_for(code, message)

    @staticmethod
    def _parse(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise KieProtocolError(f"unexpected {model.__name__}: {error.error_count()} errors") from error


class _NotSent(KieTimeout):
    """The connection failed before the request left: safe to retry even a create."""

    retryable = True

    def unwrapped(self) -> KieTimeout:
        return KieTimeout(self.message, self.code)


def _path(url: str) -> str:
    return httpx.URL(url).path
