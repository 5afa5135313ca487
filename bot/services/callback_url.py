"""The URL each Kie task carries for its callback (KIE_CALLBACK_URL, a secret, the generation),
and the web server's route that serves it."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from bot.config import Settings

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
