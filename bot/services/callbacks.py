"""Kie.ai callbacks: the URL each task carries, and what a callback may do — wake the tracker,
never deliver or refund by itself (the tracker reads the task from Kie and acts on that)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.config import Settings
from bot.kie.callbacks import interim, signature_ok, task_id_of
from bot.store import GenerationState, Store

if TYPE_CHECKING:  # the tracker imports the generation service, which needs callback_url
    from bot.services.tracker import Tracker

log = logging.getLogger(__name__)

# The callback path carries a per-deployment secret: derived from the bot token, so it stays
# the same across restarts (tasks in flight keep working) and nobody without the token knows it.
_PATH_LABEL = b"kie-callback-path"


def path_secret(settings: Settings) -> str:
    key = settings.bot.token.get_secret_value().encode()
    return hmac.new(key, _PATH_LABEL, hashlib.sha256).hexdigest()[:32]


def callback_url(settings: Settings, generation_id: int) -> str | None:
    """Where Kie calls when this generation's task ends; None when callbacks are off."""
    if settings.kie.callback_url is None:
        return None
    base = str(settings.kie.callback_url).rstrip("/")
    return f"{base}/{path_secret(settings)}/{generation_id}"


def route(settings: Settings) -> str:
    """The web server's route for callbacks: KIE_CALLBACK_URL's path, then secret and id."""
    base = urlsplit(str(settings.kie.callback_url)).path.rstrip("/")
    return f"{base}/{{secret}}/{{generation}}"


class KieCallbacks:
    def __init__(self, store: Store, tracker: Tracker, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.tracker = tracker
        self.hmac_key = (settings.kie.webhook_hmac_key.get_secret_value()
                         if settings.kie.webhook_hmac_key else None)
        self._secret = path_secret(settings)
        self._clock = clock

    def addressed(self, secret: str, generation: str) -> int | None:
        """The generation id a callback path of ours names, or None (answer 404). Checked
        before the body is read: a stranger's request costs no read."""
        # compare_digest raises TypeError on a non-ASCII str; such a secret is not ours anyway.
        if not secret.isascii() or not hmac.compare_digest(secret, self._secret) \
                or not generation.isdecimal() or len(generation) > 18:
            return None
        return int(generation)

    async def receive(self, generation_id: int, body: bytes, headers: Mapping[str, str]) -> int:
        """Handle one callback to a path `addressed` accepted; returns the HTTP status to
        answer. Anything that is not a current task of ours changes nothing (and is answered
        200, so Kie stops retrying)."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        task_id = task_id_of(payload)
        if task_id is None:
            return 400
        if self.hmac_key is not None and not signature_ok(self.hmac_key, task_id, headers,
                                                          self._clock()):
            log.warning("callback for generation %s refused: bad or stale signature",
                        generation_id)
            return 401
        if interim(payload):  # a read now would only say "still running"
            log.info("generation %s: Kie says task %s is under way", generation_id, task_id)
            return 200
        if await self.store.check_now(generation_id, task_id):
            log.info("generation %s: Kie called back for task %s", generation_id, task_id)
            self.tracker.wake()
            return 200
        found = await self.store.get_generation(generation_id)
        if (found is not None and found.state is GenerationState.FAILED
                and found.failure == "interrupted" and found.task_id is None):
            self.tracker.recover(found, task_id)
        else:
            log.info("callback for generation %s (task %s): nothing to do", generation_id, task_id)
        return 200
