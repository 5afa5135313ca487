"""Who may see the dashboard: one-time sign-in links, sessions, and CSRF tokens.

A link carries a random token that opens one session within LINK_LIFETIME; the session's random
id travels in a cookie (HttpOnly, SameSite=Strict, Secure behind https) for SESSION_LIFETIME.
The database keeps only their SHA-256 (store/dashboard.py). A form's CSRF token is an HMAC of
the session id: bound to that session, never stored, and unknown to a page on another site,
which cannot read the cookie."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bot.store.dashboard import DashboardStore

LINK_LIFETIME = 10 * 60.0
SESSION_LIFETIME = 12 * 3600.0
PATH = "/dashboard"
COOKIE = "dashboard_session"
CSRF_FIELD = "csrf"


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What the database keeps of a token: a random one needs no slow hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"dashboard csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_id: str, given: str) -> bool:
    # compare_digest takes ASCII only: anything else is no token of ours.
    return given.isascii() and hmac.compare_digest(csrf_token(session_id), given)


async def issue_link(store: DashboardStore, *, admin_id: int, base: str, now: float) -> str:
    """A sign-in link for `admin_id`, valid once within LINK_LIFETIME; `base` is the web
    server's public address (WebSettings.dashboard_base)."""
    token = new_token()
    await store.add_link(digest(token), admin_id=admin_id, expires_at=now + LINK_LIFETIME)
    return f"{base}{PATH}/login/{token}"


async def sign_in(store: DashboardStore, token: str, *, now: float) -> tuple[str, int] | None:
    """Spend a link's token on a new session: (session id for the cookie, admin id), or None
    when the link is unknown, used or expired."""
    session_id = new_token()
    admin_id = await store.open_session(digest(token), digest(session_id), now=now,
                                        expires_at=now + SESSION_LIFETIME)
    return None if admin_id is None else (session_id, admin_id)
