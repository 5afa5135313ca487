"""The start-up contract as `python -m bot` keeps it: a bad setting stops it with exit 2 and one
line naming the setting, no traceback, no secret (the settings themselves: tests/unit/test_config.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import ROOT
from testkit.bot_process import fork_bot

TOKEN = "123456:config-test-token-SECRET"
KEY = "kie-config-test-key-SECRET"
GOOD = {"BOT_TOKEN": TOKEN, "KIE_API_KEY": KEY}


def base(cwd: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "PYTHONPATH": str(ROOT)}


def run_bot(cwd: Path, **env: str) -> tuple[int, str]:
    """`python -m bot` with only these settings; the exit code and everything it printed."""
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=cwd, env={**base(cwd), **env},
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("env", "named"), [
    ({}, "BOT_TOKEN"),
    ({"BOT_TOKEN": TOKEN}, "KIE_API_KEY"),
    ({**GOOD, "KIE_RATE_LIMIT": "abc"}, "KIE_RATE_LIMIT"),
    ({**GOOD, "KIE_RATE_SCOPE": "reads"}, "KIE_RATE_SCOPE"),
    ({**GOOD, "ADMIN_IDS": "1,x"}, "ADMIN_IDS"),
    ({**GOOD, "BOT_TOKEN": "notatoken"}, "BOT_TOKEN"),
], ids=["nothing", "no-key", "rate-limit", "rate-scope", "admin-ids", "token-shape"])
def test_bad_settings_stop_with_one_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    """A missing or invalid setting: exit 2, one line naming it, no traceback, no secret."""
    env = {**env, "KIE_WEBHOOK_HMAC_KEY": "hmac-SECRET", "WEBHOOK_SECRET": "hook-SECRET"}
    code, output = run_bot(tmp_path, **env)
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert named in output and "Traceback" not in output
    assert "SECRET" not in output and "notatoken" not in output


async def test_dotenv_read_and_unknown_language_stops(tmp_path: Path) -> None:
    """`python -m bot` reads `.env` in its working directory; DEFAULT_LANGUAGE=de: exit 2, one line.
    The language is checked past the slow imports: forked from the warm server (bot_process.py)."""
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nKIE_API_KEY={KEY}\nDEFAULT_LANGUAGE=de\n")
    process = await fork_bot(tmp_path, base(tmp_path))
    output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    code = process.returncode
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    # Past the required settings (so .env was read), stopped by the language alone.
    assert "DEFAULT_LANGUAGE" in output and "BOT_TOKEN" not in output, output
    assert "Traceback" not in output and "SECRET" not in output


@pytest.mark.parametrize("url", ["postgresql://u@h:99999/db", "postgresql://u@[::1/kie",
                                 "postgresql://u:pw-SECRET@h:port/db", "postgresql://u@h:0/db",
                                 "postgresql://u@h1:5432,h2:70000/db"],
                         ids=["port-too-big", "open-bracket", "port-not-a-number", "port-0",
                              "second-host"])
def test_database_url_with_a_bad_host_or_port_stops_with_one_line(tmp_path: Path, url: str) -> None:
    """asyncpg would stop with a traceback on it: refused as every invalid setting is."""
    code, output = run_bot(tmp_path, **GOOD, DATABASE_URL=url)
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert "DATABASE_URL is invalid" in output and "host or port" in output, output
    assert "Traceback" not in output and "SECRET" not in output and url not in output


@pytest.mark.parametrize("url", ["https://x/kie?a=1", "https://x/kie#f", "https://x/kie?"])
def test_kie_callback_url_with_a_query_or_fragment_stops_with_one_line(tmp_path: Path,
                                                                       url: str) -> None:
    """The bot appends /<secret>/<id> to KIE_CALLBACK_URL: after ? or # no callback would
    reach its route."""
    code, output = run_bot(tmp_path, **GOOD, WEB_PORT="8080", KIE_CALLBACK_URL=url)
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert "KIE_CALLBACK_URL is invalid" in output and "Traceback" not in output, output
