"""What Kie.ai POSTs to a callBackUrl: the task id it names, and its signature."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from bot.kie import constants


def task_id_of(payload: Any) -> str | None:
    """The task id, from either shape Kie is seen to send (wrapped like recordInfo, or flat)
    and either spelling (`taskId`; Suno's and Runway's `task_id`)."""
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    for holder in (data if isinstance(data, dict) else {}, payload):
        for key in constants.CALLBACK_TASK_ID_KEYS:
            value = holder.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def interim(payload: Any) -> bool:
    """A Suno callback for a stage before the end: the task is still running. (Veo, Runway,
    Flux Kontext and 4o Image call back once, at the end, whether it succeeded or failed.)"""
    data = payload.get("data") if isinstance(payload, dict) else None
    return isinstance(data, dict) and data.get(
        constants.SUNO_CALLBACK_TYPE) in constants.SUNO_INTERIM_CALLBACKS


def signature_ok(key: str, task_id: str, headers: Mapping[str, str], now: float) -> bool:
    """A fresh, valid signature: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""
    timestamp = headers.get(constants.CALLBACK_TIMESTAMP_HEADER, "")
    signature = headers.get(constants.CALLBACK_SIGNATURE_HEADER, "")
    if not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return False
    if abs(now - int(timestamp)) > constants.CALLBACK_MAX_AGE:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)
