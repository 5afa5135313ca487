"""Work in the background, one task per generation at a time (a status read, a delivery, a
re-send), kept where its owner can see what is under way and cancel it at stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

Running = dict[int, asyncio.Task[None]]


def spawn(running: Running, generation_id: int, work: Coroutine[Any, Any, None],
          name: str) -> None:
    """Run `work` in the background, listed in `running` under the generation until it ends."""
    task = asyncio.create_task(work, name=name)
    running[generation_id] = task
    task.add_done_callback(lambda _: running.pop(generation_id, None))


async def cancel(running: Running) -> None:
    """Cancel what is under way and wait until it has ended."""
    tasks = list(running.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
