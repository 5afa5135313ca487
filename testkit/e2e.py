"""The steps end-to-end tests of every tier share: a generation walked through the picker, the
ledger's charges and refunds, generation states awaited, a free port, the webhook's secret."""

from __future__ import annotations

import asyncio
import random
import socket

from bot.store import GenerationState, LedgerKind
from testkit.chat import Person, buttons

WEBHOOK_SECRET = "webhook-secret-0123"


async def generate(person: Person, prompt: str, model: str = "Imagen 4",
                   options: tuple[str, ...] = (), chat: dict | None = None,
                   command: str = "/image") -> tuple[dict, dict]:
    """Walk the picker: /image (or `command`) → model → options → ✅; a picker that opens on
    the person's last choice goes back to the models first, so `options` start from the
    model's defaults. Returns (request, status message)."""
    request, picker = await person.ask(f"{command} {prompt}", chat=chat)
    if any(b["text"].startswith("← ") for b in buttons(picker)):
        await person.press(picker, "← ")
        picker = person.refreshed(picker)
    if any(b["text"].startswith(model) for b in buttons(picker)):
        await person.press(picker, model)
    for option in options:
        await person.press(person.refreshed(picker), option)
    await person.press(person.refreshed(picker), "✅")
    return request, picker


async def charges(store, user_id: int) -> list:
    return [r for r in await store.ledger(user_id, 100) if r.kind == LedgerKind.CHARGE]


async def refunds(store, user_id: int) -> list:
    return [r for r in await store.ledger(user_id, 100) if r.kind == LedgerKind.REFUND]


async def states_become(store, expected: dict[int, GenerationState]) -> dict[int, GenerationState]:
    """Each user's generation state once it matches `expected` (the bot records a delivery just
    after Telegram has it), or as it stands after a few seconds."""
    for _ in range(100):
        states = {g.user_id: g.state for g in await store.generations_in(list(GenerationState))}
        if states == expected:
            break
        await asyncio.sleep(0.05)
    return states


# Below the kernel's ephemeral range (32768-60999 by default): a port the kernel hands out (bind
# to 0) may be taken by another test's outgoing connection between this check and the server's
# own bind; one from here is only taken by another server that chose it too.
PORTS = range(20000, 32000)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, for a server a test starts."""
    for _ in range(200):
        port = random.choice(PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")
