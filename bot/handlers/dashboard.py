"""/dashboard (admins): a one-time link to the web dashboard, in the admin's private chat."""

from __future__ import annotations

import html
import time

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.config import WebSettings
from bot.dashboard.auth import issue_link
from bot.errors import Refusal
from bot.i18n import N_
from bot.services.private import send_privately
from bot.store import Store, User
from bot.store.dashboard import DashboardStore

NO_SERVER = N_("The dashboard is served by the bot's own web server, which is off: set WEB_PORT "
               "(and DASHBOARD_URL, its public address), then restart the bot.")


async def dashboard(message: Message, *, is_admin: bool, account: User, store: Store, bot: Bot,
                    web_settings: WebSettings) -> None:
    if not is_admin:
        raise Refusal(N_("This command is for admins only."))
    if web_settings.port is None:
        raise Refusal(NO_SERVER)
    link = await issue_link(DashboardStore(store.database), admin_id=account.id,
                            base=web_settings.dashboard_base(), now=time.time())
    # The link opens the dashboard for whoever holds it: never into a group.
    await send_privately(bot, account, message, "🔐 " + _(
        "Your link to the dashboard. It opens it once, within 10 minutes, and is for you "
        "alone:\n{link}").format(link=html.escape(link)))


def make_router() -> Router:
    router = Router(name="dashboard")
    router.message.register(dashboard, Command("dashboard"))
    return router
