"""Settings and the start-up contract: one clear line naming a bad setting, secrets never shown."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_error
from bot.logs import REDACTED, RedactSecrets

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:config-test-token-SECRET"
KEY = "kie-config-test-key-SECRET"
GOOD = {"BOT_TOKEN": TOKEN, "KIE_API_KEY": KEY}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting from this process's environment or a stray .env: only what a test gives."""
    for name in Settings.names():
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_settings_from_dotenv_file(no_env: Path) -> None:
    """Settings() reads `.env` in the working directory; ADMIN_IDS "1, 2" is a set of ints."""
    (no_env / ".env").write_text(
        f"BOT_TOKEN={TOKEN}\nKIE_API_KEY={KEY}\nADMIN_IDS=1, 2\nSTARTING_CREDITS=25\n")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.bot.token.get_secret_value() == TOKEN
    assert settings.kie.api_key.get_secret_value() == KEY
    assert settings.bot.admin_ids == frozenset({1, 2})
    assert settings.bot.starting_credits == 25


def test_a_copied_env_example_with_the_two_secrets_filled_in_is_enough(no_env: Path) -> None:
    """Every empty line of .env.example (WEB_PORT=, KIE_POLL_INTERVAL=...) means "unset"."""
    example = (ROOT / ".env.example").read_text()
    filled = example.replace("BOT_TOKEN=\n", f"BOT_TOKEN={TOKEN}\n").replace(
        "KIE_API_KEY=\n", f"KIE_API_KEY={KEY}\n")
    (no_env / ".env").write_text(filled)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.web.port is None and settings.kie.poll_interval is None
    assert settings.kie.callback_url is None and settings.webhook.url is None
    assert settings.payments.support_contact is None and len(settings.payments.packages) == 3


def test_defaults_match_design(no_env: Path) -> None:
    """Every default is the one DESIGN.md's runtime contract lists."""
    settings = Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY)  # type: ignore[call-arg]
    assert settings.bot.admin_ids == frozenset()
    assert settings.store.path == Path("data/bot.sqlite3")
    assert str(settings.bot.api_url).rstrip("/") == "https://api.telegram.org"
    assert str(settings.kie.api_url).rstrip("/") == "https://api.kie.ai"
    assert settings.kie.rate_limit == 20 and settings.kie.rate_scope == "all"
    assert settings.kie.poll_max_interval == 30
    assert settings.kie.poll_interval is None or settings.kie.poll_interval <= 5
    assert (settings.kie.deadline_image, settings.kie.deadline_video,
            settings.kie.deadline_audio) == (600, 1800, 900)
    assert [settings.kie.deadline(k) for k in ("image", "video", "audio")] == [600, 1800, 900]
    assert settings.kie.callback_url is None and settings.kie.webhook_hmac_key is None
    assert settings.web.host is None and settings.web.port is None
    assert settings.webhook.url is None and settings.webhook.secret is None
    assert settings.bot.starting_credits == 0
    assert settings.bot.default_language == "en"


def test_settings_never_show_secrets(no_env: Path) -> None:
    """repr, str and JSON of the settings hide every secret; secrets() lists all of them."""
    url = "postgresql://bot:pg-SECRET@db:5432/bot"
    settings = Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY,  # type: ignore[call-arg]
                        kie_webhook_hmac_key="hmac-SECRET", webhook_secret="hook-SECRET",
                        database_url=url)
    for text in (repr(settings), str(settings), settings.model_dump_json(),
                 str(settings.model_dump())):
        assert "SECRET" not in text
    assert sorted(settings.secrets()) == sorted([TOKEN, KEY, "hmac-SECRET", "hook-SECRET",
                                                 "pg-SECRET", url])
    assert settings.store.target == url


@pytest.mark.parametrize(("value", "problem"), [
    ("mysql://root@db/bot", "postgresql://"), ("db:5432", "postgresql://")])
def test_database_url_must_be_postgresql(no_env: Path, value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY,  # type: ignore[call-arg]
                 database_url=value)
    line = describe_error(error.value)
    assert "DATABASE_URL is invalid" in line and problem in line and value not in line


