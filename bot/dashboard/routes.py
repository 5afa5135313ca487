"""The dashboard as an aiohttp sub-application, mounted under /dashboard on the bot's web
server (bot/web.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiogram import Bot
from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.config import BotSettings, WebSettings
from bot.dashboard import actions, auth, pages
from bot.dashboard.charts import number
from bot.dashboard.site import (
    CONTEXT,
    HERE,
    Context,
    guard,
    headers,
    login,
    logout,
    translate,
    translate_plural,
)
from bot.services.broadcast import Broadcaster
from bot.store import Store
from bot.store.dashboard import DashboardStore


def build(*, store: Store, bot: Bot, i18n: I18n, bot_settings: BotSettings,
          web_settings: WebSettings, broadcaster: Broadcaster) -> web.Application:
    """The sub-application, for `mount`."""
    app = web.Application(middlewares=[headers, guard])
    app[CONTEXT] = Context(
        store=store, dashboard=DashboardStore(store.database), bot=bot, i18n=i18n,
        bot_settings=bot_settings, broadcaster=broadcaster,
        secure=urlsplit(web_settings.dashboard_base()).scheme == "https")
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = pages.when
    env.globals["model_name"] = pages.model_name
    # Not jinja2.ext.i18n: its {% trans %} speaks %(name)s, the catalogs {name}.
    env.globals["_"] = translate
    env.globals["ngettext"] = translate_plural
    env.filters.update(pages.WORDS)
    env.filters["number"] = number
    routes = app.router
    routes.add_get("/login/{token}", login, name="login")
    routes.add_post("/logout", logout, name="logout")
    routes.add_static("/static", HERE / "static", name="static")
    pages.add_routes(routes)
    actions.add_routes(routes)
    return app


def mount(server: web.Application, dashboard: web.Application) -> None:
    """Under /dashboard of the bot's web server (and /dashboard itself: the overview)."""
    server.router.add_get(auth.PATH, _to_overview)
    server.add_subapp(auth.PATH, dashboard)


async def _to_overview(_: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(auth.PATH + "/")
