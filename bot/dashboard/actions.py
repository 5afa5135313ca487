"""What the dashboard's forms do (POST; the guard has checked the session and the CSRF token).
Each does what its command does, through the same services and store calls, with the admin's
id on the ledger row: /topup, /ban and /unban, /refund, /promo add and /promo off, /broadcast stop. A refusal
(Refusal) is shown by the guard, and nothing was done."""

from __future__ import annotations

import re
import time

from aiogram.utils.i18n import gettext as _
from aiohttp import web

from bot.dashboard import auth
from bot.dashboard.site import admin_of, context, done, message_page
from bot.errors import Refusal
from bot.i18n import N_
from bot.services import growth, payments
from bot.services.accounts import parse_amount, tell_topped_up

NOTE_LENGTH = 200
NONCE = re.compile(r"[0-9a-f]{32}\Z")


async def _form(request: web.Request) -> dict[str, str]:
    return {key: value.strip() for key, value in (await request.post()).items()
            if isinstance(value, str)}


async def topup(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await _form(request)
    target = await ctx.store.get_user(int(request.match_info["user"]))
    if target is None:
        return message_page(request, 404, _("No such person"), _("Nobody has this id."))
    amount = parse_amount(form.get("amount", ""))
    if not NONCE.match(form.get("nonce", "")):
        return message_page(request, 400, _("Not done"), _("Open the page again and send its form."))
    row = await ctx.store.topup(target.id, amount, admin_id=admin_of(request),
                                note=form.get("note", "")[:NOTE_LENGTH] or None,
                                source=f"dashboard:{form['nonce']}")
    location = f"{auth.PATH}/people/{target.id}"
    if row is None:  # this form, sent before: applied then
        raise done(location, "repeat")
    await tell_topped_up(ctx.bot, ctx.i18n, target, row)
    raise done(location, "topup")


async def ban(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    target = await ctx.store.get_user(int(request.match_info["user"]))
    if target is None:
        return message_page(request, 404, _("No such person"), _("Nobody has this id."))
    banned = (await _form(request)).get("banned") == "1"
    if banned and target.id in ctx.bot_settings.admin_ids:
        raise Refusal(N_("An admin cannot be banned."))
    await ctx.store.set_banned(target.id, banned)
    raise done(f"{auth.PATH}/people/{target.id}", "banned" if banned else "unbanned")


async def refund(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await _form(request)
    # As /refund <charge id> [force] reads it.
    wanted = payments.parse_refund(form.get("charge_id", "") + (
        f" {payments.FORCE}" if form.get("force") == "1" else ""))
    refunded = await payments.refund(ctx.bot, ctx.store, wanted, admin_id=admin_of(request))
    await payments.tell_buyer(ctx.bot, ctx.i18n, refunded)
    raise done(f"{auth.PATH}/payments", "refunded")


async def promo_add(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await _form(request)
    # /promo add <code> <credits> [uses] [days], read as the command reads it.
    tokens = [form.get("code", ""), form.get("credits", ""), form.get("uses") or "0"]
    if form.get("days"):
        tokens.append(form["days"])
    new = growth.parse_new_promo(tokens)
    added = await ctx.store.add_promo(new.code, credits=new.credits, uses=new.uses,
                                      expires_at=new.expires_at(time.time()),
                                      admin_id=admin_of(request))
    if added is None:
        raise Refusal(N_("The promo code {code} exists already (turned off or not): choose "
                         "another name."), code=new.code)
    raise done(f"{auth.PATH}/promos", "promo_added")


async def promo_off(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    code = growth.promo_code((await _form(request)).get("code", ""), is_admin=True)
    if await ctx.store.turn_off_promo(code) is None:
        raise Refusal(N_("There is no promo code {code}."), code=code)
    raise done(f"{auth.PATH}/promos", "promo_off")


async def stop_broadcast(request: web.Request) -> web.StreamResponse:
    """/broadcast stop: the broadcast under way sends no more copies; its report follows, to
    the admin who started it."""
    ctx = context(request)
    if await ctx.store.broadcasts.stop(time.time()) is None:
        raise Refusal(N_("No broadcast is under way."))
    ctx.broadcaster.wake()
    raise done(f"{auth.PATH}/broadcasts", "stopped")


def add_routes(routes: web.UrlDispatcher) -> None:
    routes.add_post(r"/people/{user:\d{1,15}}/topup", topup, name="topup")
    routes.add_post(r"/people/{user:\d{1,15}}/ban", ban, name="ban")
    routes.add_post("/payments/refund", refund, name="refund")
    routes.add_post("/promos/add", promo_add, name="promo_add")
    routes.add_post("/promos/off", promo_off, name="promo_off")
    routes.add_post("/broadcasts/stop", stop_broadcast, name="stop_broadcast")
