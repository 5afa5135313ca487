"""What both fakes share: an aiohttp app served on 127.0.0.1 at a free port."""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LocalServer:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        # A short shutdown timeout: a handler that is sleeping (a long poll, an injected
        # delay) must not hold stop() for a minute.
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        # A restart keeps the port: a test takes a server down and up again, its URL unchanged.
        await web.TCPSite(self._runner, "127.0.0.1", self._port or 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"


class AppServer(LocalServer):
    """Any aiohttp app a test builds (a callback receiver, a redirecting host), served the
    same way: `async with AppServer(app) as server: server.url`."""

    def __init__(self, app: web.Application) -> None:
        super().__init__()
        self._app = app

    def make_app(self) -> web.Application:
        return self._app
