"""One exception per Kie.ai failure a caller must tell apart (kie-api.md, Errors; kie-api-more.md
§8 for 408, 433 and 550)."""

from __future__ import annotations

from bot.errors import BotError


class KieError(BotError):
    """Base: `code` is Kie's envelope code (or the HTTP status), `message` Kie's own words."""

    retryable = False
    # The failure reason (texts.FAILURES) a generation this refusal ends is refunded with;
    # None: the caller's own ("unavailable", "rejected", ...).
    reason: str | None = None

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(f"Kie.ai {code}: {message}" if code else f"Kie.ai: {message}")
        self.message = message
        self.code = code


class KieAuthError(KieError):
    """401: the API key is missing or wrong: the operator's problem."""


class KieInsufficientCredits(KieError):
    """402: the Kie account is out of credits: the operator's problem."""


class KieKeyCapped(KieInsufficientCredits):
    """433: the key is a sub-key past the cap its account set on it (hourly, daily or total):
    the operator's problem, answered as 402 (the key leaves the pool, admins are told)."""


class KieNoResult(KieError):
    """408: the model gave Kie no result for over 10 minutes: the task is over, refunded."""

    reason: str = "kie_timeout"


class KieNotFound(KieError):
    """404: no such task (or endpoint)."""


class KieValidationError(KieError):
    """422: the input was rejected; `message` says why."""


class KieRateLimited(KieError):
    """429: over the rate limit; the request was not queued."""

    retryable = True


class KieUnavailable(KieError):
    """455 maintenance, 500 and other 5xx: try again later."""

    retryable = True


class KieQueueFull(KieUnavailable):
    """550: the task was refused, the model's queue being full (4o Image): try again later."""

    reason = "queue_full"


class KieGenerationFailed(KieError):
    """501: the generation failed."""


class KieModelDisabled(KieError):
    """505: the model is switched off on Kie's side."""


class KieTimeout(KieError):
    """No answer in time, or the connection broke: a create may or may not have reached Kie."""

    retryable = True
    reason = "unanswered"


class KieProtocolError(KieError):
    """An answer that does not match the documented wire format."""


CODE_ERRORS: dict[int, type[KieError]] = {
    401: KieAuthError,
    402: KieInsufficientCredits,
    404: KieNotFound,
    408: KieNoResult,
    422: KieValidationError,
    429: KieRateLimited,
    433: KieKeyCapped,
    455: KieUnavailable,
    500: KieUnavailable,
    501: KieGenerationFailed,
    505: KieModelDisabled,
    550: KieQueueFull,
}


def error_for(code: int, message: str) -> KieError:
    """The exception for an envelope code or HTTP status; unknown 5xx are unavailability."""
    cls = CODE_ERRORS.get(code)
    if cls is None:
        cls = KieUnavailable if code >= 500 else KieError
    return cls(message, code)
