"""Logging to stderr, with every secret redacted from every record, whoever logs it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from bot.redaction import REDACTED, redact, secret_forms

__all__ = ["REDACTED", "RedactSecrets", "setup_logging"]


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = secret_forms(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A malformed call: the handler reports it; its report must not show the arguments.
            record.args = None
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        text = record.exc_text or ""
        clean_message, clean_text = redact(message, self.secrets), redact(text, self.secrets)
        # Untouched otherwise: msg and args stay apart (lazy formatting, handlers that group by msg).
        if clean_message != message or clean_text != text:
            record.msg, record.args = clean_message, None
            record.exc_text = clean_text or None
        return True


def setup_logging(secrets: Iterable[str], level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiogram's line for every update handled ("Update id=… is handled. Duration …"): noise in
    # an operator's log and ~50 µs an update (bench.updates' profile); LOG_LEVEL=DEBUG shows it.
    logging.getLogger("aiogram.event").setLevel(
        level if level <= logging.DEBUG else max(level, logging.WARNING))
