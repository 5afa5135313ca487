"""Settings: the runtime contract of DESIGN.md, read from the environment and `.env`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined
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


def env(name: str, default: Any = PydanticUndefined) -> Any:
    """A field read from the variable `name` (any case) of the runtime contract; the error
    that names a bad value names that variable."""
    return Field(default, validation_alias=name)


class _Group(BaseSettings):
    # An empty value (`WEB_PORT=` in a copied .env.example, or passed on by Compose) is unset.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True, frozen=True)

    @classmethod
    def names(cls) -> list[str]:
        """The variables of this group, lower case (as Settings' keyword arguments)."""
        return [str(f.validation_alias) for f in cls.model_fields.values()]


class BotSettings(_Group):
    """The Telegram bot itself: who it is, who runs it, what each user may do."""

    token: SecretStr = env("bot_token")
    admin_ids: Annotated[frozenset[int], NoDecode] = env("admin_ids", frozenset())
    api_url: AnyHttpUrl = env("telegram_api_url", AnyHttpUrl("https://api.telegram.org"))
    starting_credits: Annotated[int, Field(ge=0, le=1_000_000)] = env("starting_credits", 0)
    default_language: str = env("default_language", "en")
    # Fairness: what one (non-admin) user may have running, and start per minute.
    max_open_generations: Annotated[int, Field(ge=1)] = env("max_open_generations", 3)
    max_starts_per_minute: Annotated[int, Field(ge=1)] = env("max_starts_per_minute", 10)
    # Seconds a finished result may wait for Telegram (outages) before it is refunded.
    delivery_deadline: Seconds = env("delivery_deadline", 3600.0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = env("log_level", "INFO")

    @field_validator("token")
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("default_language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        value = value.strip().lower()
        if not value.isalpha() or len(value) > 3:
            raise ValueError("must be a language code such as en or ru")
        return value


class KieSettings(_Group):
    """Kie.ai: the account, its rate limit, how tasks are followed, and its callbacks."""

    api_key: SecretStr = env("kie_api_key")
    # More keys (accounts) beside it: each with its own KIE_RATE_LIMIT.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = env("kie_api_keys", ())
    api_url: AnyHttpUrl = env("kie_api_url", AnyHttpUrl(KIE_API_URL))
    upload_url: AnyHttpUrl = env("kie_upload_url", AnyHttpUrl(KIE_UPLOAD_URL))
    rate_limit: Annotated[int, Field(ge=1)] = env("kie_rate_limit", 20)
    # The window Kie counts KIE_RATE_LIMIT in; only tests and benchmarks shrink it.
    rate_window: Seconds = env("kie_rate_window", 10.0)
    # What KIE_RATE_LIMIT counts: every call, or only creates (reads then learn their own
    # budget: bot/kie/budget.py).
    rate_scope: Literal["all", "creates"] = env("kie_rate_scope", "all")
    # Unset = the schedule learned for each model (services/schedule.py).
    poll_interval: Seconds | None = env("kie_poll_interval", None)
    poll_max_interval: Seconds = env("kie_poll_max_interval", 30.0)
    deadline_image: Seconds = env("kie_deadline_image", 600.0)
    deadline_video: Seconds = env("kie_deadline_video", 1800.0)
    deadline_audio: Seconds = env("kie_deadline_audio", 900.0)
    callback_url: AnyHttpUrl | None = env("kie_callback_url", None)
    webhook_hmac_key: SecretStr | None = env("kie_webhook_hmac_key", None)
    # Admins are alerted once each time the Kie.ai account's credits fall below this; 0 = off.
    low_credit_alert: Annotated[float, Field(ge=0)] = env("kie_low_credit_alert", 0)

    @field_validator("callback_url")
    @classmethod
    def _appendable(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        """Each task's callback URL is this one plus /<secret>/<generation id>."""
        if value is not None and (value.query is not None or value.fragment is not None):
            raise ValueError("must have no query string (?) or fragment (#): the bot appends "
                             "/<secret>/<id> to it")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        """Comma-separated; blanks ignored."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def keys(self) -> list[SecretStr]:
        """Every key, KIE_API_KEY first, each once."""
        found: dict[str, SecretStr] = {}
        for key in (self.api_key, *self.api_keys):
            found.setdefault(key.get_secret_value(), key)
        return list(found.values())

    def deadline(self, kind: str) -> float:
        return {"image": self.deadline_image, "video": self.deadline_video,
                "audio": self.deadline_audio}[kind]


class WebSettings(_Group):
    """The bot's own web server (/healthz, Kie callbacks, the webhook): off without a port."""

    host: str | None = env("web_host", None)
    port: Annotated[int, Field(ge=1, le=65535)] | None = env("web_port", None)
    # Where admins' browsers reach the server (behind a reverse proxy: its https address);
    # unset = http://WEB_HOST:WEB_PORT.
    dashboard_url: AnyHttpUrl | None = env("dashboard_url", None)

    def dashboard_base(self) -> str:
        """The base of /dashboard links, without a trailing slash."""
        if self.dashboard_url is not None:
            return str(self.dashboard_url).rstrip("/")
        return f"http://{self.host or '127.0.0.1'}:{self.port}"


class WebhookSettings(_Group):
    """Telegram's webhook: long polling without a URL."""

    url: AnyHttpUrl | None = env("webhook_url", None)
    secret: SecretStr | None = env("webhook_secret", None)


def postgres_url_problem(url: str) -> str | None:
    """What keeps `url` from being a PostgreSQL URL, or None; never its text (it may hold a
    password). Checked before asyncpg sees it: a host or port it cannot parse is a traceback."""
    if not url.startswith(("postgresql://", "postgres://")):
        return "must be a postgresql:// URL"
    try:
        hosts = urlsplit(url).netloc.rpartition("@")[2]
        if all(urlsplit(f"//{host}").port != 0 for host in hosts.split(",")):  # h1:p1,h2:p2
            return None
    except ValueError:  # "Invalid IPv6 URL", a port that is no number or is over 65535
        pass
    return "has a malformed host or port (a port is 1-65535, an IPv6 address goes in [brackets])"


class StoreSettings(_Group):
    """Where the data lives: the SQLite file, or PostgreSQL when a URL is given."""

    path: Path = env("database_path", Path("data/bot.sqlite3"))
    url: SecretStr | None = env("database_url", None)  # it may hold a password
    pool_size: Annotated[int, Field(ge=1, le=1000)] = env("database_pool_size", 10)

    @property
    def target(self) -> Path | str:
        """What Store.open is given."""
        return self.url.get_secret_value() if self.url is not None else self.path

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        problem = postgres_url_problem(value.get_secret_value()) if value is not None else None
        if problem:
            raise ValueError(f"it {problem}")
        return value

    @field_validator("path")
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


class PaymentSettings(_Group):
    """Telegram Stars: what /buy offers, and who answers for payments."""

    packages: Annotated[tuple[CreditPackage, ...], NoDecode] = env("credit_packages", (
        CreditPackage(100, 50), CreditPackage(500, 200), CreditPackage(2000, 700)))
    support_contact: str | None = env("support_contact", None)

    @field_validator("packages", mode="before")
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


class CatalogSettings(_Group):
    """The models offered: the shipped catalog file, or the operator's in its place."""

    path: FilePath | None = env("catalog_path", None)
    # What ✨ Improve (a prompt rewritten by Kie's chat endpoint) costs; 0 = free.
    improve_price: Annotated[int, Field(ge=0, le=1_000_000)] = env("prompt_improve_price", 1)


class GrowthSettings(_Group):
    """Invites (what a newcomer gets for starting through one, the inviter's share) and
    broadcasts."""

    join_bonus: Annotated[int, Field(ge=0, le=1_000_000)] = env("referral_join_bonus", 0)
    # Of the credits of each purchase by someone invited, rounded down; 0 = none.
    referral_percent: Annotated[int, Field(ge=0, le=100)] = env("referral_percent", 10)
    # Broadcast copies per second, all chats together (Telegram allows about 30 in all).
    broadcast_rate: Annotated[float, Field(gt=0, le=30)] = env("broadcast_rate", 20)


GROUPS: dict[str, type[_Group]] = {
    "bot": BotSettings, "kie": KieSettings, "web": WebSettings, "webhook": WebhookSettings,
    "store": StoreSettings, "payments": PaymentSettings, "catalog": CatalogSettings,
    "growth": GrowthSettings}


class Settings(BaseModel):
    """Every setting, grouped by what it configures; each part depends only on its group.

    `Settings()` reads the environment, then `.env` (`_env_file`: another file, or None for
    none); keyword arguments name the variables in lower case and win over both."""

    model_config = ConfigDict(frozen=True)

    bot: BotSettings
    kie: KieSettings
    web: WebSettings
    webhook: WebhookSettings
    store: StoreSettings
    payments: PaymentSettings
    catalog: CatalogSettings
    growth: GrowthSettings

    def __init__(self, _env_file: Path | str | None = ".env", **values: Any) -> None:
        unknown = set(values) - {name for group in GROUPS.values() for name in group.names()}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        super().__init__(**{
            key: group(_env_file=_env_file,
                       **{name: values[name] for name in group.names() if name in values})
            for key, group in GROUPS.items()})

    @classmethod
    def names(cls) -> list[str]:
        """Every variable of the runtime contract, lower case."""
        return [name for group in GROUPS.values() for name in group.names()]

    @model_validator(mode="after")
    def _web_needs_a_port(self) -> Settings:
        """Callbacks and the webhook come in through the bot's own web server."""
        for name, value in (("WEBHOOK_URL", self.webhook.url),
                            ("KIE_CALLBACK_URL", self.kie.callback_url)):
            if value is not None and self.web.port is None:
                raise ValueError(f"{name} needs WEB_PORT: the bot serves it itself")
        if self.webhook.url is not None and self.webhook.secret is None:
            raise ValueError("WEBHOOK_URL needs WEBHOOK_SECRET: without it anyone could post "
                             "updates to the bot")
        return self

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter that redacts them."""
        values = [self.bot.token, *self.kie.keys(), self.kie.webhook_hmac_key,
                  self.webhook.secret]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        if self.store.url is not None:  # its password, and the whole URL around it
            url = urlsplit(self.store.url.get_secret_value())
            found += [part for part in (url.password, self.store.url.get_secret_value()) if part]
        return found


def describe_error(error: ValidationError) -> str:
    """One line naming the first bad setting, never echoing its value (it may be a secret)."""
    first = error.errors()[0]
    if not first["loc"]:  # a rule across settings: its message names them
        return f"Configuration error: {first['msg'].removeprefix('Value error, ')}"
    name = str(first["loc"][0]).upper()
    if first["type"] == "missing":
        return f"Configuration error: {name} is required (set it in the environment or in .env)"
    return f"Configuration error: {name} is invalid: {first['msg']}"
