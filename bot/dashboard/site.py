"""What every request of the dashboard passes and every page is rendered with: the guard (a
live session of someone still in ADMIN_IDS; on a POST, the form's CSRF token), signing in and
out, the language of each page, and `render`.

Pages (pages.py) and the forms' actions (actions.py) are plain handlers; they find what they
need in `context(request)` and who is signed in in `admin_of(request)`; routes.py puts them
all together.

Every word of a page comes from the bot's catalogs (locales/), in the language `_locale` picks for
the request: the templates call `_()` and `ngettext()` (translate, translate_plural) and Python
code aiogram's `gettext`, both under the locale the guard sets, as the bot's middleware does for
an update."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiogram import Bot
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup

from bot.config import BotSettings
from bot.dashboard import auth
from bot.errors import Refusal
from bot.handlers.language import languages
from bot.i18n import N_, locale_of
from bot.services.broadcast import Broadcaster
from bot.store import Store
from bot.store.dashboard import DashboardStore

HERE = Path(__file__).parent
# The language the admin chose with the dashboard's own switch (?lang=), for a year.
LANGUAGE_COOKIE = "dashboard_language"
LANGUAGE_LIFETIME = 365 * 86400


@dataclass(frozen=True, slots=True)
class Context:
    store: Store
    dashboard: DashboardStore
    bot: Bot
    i18n: I18n
    bot_settings: BotSettings
    broadcaster: Broadcaster
    secure: bool      # DASHBOARD_URL is https: the cookie is Secure
    now: Callable[[], float] = time.time


CONTEXT = web.AppKey("context", Context)
ADMIN = web.RequestKey("admin", int)
SESSION = web.RequestKey("session", str)
OPEN_ROUTES = frozenset({"login", "static"})  # served without a session


def context(request: web.Request) -> Context:
    return request.config_dict[CONTEXT]


def admin_of(request: web.Request) -> int:
    return request[ADMIN]


def render(request: web.Request, template: str, *, status: int = 200,
           **values: Any) -> web.Response:
    """A page, with what the layout needs: the signed-in admin and the CSRF token of their
    session (for every form), and the notice a redirect after a form named."""
    session = request.get(SESSION)
    notice = NOTICES.get(request.query.get("done", ""))
    values.setdefault("notice", _(notice) if notice else None)
    i18n = context(request).i18n
    return aiohttp_jinja2.render_template(template, request, {
        **values, "admin": request.get(ADMIN), "csrf": auth.csrf_token(session) if session else None,
        "csrf_field": auth.CSRF_FIELD, "lang": i18n.current_locale,
        # The switch links to this page with ?lang=: a GET, so not after a form.
        "languages": switch(request, i18n) if request.method == "GET" else []}, status=status)


def switch(request: web.Request, i18n: I18n) -> list[tuple[str, str, str]]:
    """The language switch: each language's code, its own name, and the link to this page in
    it: the page's query as it is (a search, a filter, a page number), its `lang` replaced and
    a form's one-off notice (`done`) left out."""
    kept = [(name, value) for name, value in request.query.items()
            if name not in ("lang", "done")]
    return [(code, name, "?" + urlencode([*kept, ("lang", code)], quote_via=quote))
            for code, name in languages(i18n)]


def translate(message: str, /, **params: object) -> str:
    """The templates' `_()`: a message id in the request's language, its {placeholders}
    filled in escaped (they may be names people chose); the page escapes a plain result."""
    text = _(message)
    return Markup.escape(text).format(**params) if params else text


def translate_plural(singular: str, plural: str, count: int, /, **params: object) -> str:
    """The templates' `ngettext()`: the form for `count`, with `{n}` (the count, unless a param
    `n` stands for it: the number in some markup) and the params filled in."""
    return Markup.escape(ngettext(singular, plural, count)).format(**{"n": count, **params})


def message_page(request: web.Request, status: int, title: str, text: str) -> web.Response:
    return render(request, "message.html", status=status, title=title, text=text)


