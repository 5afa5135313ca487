"""A result download follows a few redirects, to http(s) only: a result host cannot send the
bot on a long chase or to another scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.services.delivery import MAX_REDIRECTS, Outcome
from bot.store import GenerationState
from testkit.fakes.server import AppServer
from testkit.fakes.telegram import tiny_png
from tests.app import test_tracker
from tests.app.test_delivery import delivery_of, finished, state_of, uploads

rig = test_tracker.rig


@pytest.fixture
async def redirecting() -> AsyncIterator[str]:
    """/hop/N redirects N more times, then serves a PNG; /elsewhere redirects to ftp://."""
    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(body=tiny_png(), content_type="image/png")
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/picture.png")

    app = web.Application()
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/elsewhere", elsewhere)
    async with AppServer(app) as server:
        yield server.url


async def test_a_few_redirects_are_followed_to_the_file(rig, tg, redirecting):
    tg.refuse_urls = True  # Telegram will not fetch it: the bot downloads and uploads
    generation = await finished(rig, "image", [f"{redirecting}/hop/{MAX_REDIRECTS}"])
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED
    [photo] = uploads(tg, "sendPhoto")
    assert photo.data == tiny_png()
    assert await state_of(rig, generation) is GenerationState.DELIVERED


@pytest.mark.parametrize("path", [f"/hop/{MAX_REDIRECTS + 1}", "/elsewhere"])
async def test_a_long_chase_or_another_scheme_is_not_followed(rig, tg, redirecting, path):
    tg.refuse_urls = True
    generation = await finished(rig, "image", [redirecting + path])
    assert await delivery_of(rig).deliver(generation) is Outcome.DELIVERED  # as links
    assert not uploads(tg, "sendPhoto") and not uploads(tg, "sendDocument")
    [links] = await tg.wait_for("sendMessage", lambda c: "<a href" in c.params["text"])
    assert path in links.params["text"]
