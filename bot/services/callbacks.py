"""Kie.ai callbacks: what a callback may do — wake the tracker, never deliver or refund by
itself (the tracker reads the task from Kie and acts on that). Its URL: callback_url.py."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping

from pydantic import SecretStr

from bot.kie.callbacks import interim, signature_ok, task_id_of
from bot.services.callback_url import CallbackUrls
from bot.services.tracker import Tracker
from bot.store import GenerationState, Store
from bot.store.models import UNRECORDED_FAILURES

log = logging.getLogger(__name__)

class KieCallbacks:
    def __init__(self, store: Store, tracker: Tracker, urls: CallbackUrls,
                 hmac_key: SecretStr | None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.tracker = tracker
        self.urls = urls
        self.hmac_key = hmac_key.get_secret_value() if hmac_key else None  # KIE_WEBHOOK_HMAC_KEY
        self._clock = clock

    def addressed(self, secret: str, generation: str) -> int | None:
        """The generation id a callback path of ours names, or None (answer 404). Checked
        before the body is read: a stranger's request costs no read."""
        # compare_digest raises TypeError on a non-ASCII str; such a secret is not ours anyway.
        if not secret.isascii() or not hmac.compare_digest(secret, self.urls.secret) \
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
                and found.failure in UNRECORDED_FAILURES and found.task_id is None):
            self.tracker.recover(found, task_id)
        else:
            log.info("callback for generation %s (task %s): nothing to do", generation_id, task_id)
        return 200
