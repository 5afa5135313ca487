"""Settings: the runtime contract of DESIGN.md, read from the environment and `.env`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.kie.constants import KIE_API_URL, KIE_UPLOAD_URL

Seconds = Annotated[float, Field(gt=0)]


@dataclass(frozen=True, slots=True)
class CreditPackage:
    """What /buy offers: `credits` for `stars` Telegram Stars."""

    credits: int
    stars: int

    @property
    def key(self) -> str:
        """The invoice payload: names the package, so a changed offer is recognised."""
        return f"{self.credits}:{self.stars}"


class Settings(BaseSettings):
    # An empty value (`WEB_PORT=` in a copied .env.example, or passed on by Compose) is unset.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    bot_token: SecretStr
    kie_api_key: SecretStr
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    database_path: Path = Path("data/bot.sqlite3")
    telegram_api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    kie_api_url: AnyHttpUrl = AnyHttpUrl(KIE_API_URL)
    kie_upload_url: AnyHttpUrl = AnyHttpUrl(KIE_UPLOAD_URL)
    kie_rate_limit: Annotated[int, Field(ge=1)] = 20
    # The window Kie counts KIE_RATE_LIMIT in; only tests and benchmarks shrink it.
    kie_rate_window: Seconds = 10.0
    # Unset = each model's own interval from the catalog (all ≤ 5 s).
    kie_poll_interval: Seconds | None = None
    kie_poll_max_interval: Seconds = 30.0
    kie_deadline_image: Seconds = 600.0
    kie_deadline_video: Seconds = 1800.0
    kie_deadline_audio: Seconds = 900.0
    # Seconds a finished result may wait for Telegram (outages) before it is refunded.
    delivery_deadline: Seconds = 3600.0
    kie_callback_url: AnyHttpUrl | None = None
    kie_webhook_hmac_key: SecretStr | None = None
    web_host: str | None = None
    web_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    webhook_url: AnyHttpUrl | None = None
    webhook_secret: SecretStr | None = None
    starting_credits: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    default_language: str = "en"
    # Fairness: what one (non-admin) user may have running, and start per minute.
    max_open_generations: Annotated[int, Field(ge=1)] = 3
    max_starts_per_minute: Annotated[int, Field(ge=1)] = 10
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    credit_packages: Annotated[tuple[CreditPackage, ...], NoDecode] = (
        CreditPackage(100, 50), CreditPackage(500, 200), CreditPackage(2000, 700))
    support_contact: str | None = None
    # Admins are alerted once each time the Kie.ai account's credits fall below this; 0 = off.
    kie_low_credit_alert: Annotated[float, Field(ge=0)] = 0

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        bot_id, _, secret = value.get_secret_value().partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("must look like 123456:ABC... (from @BotFather)")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("credit_packages", mode="before")
    @classmethod
    def _packages(cls, value: object) -> object:
        """`credits:stars` pairs, comma-separated: "100:50,500:200"."""
        if not isinstance(value, str):
            return value
        packages = []
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            credits, sep, stars = part.partition(":")
            if not (sep and credits.isdigit() and stars.isdigit()
                    and 0 < int(credits) <= 1_000_000 and 0 < int(stars) <= 100_000):
                raise ValueError(f"{part!r} is not credits:stars (e.g. 100:50)")
            packages.append(CreditPackage(int(credits), int(stars)))
        if len({p.key for p in packages}) != len(packages):
            raise ValueError("a package is listed twice")
        return tuple(packages)

    @field_validator("support_contact")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_path")
    @classmethod
    def _database_file(cls, value: Path) -> Path:
        """A path that can hold the SQLite file, checked without creating anything:
        otherwise the bot would stop later with a traceback from deep inside SQLite."""
        if str(value) == ":memory:":
            return value
        try:
            if value.is_dir():
                raise ValueError(f"{value} is a folder; it must name a file, "
                                 f"e.g. {value / 'bot.sqlite3'}")
            if value.exists():
                if not value.is_file():
                    raise ValueError(f"{value} is not a regular file")
                if not os.access(value, os.R_OK | os.W_OK):
                    raise ValueError(f"{value} is not readable and writable by this user")
            # The nearest existing folder above it: where the missing folders (or the file,
            # its -wal/-shm companions and the .lock file) will be created.
            ancestor = Path(os.path.abspath(value)).parent
            while not ancestor.exists():
                ancestor = ancestor.parent
        except OSError as error:  # e.g. a folder on the way that this user may not enter
            raise ValueError(f"{value} cannot be checked: {error.strerror}") from None
        if not ancestor.is_dir():
            raise ValueError(f"{value} is under {ancestor}, which is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise ValueError(f"{value} cannot be created: folder {ancestor} is not writable")
        return value

    @field_validator("default_language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        value = value.strip().lower()
        if not value.isalpha() or len(value) > 3:
            raise ValueError("must be a language code such as en or ru")
        return value

    @model_validator(mode="after")
    def _web_needs_a_port(self) -> Settings:
        """Callbacks and the webhook come in through the bot's own web server."""
        for name in ("webhook_url", "kie_callback_url"):
            if getattr(self, name) is not None and self.web_port is None:
                raise ValueError(f"{name.upper()} needs WEB_PORT: the bot serves it itself")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("WEBHOOK_URL needs WEBHOOK_SECRET: without it anyone could post "
                             "updates to the bot")
        return self

    def deadline(self, kind: str) -> float:
        return {"image": self.kie_deadline_image, "video": self.kie_deadline_video,
                "audio": self.kie_deadline_audio}[kind]

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter that redacts them."""
        values = [self.bot_token, self.kie_api_key, self.kie_webhook_hmac_key, self.webhook_secret]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def describe_error(error: ValidationError) -> str:
    """One line naming the first bad setting, never echoing its value (it may be a secret)."""
    first = error.errors()[0]
    if not first["loc"]:  # a rule across settings: its message names them
        return f"Configuration error: {first['msg'].removeprefix('Value error, ')}"
    name = str(first["loc"][0]).upper()
    if first["type"] == "missing":
        return f"Configuration error: {name} is required (set it in the environment or in .env)"
    return f"Configuration error: {name} is invalid: {first['msg']}"