def render(record: logging.LogRecord, secret: str) -> str:
    assert RedactSecrets([secret, ""]).filter(record)
    return logging.Formatter("%(levelname)s %(message)s").format(record)


def test_redact_plain_message() -> None:
    """A secret in a log message is replaced by ***."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, f"token is {TOKEN}!", None, None)
    assert render(record, TOKEN) == f"INFO token is {REDACTED}!"


def test_redact_message_args() -> None:
    """A secret passed as a %-argument is replaced by ***, the rest of the message kept."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "url %s?key=%s n=%d",
                               ("https://x", KEY, 3), None)
    assert render(record, KEY) == f"INFO url https://x?key={REDACTED} n=3"


def test_redact_exception_text() -> None:
    """A secret inside an exception's message is replaced by *** in the formatted traceback."""
    try:
        raise RuntimeError(f"request to /bot{TOKEN}/getMe failed")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, exc_info)
    text = render(record, TOKEN)
    assert TOKEN not in text
    assert f"RuntimeError: request to /bot{REDACTED}/getMe failed" in text


def test_record_without_secret_is_untouched() -> None:
    """A record with no secret keeps its msg and args (lazy formatting is preserved)."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "n=%d", (3,), None)
    assert render(record, TOKEN) == "INFO n=3"
    assert (record.msg, record.args) == ("n=%d", (3,))


def test_malformed_log_call_does_not_raise() -> None:
    """A log call whose args don't fit its format must not raise out of the filter."""
    logger = logging.getLogger("tests.test_config.malformed")
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(RedactSecrets([TOKEN]))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("%d items", "many")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def database_error(path: Path) -> str | None:
    """describe_error's line for DATABASE_PATH=path, or None if the settings are valid."""
    try:
        Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY,  # type: ignore[call-arg]
                 database_path=path)
    except ValidationError as error:
        return describe_error(error)
    return None


def test_database_path_folder_is_refused(tmp_path: Path) -> None:
    """An existing folder cannot be the SQLite file: one line naming DATABASE_PATH."""
    line = database_error(tmp_path)
    assert line is not None and "DATABASE_PATH" in line and "folder" in line, line
    assert str(tmp_path) in line and "\n" not in line


def test_database_path_under_a_file_is_refused(tmp_path: Path) -> None:
    """A path whose parent is a regular file can never be created."""
    (tmp_path / "plain").write_text("not a folder")
    line = database_error(tmp_path / "plain" / "sub" / "bot.sqlite3")
    assert line is not None and "DATABASE_PATH" in line, line
    assert "which is a file" in line and "\n" not in line


def test_database_path_in_missing_folders_is_fine_and_not_created(tmp_path: Path) -> None:
    """Folders are created at start (DESIGN.md), not by checking the settings."""
    path = tmp_path / "new" / "nested" / "bot.sqlite3"
    assert database_error(path) is None
    assert not (tmp_path / "new").exists()


def test_database_path_existing_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "bot.sqlite3").touch()
    assert database_error(tmp_path / "bot.sqlite3") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_database_path_in_unwritable_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        line = database_error(locked / "data" / "bot.sqlite3")
    finally:
        locked.chmod(0o755)
    assert line is not None and "DATABASE_PATH" in line and "not writable" in line, line


def test_kie_callback_url_with_a_path_is_fine(no_env: Path) -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY,  # type: ignore[call-arg]
                        web_port=8080, kie_callback_url="https://bot.example.com/kie/")
    assert str(settings.kie.callback_url) == "https://bot.example.com/kie/"


@pytest.mark.parametrize("url", ["postgresql://bot:pw@db:5432/bot", "postgres://u@[::1]:5432/db",
                                 "postgresql://u@h1:5432,h2/db", "postgresql:///db?host=/run/pg"])
def test_database_url_forms_asyncpg_takes_are_accepted(no_env: Path, url: str) -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, kie_api_key=KEY,  # type: ignore[call-arg]
                        database_url=url)
    assert settings.store.target == url
