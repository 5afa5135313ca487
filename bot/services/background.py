"""Work in the background, one task per generation at a time (a status read, a delivery, a
re-send), kept where its owner can see what is under way and cancel it at stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

Running = dict[int, asyncio.Task[None]]


def spawn(running: Running, generation_id: int, work: Coroutine[Any, Any, None],
          name: str) -> None:
    """Run `work` in the background, listed in `running` under the generation until it ends."""
    task = asyncio.create_task(work, name=name)
    running[generation_id] = task
    task.add_done_callback(lambda _: running.pop(generation_id, None))


async def cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel what is under way and wait until it has ended."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Errands:
    """Small background jobs (a recount, a message to send) kept until they end; once
    stopping, none starts (one started by a stop's own NOTIFY would outlive the store)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._stopping:
            work.close()
            return
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self._stopping = True
        await cancel(self._tasks)
