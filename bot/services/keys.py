"""Kie refusing a key of the pool (401, 402, 433), met by a create or a status read: one rule."""

from __future__ import annotations

import logging

from bot.kie import KieClient
from bot.services.notifier import Notifier

log = logging.getLogger(__name__)


async def retire_refused_key(kie: KieClient, notifier: Notifier, key: str, reason: str) -> bool:
    """`key` leaves the pool and admins are told, once per key. False when it is the last key
    left, which stays (the bot's own key is refused: the caller answers that as such)."""
    if kie.retire(key):
        log.warning("Kie.ai refused key %s (%s): it leaves the pool", key, reason)
        await notifier.key_refused(key, reason)
        return True
    return kie.retired(key)  # (retired by a refusal met just before this one)