# What a form's redirect may say (`?done=<key>`): fixed texts, so a crafted URL can make the
# page say nothing else.
NOTICES: Mapping[str, str] = {
    "topup": N_("Credits added."),
    "repeat": N_("This form had been sent already: it was applied once."),
    "banned": N_("Banned."),
    "unbanned": N_("No longer banned."),
    "refunded": N_("Refunded: the Stars went back and the credits were taken back."),
    "promo_added": N_("Promo code added."),
    "promo_off": N_("Promo code withdrawn."),
    "stopped": N_("Broadcast stopped."),
}


def done(location: str, notice: str) -> web.HTTPSeeOther:
    """After a form: back to the page, saying what was done (POST, redirect, GET)."""
    assert notice in NOTICES
    return web.HTTPSeeOther(f"{location}?done={notice}")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.name
    ctx = context(request)
    if route not in OPEN_ROUTES:
        session = request.cookies.get(auth.COOKIE, "")
        admin = (await ctx.dashboard.session_admin(auth.digest(session), now=ctx.now())
                 if session else None)
        # Removed from ADMIN_IDS: the session opens nothing any more.
        if admin is not None and admin in ctx.bot_settings.admin_ids:
            request[SESSION], request[ADMIN] = session, admin
    chosen = request.query.get("lang")
    with ctx.i18n.context(), ctx.i18n.use_locale(await _locale(request, request.get(ADMIN))):
        response = await _guarded(request, handler)
    if chosen in ctx.i18n.available_locales:  # the switch: remembered on this browser
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=LANGUAGE_LIFETIME, path=auth.PATH,
                            httponly=True, samesite="Strict", secure=ctx.secure)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name not in OPEN_ROUTES:
        if ADMIN not in request:
            return message_page(request, 403, _("Not signed in"),
                                _("Send /dashboard to the bot: it answers with a link that "
                                  "signs you in."))
        if request.method == "POST":
            form = await request.post()
            if not auth.csrf_ok(request[SESSION], str(form.get(auth.CSRF_FIELD, ""))):
                return message_page(request, 403, _("Refused"),
                                    _("This form is not from your session: nothing was done. "
                                      "Open the page again and send it from there."))
    try:
        return await handler(request)
    except Refusal as refusal:  # the command's refusal, in words: nothing was done
        # Its reason only (a command's usage means nothing here); the params escaped.
        return render(request, "message.html", status=409, title=_("Not done"),
                      markup=refusal.text(_))


async def _locale(request: web.Request, admin: int | None) -> str:
    """The dashboard's switch (?lang=, then its cookie), else the admin's language in the bot,
    else the browser's first language, else the bot's default."""
    i18n = context(request).i18n
    for chosen in (request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if chosen in i18n.available_locales:
            return chosen
    if admin is not None:
        return locale_of(await context(request).store.get_user(admin), i18n)
    browser = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
    return locale_of(None, i18n, browser)


async def login(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    signed = await auth.sign_in(ctx.dashboard, request.match_info["token"], now=ctx.now())
    if signed is None or signed[1] not in ctx.bot_settings.admin_ids:
        return message_page(request, 403, _("Link used or expired"),
                            _("This link was used already or has expired. Send /dashboard to "
                              "the bot for a new one."))
    session, admin = signed
    # A page that moves on by itself rather than a 302: a browser sends a SameSite=Strict
    # cookie on the next request only when the page that asks is the site's own (a redirect
    # from a link followed on another site, Telegram Web's, would arrive without it).
    with ctx.i18n.use_locale(await _locale(request, admin)):  # theirs, from now on
        response = render(request, "signed_in.html")
    response.set_cookie(auth.COOKIE, session, max_age=int(auth.SESSION_LIFETIME),
                        path=auth.PATH, httponly=True, samesite="Strict", secure=ctx.secure)
    response.headers["Referrer-Policy"] = "no-referrer"  # the spent link stays in this page
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    await context(request).dashboard.close_session(auth.digest(request[SESSION]))
    response = message_page(request, 200, _("Signed out"),
                            _("Send /dashboard to the bot to sign in again."))
    response.del_cookie(auth.COOKIE, path=auth.PATH)
    return response


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Nothing of the dashboard is cached, framed, or given a script it did not ship."""
    response = await handler(request)
    if request.match_info.route.name != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    return response
