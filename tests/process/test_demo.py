"""`make demo` (`python -m demo`) as a newcomer meets it: the page in a headless browser drives
/image to a picture through the real bot between the fakes, and Ctrl-C stops it all.

DEMO_SCREENSHOT=docs/demo.png saves the page with its picture there (README's screenshot):
    DEMO_SCREENSHOT=docs/demo.png .venv/bin/python -m pytest tests/process/test_demo.py -n 0"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit import ROOT
from testkit.browser import chromium, chromium_path
from testkit.e2e import free_port

READY = "demo: ready"


class Demo:
    def __init__(self, process: asyncio.subprocess.Process, port: int, web_port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}/"
        self.web_port = web_port
        self.output: list[str] = []

    async def wait_ready(self, timeout: float = 90) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while line := (await self.process.stdout.readline()).decode():
                self.output.append(line)
                if line.startswith(READY):
                    return
        raise AssertionError(f"the demo never got ready:\n{''.join(self.output)}")

    async def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Signal it; its exit code and everything it printed."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        rest = (await asyncio.wait_for(self.process.communicate(), 30))[0].decode()
        assert self.process.returncode is not None
        return self.process.returncode, "".join(self.output) + rest


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    port, web_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "demo", "--port", str(port), "--web-port", str(web_port), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    running = Demo(process, port, web_port)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_page_drives_image_to_a_picture_and_ctrl_c_stops_everything(demo: Demo,
                                                                               tmp_path: Path) -> None:
    chromium_path()  # skips (or fails under REQUIRE_BROWSER=1) before anything starts
    await demo.wait_ready()
    [bot] = children(demo.process.pid)
    folder = Path(os.readlink(f"/proc/{bot}/cwd"))  # the demo's temporary folder
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 900})
        await page.goto(demo.url)
        await page.get_by_role("button", name="👤 Alice").wait_for()
        await page.fill("#text", "/image a red fox in the snow")
        await page.press("#text", "Enter")
        await page.get_by_role("button", name=re.compile(r"^Imagen 4 ·")).click()
        await page.get_by_role("button", name=re.compile(r"^✅")).click()
        picture = page.locator(".message.bot img.media").last
        try:
            await picture.wait_for(timeout=60_000)  # seconds on a quiet machine; a loaded one is slower
        except Exception as error:
            raise AssertionError(f"no picture; the chat shows:\n{await page.inner_text('#log')}") from error
        # Loaded, not just there: the file came through the page from the fake Kie.ai.
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.message.bot img.media')]"
            ".some((img) => img.complete && img.naturalWidth > 0)", timeout=10_000)
        source = await picture.get_attribute("src")
        assert source is not None and source.startswith("/media/")
        response = await page.request.get(demo.url.rstrip("/") + source)
        assert response.ok and (await response.body()).startswith(b"\x89PNG")
        await page.wait_for_timeout(300)  # the picture's buttons laid out
        await page.screenshot(path=os.environ.get("DEMO_SCREENSHOT") or tmp_path / "demo.png")
    code, output = await demo.stop(signal.SIGINT)
    assert code == 0, output
    assert "Traceback" not in output, output
    assert not alive(bot), "the bot outlived the demo"
    assert not await asyncio.to_thread(folder.exists), "the temporary folder was left behind"


async def test_a_taken_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "demo", "--port", str(free_port()), "--web-port", str(port),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    assert process.returncode == 2, output
    assert output.strip().splitlines() == [
        f"demo: port {port} (the bot's web server) is in use; pick another with --web-port or DEMO_WEB_PORT"]
