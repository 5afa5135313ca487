"""Secrets out of everything the bot writes: one `redact` for log records (bot/logs.py) and
Telegram requests (bot/session.py)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "***"


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as it may appear in what the bot writes: as is, HTML-escaped (chat texts are
    HTML, and foreign text is escaped into them), URL-encoded (inside a quoted link) and inside
    a JSON string (a keyboard's or an album's field, as sent). Empty values are dropped: ""
    occurs in every text."""
    forms = {form for secret in secrets if secret
             for plain in (secret, html.escape(secret), html.escape(secret, quote=False))
             for form in (plain, json.dumps(plain)[1:-1],
                          json.dumps(plain, ensure_ascii=False)[1:-1])} | {
        quote(secret, safe="") for secret in secrets if secret}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by REDACTED; `text` itself when none occurs (the usual case)."""
    found = [secret for secret in secrets if secret and secret in text]
    if not found:
        return text
    # Longest first: a secret that contains another must go whole, not leave its remainder behind.
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
