"""✨ Improve's rows: one per attempt to improve a picker draft's prompt, keyed by the draft and
the draft's revision when ✨ was pressed (its `attempt`). The charge and its refund are ledger
rows whose sources name that key, so a repeated press charges once and a failure refunds once;
at most one attempt per draft runs at a time (a partial unique index). An attempt ends `ready`
(the improved prompt waits for Use it / Keep mine, then `used` or `kept`) or `failed`
(refunded), and its end moves the draft's revision on: the next ✨ is another attempt.

No foreign key to drafts: the drafts purged or trimmed (Store.purge, DRAFTS_PER_USER) must not
take a running attempt, and its charge, with them. `settle_stale` ends what a gone process left
running and forgets finished attempts as old as the drafts that go.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bot.store.database import Connection, Row, StoreError
from bot.store.models import Draft, LedgerKind, row_to
from bot.store.store import DraftChanged, DraftClosed, Store, _apply, _draft

RUNNING, READY, FAILED, USED, KEPT = "running", "ready", "failed", "used", "kept"


@dataclass(frozen=True, slots=True)
class Improvement:
    draft_id: int
    attempt: int
    user_id: int
    price: int
    state: str
    original: str  # the prompt it improves
    improved: str | None
    failure: str | None
    created_at: float
    finished_at: float | None


class ImproveRunning(StoreError):
    """An attempt for this draft is running already: nothing was charged."""


def charge_source(draft_id: int, attempt: int) -> str:
    return f"improve:{draft_id}:{attempt}"


def refund_source(draft_id: int, attempt: int) -> str:
    return f"improve_refund:{draft_id}:{attempt}"


async def begin(store: Store, draft_id: int, *, attempt: int, price: int,
                stale_before: float) -> Improvement:
    """Record attempt `attempt` (the revision the pressed ✨ was drawn at) and charge `price` to
    the draft's owner, together. An attempt of this draft still running since before
    `stale_before` (its process is gone) is refunded first. Raises DraftClosed, DraftChanged
    (the picker changed since), ImproveRunning, InsufficientCredits (nothing recorded)."""
    async with store._tx() as db:  # settled whatever becomes of this press
        for row in await db.fetch(
                "UPDATE improvements SET state = ?, failure = 'interrupted', finished_at = ?"
                " WHERE draft_id = ? AND state = ? AND created_at < ? RETURNING *",
                (FAILED, time.time(), draft_id, RUNNING, stale_before)):
            await _settled(db, row_to(Improvement, row))
    async with store._tx() as db:
        draft = await _draft(db, draft_id, lock=True)  # two presses wait for each other here
        if draft.state != "open":
            raise DraftClosed(draft_id)
        if await db.fetch("SELECT 1 FROM improvements WHERE draft_id = ? AND state = ?",
                          (draft_id, RUNNING)):
            raise ImproveRunning(draft_id)
        if draft.revision != attempt:
            raise DraftChanged(draft_id)
        rows = await db.fetch(
            "INSERT INTO improvements (draft_id, attempt, user_id, price, state, original,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (draft_id, attempt) DO NOTHING"
            " RETURNING *", (draft_id, attempt, draft.user_id, price, RUNNING, draft.prompt,
                             time.time()))
        if not rows:  # this revision's attempt is over: its keyboard is out of date
            raise DraftChanged(draft_id)
        if price:
            await _apply(db, draft.user_id, -price, LedgerKind.IMPROVE,
                         note=f"draft {draft_id}", source=charge_source(draft_id, attempt))
        return row_to(Improvement, rows[0])


async def finish(store: Store, draft_id: int, attempt: int, improved: str) -> Improvement | None:
    """The attempt's improved prompt, waiting for Use it / Keep mine; None if it was settled
    meanwhile (settle_stale: its refund stands)."""
    async with store._tx() as db:
        rows = await _end(db, draft_id, attempt, READY, improved=improved)
        return row_to(Improvement, rows[0]) if rows else None


async def fail(store: Store, draft_id: int, attempt: int, failure: str) -> Improvement | None:
    """The attempt failed: refunded, once; None if it had ended already."""
    async with store._tx() as db:
        rows = await _end(db, draft_id, attempt, FAILED, failure=failure)
        if not rows:
            return None
        failed = row_to(Improvement, rows[0])
        await _refund(db, failed)
        return failed


async def settle_stale(store: Store, *, started_before: float,
                       finished_before: float) -> list[Improvement]:
    """Attempts still running that started before `started_before` (their process is gone: no
    call lasts that long) fail as interrupted, refunded once; finished ones older than
    `finished_before` are forgotten (their drafts are gone too)."""
    async with store._tx() as db:
        rows = await db.fetch(
            "UPDATE improvements SET state = ?, failure = 'interrupted', finished_at = ?"
            " WHERE state = ? AND created_at < ? RETURNING *",
            (FAILED, time.time(), RUNNING, started_before))
        settled = [row_to(Improvement, row) for row in rows]
        for improvement in settled:
            await _settled(db, improvement)
        await db.execute("DELETE FROM improvements WHERE state != ? AND created_at < ?",
                         (RUNNING, finished_before))
        return settled


async def get(store: Store, draft_id: int, attempt: int) -> Improvement | None:
    rows = await store._rows("SELECT * FROM improvements WHERE draft_id = ? AND attempt = ?",
                             (draft_id, attempt))
    return row_to(Improvement, rows[0]) if rows else None


async def decide(store: Store, draft_id: int, attempt: int, *, use: bool,
                 model: str | None = None, options: dict[str, str] | None = None,
                 ) -> tuple[Improvement, Draft]:
    """Use it (the draft's prompt becomes the improved one; `model` and `options` too, where
    the service found the draft's model cannot take it) or Keep mine. A ready attempt only: one
    decided already (a repeated press) stays as it is. Raises LookupError, DraftClosed."""
    async with store._tx() as db:
        draft = await _draft(db, draft_id, lock=True)
        if draft.state != "open":
            raise DraftClosed(draft_id)
        rows = await db.fetch("SELECT * FROM improvements WHERE draft_id = ? AND attempt = ?",
                              (draft_id, attempt))
        if not rows:
            raise LookupError(f"no improvement {draft_id}:{attempt}")
        improvement = row_to(Improvement, rows[0])
        if improvement.state != READY or improvement.improved is None:
            return improvement, draft
        await db.execute("UPDATE improvements SET state = ? WHERE draft_id = ? AND attempt = ?",
                         (USED if use else KEPT, draft_id, attempt))
        if use:
            changes = "prompt = ?, revision = revision + 1"
            params: list[str | None] = [improvement.improved]
            if options is not None:
                changes += ", model = ?, options = ?"
                params += [model, json.dumps(options)]
            rows = await db.fetch(f"UPDATE drafts SET {changes} WHERE id = ? RETURNING *",
                                  (*params, draft_id))
            draft = row_to(Draft, rows[0])
        return improvement, draft


async def _end(db: Connection, draft_id: int, attempt: int, state: str, *,
               improved: str | None = None, failure: str | None = None) -> list[Row]:
    rows = await db.fetch(
        "UPDATE improvements SET state = ?, improved = ?, failure = ?, finished_at = ?"
        " WHERE draft_id = ? AND attempt = ? AND state = ? RETURNING *",
        (state, improved, failure, time.time(), draft_id, attempt, RUNNING))
    if rows:  # the next ✨ is another attempt (and a ✅ drawn before it, a changed picker)
        await db.execute("UPDATE drafts SET revision = revision + 1 WHERE id = ?", (draft_id,))
    return rows


async def _settled(db: Connection, improvement: Improvement) -> None:
    """An attempt ended as interrupted: refunded, and its draft's next ✨ another attempt."""
    await _refund(db, improvement)
    await db.execute("UPDATE drafts SET revision = revision + 1 WHERE id = ?",
                     (improvement.draft_id,))


async def _refund(db: Connection, improvement: Improvement) -> None:
    if improvement.price:
        await _apply(db, improvement.user_id, improvement.price, LedgerKind.IMPROVE_REFUND,
                     note=improvement.failure,
                     source=refund_source(improvement.draft_id, improvement.attempt))
