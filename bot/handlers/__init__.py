"""Routers, thin: parse the update, call a service, answer."""

from aiogram import Router

from bot.handlers import (
    admin,
    broadcast,
    chats,
    compose,
    dashboard,
    follow_ups,
    generate,
    growth,
    history,
    improve,
    info,
    language,
    payments,
    refusals,
)


def build_router() -> Router:
    router = Router(name="root")
    refusals.setup(router)
    # No two of them take the same update but the last two, so the order is what an update
    # passes through before its own: each router passed costs ~10 µs (aiogram's middleware
    # wrapping and filter checks); the busiest first.
    router.include_routers(info.make_router(), generate.make_router(), chats.make_router(),
                           admin.make_router(), follow_ups.make_router(), improve.make_router(),
                           history.make_router(), language.make_router(),
                           payments.make_router(), growth.make_router(),
                           dashboard.make_router(), broadcast.make_router(),
                           compose.make_router(),  # after every command: it takes plain text
                           refusals.make_fallback_router())  # last: it takes what is left
    return router
