"""The dashboard's pages (GET): the overview with its charts, people and a person, generations,
payments, promo codes, broadcasts. They read; the forms on them post to actions.py."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from aiogram.utils.i18n import gettext as _
from aiohttp import web

from bot import texts
from bot.catalog import get_model
from bot.dashboard.charts import Chart, Series, bar_chart
from bot.dashboard.site import context, message_page, render
from bot.handlers.admin import state_name
from bot.handlers.growth import PROMO_STATES
from bot.i18n import N_
from bot.services import growth, stats
from bot.services.accounts import ascii_number
from bot.services.broadcast import audience_name
from bot.store import GenerationState
from bot.store.broadcasts import BroadcastState
from bot.store.daily import DayStats, total

DAYS = 14           # the overview's period unless ?days= says otherwise
MAX_DAYS = 90
PAGE = 50           # rows per page of a list
PERSON_ROWS = 30    # of each list on a person's page
TOP_MODELS = 5      # failures by model: these, and the rest as "other"
KINDS = ("image", "video", "audio")
BROADCAST_STATES: Mapping[str, str] = {
    BroadcastState.SENDING: N_("sending"), BroadcastState.DONE: N_("sent"),
    BroadcastState.STOPPED: N_("stopped")}


def when(timestamp: float | None) -> str:
    """A moment in UTC, to the minute (the pages say once that times are UTC)."""
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def model_name(model_id: str) -> str:
    model = get_model(model_id)
    return texts.model_title(model) if model else model_id


def _words(names: Mapping[str, str]) -> Callable[[str], str]:
    """A stored value (a state, a kind) in the page's language; one it does not know as it is."""
    return lambda value: _(names[value]) if value in names else value


# The templates' filters for stored values: `{{ g.state|generation_state }}`.
WORDS: Mapping[str, Callable[[str], str]] = {
    "generation_state": state_name, "ledger_kind": texts.ledger_kind, "audience": audience_name,
    "kind": _words(texts.KIND_WORDS), "promo_state": _words(PROMO_STATES),
    "broadcast_state": _words(BROADCAST_STATES),
}


def _number(request: web.Request, name: str, default: int, high: int) -> int:
    """A whole number from the query (1..high), or `default` for anything else."""
    value = ascii_number(request.query.get(name, ""))
    return value if value is not None and 1 <= value <= high else default


async def overview(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    days = _number(request, "days", DAYS, MAX_DAYS)
    figures = await stats.daily(ctx.store, days=days, now=ctx.now())
    return render(request, "overview.html", nav="overview", days=days, total=total(figures),
                  charts=charts(figures, ctx.i18n.current_locale), choices=(7, 14, 30, 90))


def charts(figures: list[DayStats], locale: str) -> list[Chart]:
    """The overview's charts, from the per-day figures; their dates in `locale` (the page's
    language), as every other word of them."""
    dates = [day.day for day in figures]
    kinds = list(KINDS) + sorted({kind for day in figures for kind in day.by_kind} - set(KINDS))
    failed = total(figures).failures_by_model
    top = sorted(failed, key=lambda model: (-failed[model], model))[:TOP_MODELS]
    failures = [Series(model_name(model), [day.failures_by_model.get(model, 0) for day in figures])
                for model in top]
    if len(failed) > len(top):
        failures.append(Series(_("other"), [sum(count for model, count in
                                                day.failures_by_model.items() if model not in top)
                                            for day in figures]))
    kind_name = _words(texts.KIND_TITLES)
    return [
        bar_chart("generations", _("Generations by kind"), dates,
                  [Series(kind_name(kind), [day.by_kind.get(kind, 0) for day in figures])
                   for kind in kinds], locale=locale),
        bar_chart("stars", _("Stars received (refunds deducted)"), dates,
                  [Series(_("Stars received"), [day.stars for day in figures])], locale=locale,
                  unit=" ⭐"),
        bar_chart("credits", _("Credits charged and refunded"), dates,
                  [Series(_("charged"), [day.charged for day in figures]),
                   Series(_("refunded"), [day.refunded for day in figures])], locale=locale,
                  stacked=False),
        bar_chart("failures", _("Failures by model"), dates, failures, locale=locale),
        bar_chart("kie", _("Kie.ai credits spent"), dates,
                  [Series(_("by the catalog's cost"), [day.kie_credits for day in figures]),
                   Series(_("as Kie's balance fell"), [day.kie_drop or 0 for day in figures])],
                  locale=locale, stacked=False),
        bar_chart("margin", _("Margin (Stars in, Kie spend out)"), dates,
                  [Series(_("margin"), [day.margin_usd for day in figures])], locale=locale,
                  unit=" USD"),
    ]


async def people(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "")[:100]
    found = await context(request).dashboard.find_people(query, limit=PAGE)
    return render(request, "people.html", nav="people", query=query, people=found)


async def person(request: web.Request) -> web.StreamResponse:
    store = context(request).store
    user_id = int(request.match_info["user"])
    user = await store.get_user(user_id)
    if user is None:
        return message_page(request, 404, _("No such person"),
                            _("Nobody with the id {id} has started the bot.").format(id=user_id))
    return render(request, "person.html", nav="people", person=user,
                  is_admin=user.id in context(request).bot_settings.admin_ids,
                  ledger=await store.ledger(user.id, PERSON_ROWS),
                  purchases=await store.purchases_of(user.id, PERSON_ROWS),
                  generations=await store.generations_of(user.id, limit=PERSON_ROWS),
                  # The top-up form's own key: sent twice, it is applied once.
                  nonce=secrets.token_hex(16))


async def generations(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    models = await ctx.dashboard.generation_models()
    state = request.query.get("state") if request.query.get("state") in set(GenerationState) else None
    model = request.query.get("model") if request.query.get("model") in models else None
    page = _number(request, "page", 1, 1_000_000)
    rows = await ctx.dashboard.generations(state=state, model=model, limit=PAGE + 1,
                                           offset=(page - 1) * PAGE)
    return render(request, "generations.html", nav="generations", generations=rows[:PAGE],
                  people=await ctx.dashboard.people(g.user_id for g in rows),
                  states=list(GenerationState), models=models, state=state, model=model,
                  page=page, more=len(rows) > PAGE)


async def payments(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    page = _number(request, "page", 1, 1_000_000)
    rows = await ctx.dashboard.purchases(limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render(request, "payments.html", nav="payments", rows=rows[:PAGE],
                  people=await ctx.dashboard.people(p.user_id for p in rows), page=page,
                  more=len(rows) > PAGE)


async def promos(request: web.Request) -> web.StreamResponse:
    codes = await context(request).store.promo_codes(PAGE * 4)
    return render(request, "promos.html", nav="promos",
                  codes=[(code, growth.state(code)) for code in codes])


async def broadcasts(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    rows = await ctx.dashboard.broadcasts(limit=PAGE)
    under_way = min((b.id for b in rows if b.state == BroadcastState.SENDING), default=None)
    return render(request, "broadcasts.html", nav="broadcasts", under_way=under_way,
                  rows=[(b, await ctx.store.broadcasts.tally(b.id)) for b in rows],
                  people=await ctx.dashboard.people(b.admin_id for b in rows))


def add_routes(routes: web.UrlDispatcher) -> None:
    routes.add_get("/", overview, name="overview")
    routes.add_get("/people", people, name="people")
    routes.add_get(r"/people/{user:\d{1,15}}", person, name="person")
    routes.add_get("/generations", generations, name="generations")
    routes.add_get("/payments", payments, name="payments")
    routes.add_get("/promos", promos, name="promos")
    routes.add_get("/broadcasts", broadcasts, name="broadcasts")
