"""The URL each Kie task carries for its callback (KIE_CALLBACK_URL, a secret, the generation),
and the web server's route that serves it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, SecretStr

# The callback path carries a per-deployment secret: derived from the bot token, so it stays
# the same across restarts (tasks in flight keep working) and nobody without the token knows it.
_PATH_LABEL = b"kie-callback-path"


@dataclass(frozen=True, slots=True)
class CallbackUrls:
    """Made once at start from KIE_CALLBACK_URL and the bot token; absent when callbacks
    are off."""

    base: str  # KIE_CALLBACK_URL, without a trailing slash
    secret: str

    @classmethod
    def of(cls, url: AnyHttpUrl | None, token: SecretStr) -> CallbackUrls | None:
        if url is None:
            return None
        return cls(str(url).rstrip("/"), path_secret(token))

    def for_generation(self, generation_id: int) -> str:
        """Where Kie calls when this generation's task ends."""
        return f"{self.base}/{self.secret}/{generation_id}"

    @property
    def route(self) -> str:
        """The web server's route for callbacks: the URL's path, then secret and id."""
        return f"{urlsplit(self.base).path}/{{secret}}/{{generation}}"


def path_secret(token: SecretStr) -> str:
    return hmac.new(token.get_secret_value().encode(), _PATH_LABEL,
                    hashlib.sha256).hexdigest()[:32]
