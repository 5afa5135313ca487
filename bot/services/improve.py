"""✨ Improve: a picker's prompt rewritten by Kie's chat model as one English prompt for its kind
of model, charged PROMPT_IMPROVE_PRICE by the ledger's rules (store/improvements.py) and
refunded when the rewrite fails; the person then takes it (Use it) or keeps their own."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from bot import texts
from bot.catalog import MODELS
from bot.i18n import N_
from bot.kie import KieClient
from bot.kie.errors import KieError
from bot.services.generation import (
    Generations,
    Picker,
    PickerChanged,
    PickerError,
    ShortOfCredits,
)
from bot.services.offers import current_offer
from bot.store import DRAFT_LIFETIME, DraftChanged, DraftClosed, InsufficientCredits, Store
from bot.store import improvements as rows
from bot.store.improvements import Improvement, ImproveRunning

log = logging.getLogger(__name__)

# The longest one improvement may take, its wait for Kie's budget and a create's retries
# included: past it the call is given up and refunded.
IMPROVE_DEADLINE = 90.0
# An attempt still running after this long was left by a process that is gone (no call lasts
# it): refunded by the tracker's housekeeping (settle_stale).
STALE_AFTER = 2 * IMPROVE_DEADLINE

ALREADY = N_("Already improving this prompt. Wait a moment.")
CLOSED = N_("This request was already sent or cancelled.")

# What a chat model puts around the prompt it was asked for: its thoughts, a code fence, a
# lead-in ("Here is the improved prompt:", "Prompt:"), markdown emphasis and quotes.
_THOUGHTS = re.compile(r"<(think|thinking|thought)>.*?</\1>", re.S | re.I)
_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")
_LEAD_IN = re.compile(
    r"^(?:(?:sure|okay|ok|certainly|of course)[!,.]?\s+)?"
    r"(?:here(?:'s| is| are)\b[^:\n]*:|(?:improved|enhanced|rewritten|final|new|english)?\s*"
    r"(?:prompt|description|version)\s*:)\s*", re.I)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "„": "“", "`": "`", "‘": "’"}


def clean_prompt(answer: str, limit: int) -> str | None:
    """The prompt in a chat model's `answer`: without what it added around it, on one line,
    cut at a word to at most `limit` characters; None when nothing usable is left."""
    text = _THOUGHTS.sub(" ", answer).strip()
    text = _FENCE.sub("", text).strip()
    text = text.replace("**", "").replace("__", "")
    text = _LEAD_IN.sub("", text, count=1).strip()
    text = " ".join(text.split())
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    if len(text) > limit:
        cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else text[:limit]
        text = cut[:limit].rstrip(" ,;:-")
    if sum(ch.isalnum() for ch in text) < 3:
        return None
    return text


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: `improvement` is ready (`improved` set) or failed (refunded)."""

    improvement: Improvement
    picker: Picker

    @property
    def ready(self) -> bool:
        return self.improvement.state == rows.READY


class Improver:
    def __init__(self, store: Store, *, kie: KieClient, generations: Generations,
                 price: int) -> None:
        self.store = store
        self.kie = kie
        self.generations = generations
        self.price = price  # PROMPT_IMPROVE_PRICE

    async def begin(self, draft_id: int, user_id: int, attempt: int) -> tuple[Improvement, Picker]:
        """✨ pressed: the attempt recorded and charged (ShortOfCredits: nothing charged; a press
        on a picker that changed since: PickerChanged; one running: "already improving")."""
        draft = await self.generations.owned_draft(draft_id, user_id)
        shown = await self.generations.picker(draft)
        if shown.improve_price is None:  # its model takes the prompt as it is (speech)
            raise PickerChanged(shown)
        try:
            improvement = await rows.begin(self.store, draft_id, attempt=attempt, price=self.price,
                                           stale_before=time.time() - STALE_AFTER)
        except ImproveRunning:
            raise PickerError(ALREADY) from None
        except DraftClosed:
            raise PickerError(CLOSED) from None
        except DraftChanged:
            fresh = await self.generations.owned_draft(draft_id, user_id)
            raise PickerChanged(await self.generations.picker(fresh)) from None
        except InsufficientCredits as short:
            raise ShortOfCredits(draft, short.price, short.balance, None) from None
        log.info("draft %s: improving its prompt (attempt %s, %s credits)", draft_id, attempt,
                 self.price)
        return improvement, shown

    async def run(self, improvement: Improvement, *, kind: str, picture: bool) -> Outcome:
        """Ask Kie's chat model; any failure (Kie's refusal, no answer in time, nothing usable
        in it) is refunded once. Never raises for Kie's sake."""
        failure = await self._improve(improvement, kind=kind, picture=picture)
        if failure is not None:
            log.warning("draft %s: the prompt was not improved: %s", improvement.draft_id, failure)
            await rows.fail(self.store, improvement.draft_id, improvement.attempt, failure)
        # As it ended (or was settled meanwhile: refunded as interrupted).
        ended = await rows.get(self.store, improvement.draft_id, improvement.attempt)
        draft = await self.store.get_draft(improvement.draft_id)
        if ended is None or draft is None:
            raise PickerError(texts.OUTDATED)
        return Outcome(ended, await self.generations.picker(draft))

    async def _improve(self, improvement: Improvement, *, kind: str, picture: bool) -> str | None:
        """The improved prompt recorded (None), or why there is none."""
        spec = MODELS.improve
        if spec is None:  # a catalog always has one (the shipped file's at least)
            return "no improve table"
        offer = await current_offer(self.store)
        limit = max((m.max_prompt for m in offer.models_of(kind, picture=picture)), default=0)
        try:
            async with asyncio.timeout(IMPROVE_DEADLINE):
                answer = await self.kie.chat(spec.model, spec.system[kind], improvement.original,
                                             owner=improvement.user_id)
        except KieError as error:
            return str(error)
        except TimeoutError:
            return "no answer in time"
        improved = clean_prompt(answer, limit)
        if improved is None:
            return f"nothing usable in the answer ({len(answer)} characters)"
        if await rows.finish(self.store, improvement.draft_id, improvement.attempt,
                             improved) is None:
            log.warning("draft %s: improved after it was settled", improvement.draft_id)
        return None

    async def decide(self, draft_id: int, user_id: int, attempt: int, *, use: bool) -> Picker:
        """Use it: the draft's prompt becomes the improved one (a model that cannot take it is
        left, for the model list); Keep mine: as it was. Either way, the picker again."""
        draft = await self.generations.owned_draft(draft_id, user_id)
        improvement = await rows.get(self.store, draft_id, attempt)
        if improvement is None:
            raise PickerError(texts.OUTDATED)
        model, options = None, None
        if use and improvement.improved is not None and draft.model is not None:
            offered = (await current_offer(self.store)).model(draft.model)
            if offered is None or len(improvement.improved) > offered.max_prompt:
                options = {}  # the model list, where the models that take it are offered
            else:
                model, options = draft.model, draft.options
        try:
            _, draft = await rows.decide(self.store, draft_id, attempt, use=use, model=model,
                                         options=options)
        except DraftClosed:
            raise PickerError(CLOSED) from None
        return await self.generations.picker(draft)


async def settle_stale(store: Store, now: float) -> None:
    """The tracker's housekeeping: refund the attempts a gone process left running, and forget
    the finished ones as old as the drafts that go."""
    for settled in await rows.settle_stale(store, started_before=now - STALE_AFTER,
                                           finished_before=now - DRAFT_LIFETIME):
        log.warning("draft %s: its prompt improvement was cut off; refunded", settled.draft_id)
