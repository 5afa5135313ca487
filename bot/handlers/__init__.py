"""Routers, thin: parse the update, call a service, answer."""

from aiogram import Router

from bot.handlers import admin, generate, info


def build_router() -> Router:
    router = Router(name="root")
    router.include_routers(info.make_router(), admin.make_router(), generate.make_router())
    return router
